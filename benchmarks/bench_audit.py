"""Measures what the audit finds on veil's own output of the WIDER dev photos, and what it costs.

    .venv/bin/python benchmarks/bench_audit.py [--masks solid,blur,mosaic] [--limit N] [--min-face 40]
        [--stride N [--offset K]] [--before-after] [--leave-one-out] [--hog-hits] [--weak-blur]

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

--before-after also prints, per mask, the audit's verdict under the old rule (every second-detector
hit outside the masks fails the audit) and the new one (a weak hit must be confirmed by veil's
zoomed re-scan, audit/confirm.py; the rest go to the report's `review` list). Both come from the
same audit: the old verdict counts the review entries as findings (they are exactly the hits the
new rule demotes), and the old time is the audit's time less its "confirm" stage. A false alarm is
an unclean verdict on a photo where no finding touches a ground-truth face (covers >= 30 % of it).
--leave-one-out also pastes the original back over the largest ground-truth face >= --left-out-px that
veil masked (padded by half its size, as tests/test_audit.py does), audits that, and counts the
faces still reported (a finding covering >= 30 % of it), by any check and by the second detector.

--hog-hits only runs dlib HOG on each chosen original, labels each hit by the ground truth (IoU
>= 0.3) and prints its HOG score and veil's zoomed re-scan score (audit/confirm.py): the figures
the audit's bounds CONFIRM_SCORE and STRONG_HOG_SCORE were set from.

--weak-blur only blurs every ground-truth face of each original with a 7x7 Gaussian, audits that
against the original, and counts the photos the audit reports (issue 18's "the weak blur must
still be reported on every photo"; --min-face 0 takes all 183).

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

from PIL import Image  # noqa: E402

from veil import Config, MaskStyle, redact_file  # noqa: E402
from veil.audit import AuditReport, Check, Finding, FindingKind, audit_file  # noqa: E402
from veil.media.image import read_image  # noqa: E402

DEFAULT_GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"


def photos(gt: Path, min_face: int, limit: int, stride: int = 1, offset: int = 0
           ) -> list[tuple[Path, list[list[float]]]]:
    rows = [json.loads(line) for line in gt.read_text().splitlines() if line.strip()]
    chosen = [(gt.parent / r["image"], r["boxes"]) for r in rows
              if any(b[3] >= min_face for b in r["boxes"])][offset::stride]
    return chosen[:limit] if limit else chosen


def iou(a: tuple[int, int, int, int] | list[float], b: tuple[int, int, int, int] | list[float]) -> float:
    """IoU of two xywh boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def covers(a: tuple[int, int, int, int] | None, b: list[float], share: float = 0.3) -> bool:
    """Whether xywh box a covers at least `share` of xywh box b."""
    if a is None:
        return False
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih >= share * b[2] * b[3]


def false_alarm(findings: tuple[Finding, ...], truth: list[list[float]]) -> bool:
    """Unclean, yet no finding touches a ground-truth face (metadata findings count as real)."""
    return bool(findings) and not any(
        f.check is Check.METADATA or any(covers(f.box, gt) for gt in truth) for f in findings)


