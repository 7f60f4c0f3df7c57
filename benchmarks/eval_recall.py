"""Recall table: each detect preset and deface 1.5.0's defaults, scored by veil's harness on the same photos.

    .venv/bin/python benchmarks/eval_recall.py                      # all presets + deface, 183 dev photos
    .venv/bin/python benchmarks/eval_recall.py --presets balanced --limit 40
    .venv/bin/python benchmarks/eval_recall.py --presets fast,balanced --before --no-deface

Prints a Markdown table (covered recall and IoU-0.5 recall per face-height bucket, precision, masked
area over annotated face area, images/second of detection + planning), throughput ratios against
balanced and deface measured in this same run, and whether each preset meets its targets.
With --before, each preset is also scored as before issue 19 (bench_video.before_issue19: every
box at full margins), in the same run, as a row `<preset>-before`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from veil._types import Config, DetectPreset  # noqa: E402
from veil.evaluate import EvalReport, evaluate, format_table, read_annotations  # noqa: E402

DEFAULT_GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"

# The issue's targets: (bucket, minimum covered recall) and the area budget where one is set.
TARGETS: dict[str, tuple[list[tuple[str, float]], float | None]] = {
    "balanced": ([(">=32", 0.98), ("16-32", 0.95), ("<16", 0.80)], 3.0),
    "thorough": ([(">=32", 0.99), ("<16", 0.88)], None),
}


def check(report: EvalReport) -> str:
    if report.label not in TARGETS:
        return ""
    wanted, area = TARGETS[report.label]
    notes = []
    for bucket, minimum in wanted:
        got = report.bucket(bucket).covered_recall
        notes.append(f"covered {bucket} {got:.3f} {'>=' if got >= minimum else '< '} {minimum}")
    if area is not None:
        notes.append(f"area {report.area_ratio:.2f}x {'<=' if report.area_ratio <= area else '> '} {area}x")
    ok = all(report.bucket(b).covered_recall >= m for b, m in wanted) and (
        area is None or report.area_ratio <= area)
    return f"{report.label}: {'meets' if ok else 'MISSES'} its targets ({'; '.join(notes)})"


def interleaved_rates(truths: list, images: Path, presets: list[DetectPreset], threads: int) -> dict[str, float]:
    """Images/second of detection + planning per preset, the presets taking turns on each image so
    that a machine shared with other work slows them all alike (the ratio is what is compared)."""
    import time

    from veil.media.image import read_image
    from veil.pipeline import scan_image

    seconds = dict.fromkeys(presets, 0.0)
    configs = {p: Config(detect=p, threads=threads) for p in presets}
    for truth in truths:
        pixels = read_image(images / truth.image).pixels
        for preset in presets:
            started = time.perf_counter()
            scan_image(pixels, configs[preset])
            seconds[preset] += time.perf_counter() - started
    return {p.value: len(truths) / seconds[p] for p in presets}


def evaluate_both(truths: list, images: Path, config: Config, label: str) -> tuple[EvalReport, EvalReport]:
    """The preset scored as before issue 19 (full margins) and as it is, from one detection per photo."""
    from bench_video import before_issue19

    from veil.evaluate import score_plan, summarise
    from veil.media.image import read_image
    from veil.pipeline import scan_image
    from veil.regions import mask_regions

    import time

    before, after, seconds = [], [], 0.0
    for truth in truths:
        pixels = read_image(images / truth.image, config.max_pixels).pixels
        started = time.perf_counter()
        detections, plan = scan_image(pixels, config)
        seconds += time.perf_counter() - started
        after.append(score_plan(truth, detections, plan))
        with before_issue19():
            before.append(score_plan(truth, detections, mask_regions(detections, truth.width,
                                                                   truth.height, config)))
    return summarise(before, seconds, label + "-before"), summarise(after, seconds, label)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_GT)
    parser.add_argument("--images", type=Path, default=None, help="default: the annotations' folder")
    parser.add_argument("--presets", default="fast,balanced,thorough")
    parser.add_argument("--no-deface", action="store_true", help="skip the deface comparison rows")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--before", action="store_true",
                        help="also score each preset as before issue 19 (full margins)")
    parser.add_argument("--interleave", type=int, default=30,
                        help="also time the presets taking turns on the first N images (0: skip)")
    args = parser.parse_args()
    if not args.annotations.is_file():
        print(f"no annotations at {args.annotations}", file=sys.stderr)
        return 2
    truths = read_annotations(args.annotations)
    if args.limit:
        truths = truths[:args.limit]
    images = args.images or args.annotations.parent

    reports: list[EvalReport] = []
    for name in [p for p in args.presets.split(",") if p]:
        preset = DetectPreset(name)
        print(f"scoring {preset.value} on {len(truths)} images ...", file=sys.stderr, flush=True)
        config = Config(detect=preset, threads=args.threads)
        if args.before:
            # The detector's boxes are the same with and without the margin rule; only planning
            # differs, so both rows come from one detection per photo.
            before, after = evaluate_both(truths, images, config, preset.value)
            reports += [before, after]
        else:
            reports.append(evaluate(truths, images, config, label=preset.value))
    if not args.no_deface:
        import deface_baseline

        if deface_baseline.available():
            for ellipse, label in ((True, "deface 1.5.0 defaults (ellipse)"),
                                   (False, "deface 1.5.0 defaults, --boxes")):
                print(f"scoring {label} ...", file=sys.stderr, flush=True)
                reports.append(evaluate(truths, images, predictor=deface_baseline.DefaceDefaults(ellipse),
                                        label=label))
        else:
            print("deface is not installed: no comparison rows", file=sys.stderr)

    print(format_table(reports))
    print()
    by_label = {r.label: r for r in reports}
    for base in ("balanced", "deface 1.5.0 defaults (ellipse)"):
        if base in by_label:
            ratios = ", ".join(f"{r.label} {r.frames_per_second / by_label[base].frames_per_second:.2f}x"
                               for r in reports if r.label != base)
            print(f"throughput relative to {base}: {ratios}")
    presets = [DetectPreset(p) for p in args.presets.split(",") if p]
    if args.interleave and len(presets) > 1:
        rates = interleaved_rates(truths[:args.interleave], images, presets, args.threads)
        base = rates.get("balanced")
        print(f"interleaved on {min(args.interleave, len(truths))} images: " + ", ".join(
            f"{name} {rate:.2f} images/s" + (f" ({rate / base:.2f}x balanced)" if base else "")
            for name, rate in rates.items()))
    for r in reports:
        line = check(r)
        if line:
            print(line)
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
