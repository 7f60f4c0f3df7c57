"""Times `veil scan --json` over the WIDER dev photos and scores what it printed with veil's harness.

    .venv/bin/python benchmarks/bench_scan.py [--detect balanced] [--limit N] [--no-deface]

`veil scan` runs as a real subprocess over the images folder (start-up, decoding, detection and
planning all counted). Its JSON lines give each face's detection box and mask region, which are
scored against gt.jsonl: images/second and the covered recall per face-height bucket. As the
baseline, deface 1.5.0's defaults decode and detect the same images in this process, timed the
same way end to end, and the ratio of the two rates is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from veil.evaluate import FrameTruth, read_annotations, score_frame, summarise  # noqa: E402

DEFAULT_GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"


def veil_command() -> list[str]:
    exe = Path(sys.executable).with_name("veil")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "veil"]


def run_scan(paths: list[Path], detect: str) -> tuple[float, dict[str, dict]]:
    """Run `veil scan --json` once over all paths; return wall seconds and the JSON line per path."""
    started = time.perf_counter()
    result = subprocess.run([*veil_command(), "scan", "--json", "--detect", detect, *map(str, paths)],
                            capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"veil scan failed ({result.returncode}): {result.stderr[-2000:]}")
    rows = {}
    for line in result.stdout.splitlines():
        row = json.loads(line)
        rows[str(Path(row["path"]).resolve())] = row
    return seconds, rows


def score_rows(truths: list[FrameTruth], images: Path, rows: dict[str, dict]):  # type: ignore[no-untyped-def]
    scores = []
    for t in truths:
        row = rows[str((images / t.image).resolve())]
        faces = row["faces"]
        boxes = np.array([[f["box"][0], f["box"][1], f["box"][0] + f["box"][2], f["box"][1] + f["box"][3]]
                          for f in faces], np.float64).reshape(-1, 4)
        masks = np.array([[f["mask"][0], f["mask"][1], f["mask"][0] + f["mask"][2], f["mask"][1] + f["mask"][3]]
                          for f in faces], np.int64).reshape(-1, 4)
        scores.append(score_frame(t.boxes, t.ignore, boxes, np.array([f["score"] for f in faces]),
                                  masks, t.width, t.height, image=t.image))
    return scores


def deface_rate(truths: list[FrameTruth], images: Path) -> tuple[float, float]:
    """deface's defaults over the same images in-process: (images/second, covered recall >= 32 px)."""
    import deface_baseline

    from veil.evaluate import score_plan
    from veil.media.image import read_image

    predictor = deface_baseline.DefaceDefaults(ellipse=True)
    started = time.perf_counter()
    scores = []
    for t in truths:
        detections, coverage = predictor(read_image(images / t.image).pixels)
        scores.append(score_plan(t, detections, coverage))
    seconds = time.perf_counter() - started
    return len(truths) / seconds, summarise(scores).bucket(">=32").covered_recall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_GT)
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--detect", default="balanced")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--no-deface", action="store_true")
    args = parser.parse_args()
    if not args.annotations.is_file():
        print(f"no annotations at {args.annotations}", file=sys.stderr)
        return 2
    images = args.images or args.annotations.parent
    truths = read_annotations(args.annotations)
    if args.limit:
        truths = truths[:args.limit]
    seconds, rows = run_scan([images / t.image for t in truths], args.detect)
    report = summarise(score_rows(truths, images, rows), seconds, f"veil scan --detect {args.detect}")
    rate = len(truths) / seconds
    print(f"veil scan --detect {args.detect}: {len(truths)} images in {seconds:.1f} s = {rate:.2f} images/s "
          f"(wall clock, whole process; {os.cpu_count()} CPUs)")
    for b in report.buckets:
        print(f"  covered recall {b.name:>6}: {b.covered_recall:.3f} ({b.covered}/{b.faces})"
              f"   recall@IoU0.5 {b.recall:.3f}")
    print(f"  precision {report.precision:.3f}; masked area {report.area_ratio:.2f}x the annotated faces")
    if not args.no_deface:
        import deface_baseline

        if deface_baseline.available():
            base_rate, base_cov = deface_rate(truths, images)
            print(f"deface 1.5.0 defaults (in-process baseline): {base_rate:.2f} images/s, covered recall "
                  f">=32 px {base_cov:.3f}")
            print(f"veil scan / deface throughput: {rate / base_rate:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