def leave_one_out(image: Path, output: Path, report: AuditReport, truth: list[list[float]],
                  min_face: int, target: Path, config: Config) -> dict[str, object] | None:
    """Paste the original back over the largest masked ground-truth face; audit; was it reported?"""
    masked = [gt for gt in truth if gt[3] >= min_face and any(
        f.region is not None and iou(f.box, gt) >= 0.3 for f in report.faces)]
    if not masked:
        return None
    face = max(masked, key=lambda b: b[3])
    original = read_image(image).pixels
    pixels = read_image(output).pixels.copy()
    x, y, w, h = (int(v) for v in face)
    region = (slice(max(0, y - h // 2), y + h + h // 2), slice(max(0, x - w // 2), x + w + w // 2))
    pixels[region] = original[region]
    Image.fromarray(pixels).save(target, quality=95)
    skipped = audit_file(image, target, config)
    target.unlink()
    at_face = [f for f in skipped.findings if covers(f.box, face)]
    second = [f for f in at_face if f.kind is FindingKind.FACE_OUTSIDE_MASKS]
    demoted = [f for f in skipped.review if covers(f.box, face)]
    return {"face_px": h, "reported": bool(at_face), "second_new": bool(second),
            "second_old": bool(second or demoted)}


def weak_blur(images: list[tuple[Path, list[list[float]]]], tmp: Path) -> None:
    """Blur every ground-truth face of each photo with a 7x7 Gaussian (what tests/test_audit.py
    does on 3 photos), audit the result against the original, and count the photos reported."""
    import cv2

    reported, kinds, seconds = 0, Counter(), 0.0
    quiet: list[str] = []
    for n, (image, truth) in enumerate(images, 1):
        pixels = read_image(image).pixels.copy()
        for x, y, w, h in (tuple(int(round(v)) for v in box) for box in truth):
            x, y = max(0, x), max(0, y)
            if w > 0 and h > 0:
                pixels[y:y + h, x:x + w] = cv2.GaussianBlur(pixels[y:y + h, x:x + w], (7, 7), 0)
        weak = tmp / f"weak{image.suffix}"
        Image.fromarray(pixels).save(weak, quality=95)
        started = time.perf_counter()
        report = audit_file(image, weak)
        seconds += time.perf_counter() - started
        weak.unlink()
        if report.clean:
            quiet.append(image.name)
        else:
            reported += 1
            kinds.update({f.kind.value for f in report.findings})
        if n % 20 == 0 or n == len(images):
            print(f"  {n}/{len(images)} photos", flush=True)
    print(f"weak 7x7 blur on every face: reported on {reported}/{len(images)} photos; photos with "
          f"each finding: {dict(kinds)}; audit {seconds / max(1, len(images)):.2f} s/photo")
    if quiet:
        print(f"  not reported: {quiet}")


def hog_hits(images: list[tuple[Path, list[list[float]]]]) -> None:
    """dlib HOG's hits on the originals, true or not, with their HOG and zoomed re-scan scores."""
    from veil.audit.confirm import zoom_score
    from veil.audit.second_detector import detect_faces

    hits: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    for image, truth in images:
        pixels = read_image(image).pixels
        for box, score in zip(*detect_faces(pixels)):
            xywh = (int(box[0]), int(box[1]), int(box[2] - box[0]), int(box[3] - box[1]))
            true = any(iou(xywh, gt) >= 0.3 for gt in truth)
            hits[true].append((round(float(score), 3), round(zoom_score(pixels, box), 3), xywh[3]))
    for true, found in hits.items():
        zooms = sorted(z for _, z, _ in found)
        print(f"{len(found)} HOG hits {'on' if true else 'off'} ground-truth faces; zoomed re-scan "
              f"scores, lowest first: {zooms[:12]}")
        if not true:
            print(f"  (HOG score, zoomed score, px): {sorted(found)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, default=DEFAULT_GT)
    parser.add_argument("--masks", default="solid,blur,mosaic")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--stride", type=int, default=1,
                        help="every N-th photo only: a subset that spans all the dev set's scenes")
    parser.add_argument("--offset", type=int, default=0, help="with --stride: start at this photo")
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--before-after", action="store_true",
                        help="compare the old and new second-detector rule (see the docstring)")
    parser.add_argument("--leave-one-out", action="store_true",
                        help="also audit an output with one masked face pasted back")
    parser.add_argument("--hog-hits", action="store_true",
                        help="only measure HOG hits on the originals (see the docstring)")
    parser.add_argument("--left-out-px", type=int, default=40,
                        help="--leave-one-out pastes back a face at least this tall")
    parser.add_argument("--weak-blur", action="store_true",
                        help="only: blur every face 7x7 and count the photos the audit reports "
                             "(use --min-face 0 for every photo)")
    parser.add_argument("--json", type=Path, help="also write the per-image rows here, as they come")
    args = parser.parse_args()
    if args.json:
        args.json.write_text("")
    masks = [MaskStyle(m) for m in args.masks.split(",")]
    images = photos(args.gt, args.min_face, args.limit, args.stride, args.offset)
    if args.hog_hits:
        hog_hits(images)
        return
    if args.weak_blur:
        with tempfile.TemporaryDirectory() as tmp:
            weak_blur(images, Path(tmp))
        return
    print(f"{len(images)} dev photos with a face >= {args.min_face} px; masks: "
          f"{', '.join(m.value for m in masks)}", flush=True)

    rows = []
    totals = {m: {"matchable": 0, "matched": 0, "redact_s": 0.0, "audit_s": 0.0, "images": 0,
                  "clean": 0, "findings": Counter(), "second_scores": [], "old_clean": 0,
                  "old_false": 0, "new_false": 0, "confirm_s": 0.0, "review": [],
                  "left_out": []} for m in masks}
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
                left = (leave_one_out(image, target, report, truth, args.left_out_px,
                                      Path(tmp) / f"{n}.skipped{image.suffix}", config)
                        if args.leave_one_out else None)
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
                old = report.findings + report.review
                t["old_clean"] += not old
                t["old_false"] += false_alarm(old, truth)
                t["new_false"] += false_alarm(report.findings, truth)
                t["confirm_s"] += report.seconds.get("confirm", 0.0)
                t["review"] += [(round(f.value or 0, 2), any(covers(f.box, gt) for gt in truth))
                                for f in report.review]
                if left is not None:
                    t["left_out"].append(left)
                rows.append({"image": str(image.relative_to(args.gt.parent)), "mask": mask.value,
                             "redact_s": round(redact_s, 3), "audit_s": round(audit_s, 3),
                             "matchable": len(matchable), "matched": len(matched),
                             "distances": [round(f.distance, 3) for f in matchable
                                           if f.distance is not None],
                             "findings": dict(Counter(f.kind.value for f in report.findings)),
                             "review": [f.message for f in report.review], "left_out": left,
                             "clean": report.clean, "old_clean": not old,
                             "false_alarm": {"old": false_alarm(old, truth),
                                             "new": false_alarm(report.findings, truth)},
                             "seconds": {k: round(v, 3) for k, v in report.seconds.items()}})
                if args.json:  # row by row, so an interrupted run still leaves its figures
                    with args.json.open("a") as out:
                        out.write(json.dumps(rows[-1]) + "\n")
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
    if args.before_after:
        print()
        print(f"{'mask':8} {'rule':4} {'clean files':>12} {'false alarms':>13} {'audit s/img':>12}")
        for mask, t in totals.items():
            n = max(1, t["images"])
            for rule, clean, false, secs in (
                    ("old", t["old_clean"], t["old_false"], t["audit_s"] - t["confirm_s"]),
                    ("new", t["clean"], t["new_false"], t["audit_s"])):
                print(f"{mask.value:8} {rule:4} {clean:>5}/{t['images']:<6} {false:>4} "
                      f"({false / n:6.1%}) {secs / n:>12.2f}")
            print(f"  demoted to review (HOG score, on a ground-truth face): {sorted(t['review'])}")
    if args.leave_one_out:
        print()
        for mask, t in totals.items():
            left = t["left_out"]
            n = max(1, len(left))
            print(f"--mask {mask.value}: one masked face >= {args.left_out_px} px pasted back on "
                  f"{len(left)} photos: reported {sum(bool(x['reported']) for x in left)}/{len(left)} "
                  f"({sum(bool(x['reported']) for x in left) / n:.1%}); by the second detector "
                  f"{sum(bool(x['second_old']) for x in left)} under the old rule, "
                  f"{sum(bool(x['second_new']) for x in left)} under the new")


if __name__ == "__main__":
    main()
