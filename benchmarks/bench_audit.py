"""Measures what the audit finds on veil's own output of the WIDER dev photos, and what it costs.

    .venv/bin/python benchmarks/bench_audit.py [--masks solid,blur,mosaic] [--limit N] [--min-face 40]

For every dev photo with a ground-truth face at least --min-face px tall (smaller faces are never
dlib-matchable, so photos without one add nothing to the match figures), and for each mask style:
  1. `redact_file` writes veil's output (default settings apart from --mask) to a temp folder;
     its wall time is the baseline;
  2. `audit_file` audits it; its wall time is what the audit adds.

"dlib-matchable" faces: faces dlib's HOG detector finds in the original (frontal, roughly >= 40 px,
so dlib's 5-point alignment works) that are real faces (IoU >= 0.3 with a ground-truth box: dlib
also fires, rarely, on chairs and badges) and whose ResNet embedding is at least 0.6 away from
every blank chip (black, grey, white, skin tone, random noise), i.e. faces dlib can tell apart
from nothing (see src/veil/audit/reid.py). A face is "still matchable" after a mask when the embedding of the
same aligned chip in the output is within dlib's same-person distance 0.6 of the original's, and
at least 0.05 closer than an ideally masked chip (the audit's MATCHABLE_FACE finding).

Printed: per mask, the share of dlib-matchable faces still matchable, every check's finding
count, and the audit's seconds per image against the redaction's (ratio). Outputs are written
to a temporary folder and deleted; nothing derived from the photos is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil import Config, MaskStyle, redact_file  # noqa: E402
from veil.audit import Check, audit_file  # noqa: E402

DEFAULT_GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"


def photos(gt: Path, min_face: int, limit: int) -> list[tuple[Path, list[list[float]]]]:
    rows = [json.loads(line) for line in gt.read_text().splitlines() if line.strip()]
    chosen = [(gt.parent / r["image"], r["boxes"]) for r in rows
              if any(b[3] >= min_face for b in r["boxes"])]
    return chosen[:limit] if limit else chosen


def iou(a: tuple[int, int, int, int] | list[float], b: tuple[int, int, int, int] | list[float]) -> float:
    """IoU of two xywh boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT)
    parser.add_argument("--masks", default="solid,blur,mosaic")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--json", type=Path, help="also write the per-image rows here")
    args = parser.parse_args()
    masks = [MaskStyle(m) for m in args.masks.split(",")]
    images = photos(args.gt, args.min_face, args.limit)
    print(f"{len(images)} dev photos with a face >= {args.min_face} px; masks: "
          f"{', '.join(m.value for m in masks)}", flush=True)

    rows = []
    totals = {m: {"matchable": 0, "matched": 0, "redact_s": 0.0, "audit_s": 0.0, "images": 0,
                  "clean": 0, "findings": Counter(), "second_scores": []} for m in masks}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (image, truth) in enumerate(images, 1):
            for mask in masks:
                target = Path(tmp) / f"{n}.{mask.value}{image.suffix}"
                config = Config(mask=mask)
                started = time.perf_counter()
                redact_file(image, target, config, overwrite=True)
                redact_s = time.perf_counter() - started
                started = time.perf_counter()
                report = audit_file(image, target, config)
                audit_s = time.perf_counter() - started
                target.unlink()
                matchable = [f for f in report.faces if "dlib" in f.found_by and f.matchable
                             and any(iou(f.box, gt) >= 0.3 for gt in truth)]
                matched = [f for f in matchable if f.matched]
                t = totals[mask]
                t["matchable"] += len(matchable)
                t["matched"] += len(matched)
                t["redact_s"] += redact_s
                t["audit_s"] += audit_s
                t["images"] += 1
                t["clean"] += report.clean
                t["findings"].update(f.kind.value for f in report.findings)
                t["second_scores"] += [round(f.value or 0, 2) for f in report.by_check(Check.SECOND_DETECTOR)]
                rows.append({"image": str(image.relative_to(args.gt.parent)), "mask": mask.value,
                             "redact_s": round(redact_s, 3), "audit_s": round(audit_s, 3),
                             "matchable": len(matchable), "matched": len(matched),
                             "distances": [round(f.distance, 3) for f in matchable
                                           if f.distance is not None],
                             "findings": dict(Counter(f.kind.value for f in report.findings)),
                             "seconds": {k: round(v, 3) for k, v in report.seconds.items()}})
            if n % 10 == 0 or n == len(images):
                print(f"  {n}/{len(images)} photos", flush=True)

    print()
    print(f"{'mask':8} {'matchable':>9} {'still matchable':>16} {'clean files':>12} "
          f"{'redact s/img':>13} {'audit s/img':>12} {'audit/redact':>13}")
    for mask, t in totals.items():
        share = t["matched"] / t["matchable"] if t["matchable"] else float("nan")
        redact_per = t["redact_s"] / max(1, t["images"])
        audit_per = t["audit_s"] / max(1, t["images"])
        print(f"{mask.value:8} {t['matchable']:>9} {t['matched']:>6} ({share:6.1%}) "
              f"{t['clean']:>5}/{t['images']:<6} {redact_per:>13.2f} {audit_per:>12.2f} "
              f"{audit_per / redact_per:>12.1f}x")
    for mask, t in totals.items():
        print(f"findings with --mask {mask.value}: {dict(t['findings']) or 'none'}")
        if t["second_scores"]:
            print(f"  second-detector scores: {sorted(t['second_scores'])}")
    if args.json:
        args.json.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()
