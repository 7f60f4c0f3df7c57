"""Covered recall on 1-bit dithered copies of the dev photos against the colour originals.

    .venv/bin/python benchmarks/dithered_recall.py                     # balanced, 183 dev photos
    .venv/bin/python benchmarks/dithered_recall.py --limit 40 --raw --sigmas 1,2

Each photo is converted with Pillow's `convert("1")` (Floyd-Steinberg dither, Pillow's default for
1-bit) into a temporary folder laid out like wider_dev, next to a copy of gt.jsonl, so the same
annotations score both sets. The converted pictures are research data derived from WIDER FACE:
they live in the temporary folder only and are deleted afterwards (unless --keep names a folder).
The goal (issue 20): in each bucket of faces >= 32 px, covered recall on the 1-bit set within
0.05 of the colour photos'.

--raw adds a row for the detector run on the dots themselves (veil before detect/dequantise.py);
--sigmas adds rows with other smoothing strengths for the 1-bit set.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil._types import Config, Detections, DetectPreset, MaskRegions  # noqa: E402
from veil.evaluate import EvalReport, FrameTruth, evaluate, format_table, read_annotations  # noqa: E402

DEFAULT_GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"
GOAL_BUCKETS = ("32-64", "64+")
GOAL_GAP = 0.05


def build_one_bit(truths: list[FrameTruth], images: Path, folder: Path, annotations: Path) -> Path:
    """Write a 1-bit copy of each annotated photo under `folder`, and the annotations beside them."""
    from PIL import Image

    for truth in truths:
        target = folder / Path(truth.image).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(images / truth.image) as img:
            img.convert("RGB").convert("1").save(target)
    gt = folder / "gt.jsonl"
    lines = []
    import json

    for line in annotations.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            row["image"] = str(Path(row["image"]).with_suffix(".png"))
            lines.append(json.dumps(row))
    gt.write_text("\n".join(lines) + "\n")
    return gt


def smoothed_predictor(config: Config, sigma: float):  # type: ignore[no-untyped-def]
    """The still detector at the preset's own thresholds on the frame smoothed by `sigma` (0: on
    the raw dots), masks planned as veil does (sure-box margins included)."""
    from veil.detect.dequantise import detection_view
    from veil.pipeline import detector_for
    from veil.presets import sure_margins
    from veil.regions import mask_regions

    detector = detector_for(config)
    sure = sure_margins(config)

    def predict(pixels: np.ndarray) -> tuple[Detections, MaskRegions]:
        view = pixels if sigma <= 0 else detection_view(pixels, sigma)
        detections = detector(view)
        return detections, mask_regions(detections, pixels.shape[1], pixels.shape[0], config,
                                        sure=sure)

    return predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_GT)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    parser.add_argument("--raw", action="store_true", help="also score the detector on the raw dots")
    parser.add_argument("--sigmas", default="", help="also score these smoothing sigmas, e.g. 1,2")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the 1-bit set in this folder and keep it (never commit it)")
    args = parser.parse_args()
    if not args.annotations.is_file():
        print(f"no annotations at {args.annotations}", file=sys.stderr)
        return 2
    truths = read_annotations(args.annotations)
    if args.limit:
        truths = truths[:args.limit]
    config = Config(detect=DetectPreset(args.preset))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="veil-dithered-"))
    try:
        print(f"converting {len(truths)} photos to 1-bit in {folder} ...", file=sys.stderr, flush=True)
        gt = build_one_bit(truths, args.annotations.parent, folder, args.annotations)
        one_bit = read_annotations(gt)[:len(truths)]
        label = config.detect.value
        print("scoring the colour photos ...", file=sys.stderr, flush=True)
        colour = evaluate(truths, args.annotations.parent, config, label=f"{label}, colour")
        print("scoring the 1-bit copies ...", file=sys.stderr, flush=True)
        dithered = evaluate(one_bit, folder, config, label=f"{label}, 1-bit")
        reports: list[EvalReport] = [colour, dithered]
        extra = [0.0] if args.raw else []
        extra += [float(s) for s in args.sigmas.split(",") if s.strip()]
        for sigma in extra:
            name = "raw dots" if sigma <= 0 else f"sigma {sigma:g}"
            print(f"scoring the 1-bit copies, {name} ...", file=sys.stderr, flush=True)
            reports.append(evaluate(one_bit, folder, predictor=smoothed_predictor(config, sigma),
                                    label=f"{label}, 1-bit, {name}"))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(format_table(reports))
    print()
    gaps = []
    for name in GOAL_BUCKETS:
        gap = colour.bucket(name).covered_recall - dithered.bucket(name).covered_recall
        gaps.append(gap <= GOAL_GAP)
        print(f"covered {name}: colour {colour.bucket(name).covered_recall:.3f}, 1-bit "
              f"{dithered.bucket(name).covered_recall:.3f} (gap {gap:+.3f}, goal <= {GOAL_GAP})")
    print("1-bit " + ("meets" if all(gaps) else "MISSES") + " its goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
