"""The share of the frame veil masks on videos, per preset, before and after issue 19's margin rule.

    .venv/bin/python benchmarks/masked_share.py ../shared/data/real_dev/*.mp4 [--presets fast,balanced]
                                                [--sheet test-artifacts/sheets] [--frames 12]
                                                [--edge-scale 1]

Real clips carry no ground truth, so what is measured is what a viewer loses: the mean and the
largest share of the frame's pixels inside veil's regions. Each clip is decoded and run through
the detect, track and regions stages twice per preset: as before issue 19
(bench_video.before_issue19: full margins) and as the preset runs now. With --sheet, a contact
sheet of --frames evenly spaced frames is written per clip and preset: each row the frame, then
"before" and "after" with the regions blacked out. Sheets of real_dev clips or rendered clips must stay in a
git-ignored folder (non-commercial data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import before_issue19  # noqa: E402

from veil import presets  # noqa: E402
from veil._types import Config, DetectPreset, MaskRegions  # noqa: E402
from veil.evaluate import boxes_coverage  # noqa: E402
from veil.media.video import VideoReader  # noqa: E402
from veil.pipeline import video_stages, with_camera  # noqa: E402
from veil.regions import rows_and_regions  # noqa: E402
from veil.stages import detect, track  # noqa: E402


def blacked(pixels: np.ndarray, plan: MaskRegions) -> np.ndarray:
    out = pixels.copy()
    for x0, y0, x1, y1 in plan.boxes:
        out[y0:y1, x0:x1] = 0
    return out


def run(path: Path, preset: DetectPreset, keep: set[int]) -> tuple[list[float], dict]:
    """Per frame, the masked share; and the kept frames' (pixels, plan)."""
    config = Config(detect=preset)
    reader = VideoReader(path)
    try:
        rate = float(reader.info.rate) if reader.info.rate else None
        stages = video_stages(config, rate)
        frames = with_camera(reader.frames(None), stages)
        shares, kept = [], {}
        for frame, rows in track(detect(frames, stages.detector, stages.every, stages.prescale),
                                 stages.tracker):
            width, height = frame.size
            plan = rows_and_regions(rows.detections, width, height, config, rows.grow, stages.sure)[0]
            shares.append(float(boxes_coverage(plan.boxes, width, height).mean()))
            if frame.index in keep:
                kept[frame.index] = (frame.pixels, plan)
        return shares, kept
    finally:
        reader.close()


def both(path: Path, preset: DetectPreset, keep: set[int]) -> tuple[list[float], list[float], dict]:
    """Masked shares before and after issue 19, and the kept frames' (pixels, before, after)."""
    with before_issue19():
        before, old = run(path, preset, keep)
    after, new = run(path, preset, keep)
    return before, after, {i: (old[i][0], old[i][1], new[i][1]) for i in new}


def sheet(kept: dict, out: Path) -> None:
    import cv2

    rows = []
    for index in sorted(kept):
        pixels, full, plan = kept[index]
        rows.append(np.concatenate([pixels, blacked(pixels, full), blacked(pixels, plan)], axis=1))
    picture = np.concatenate(rows, axis=0)
    scale = min(1.0, 2400 / picture.shape[1])
    if scale < 1.0:
        picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--presets", default="fast,balanced")
    parser.add_argument("--sheet", type=Path, help="folder for contact sheets (git-ignored!)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--edge-scale", type=float, default=None,
                        help="replace presets.EDGE_SCALE (1: boxes at the frame's edge get no lower threshold)")
    args = parser.parse_args()
    if args.edge_scale is not None:
        presets.EDGE_SCALE = args.edge_scale  # video_settings reads it on each call
    print(f"{'clip':34} {'preset':9} {'before mean':>11} {'after mean':>10} {'before max':>10} "
          f"{'after max':>9}")
    for video in args.videos:
        with VideoReader(video) as probe:
            total = probe.info.frames or 0
        keep = {int(i) for i in np.linspace(0, max(total - 1, 0), args.frames)} if args.sheet else set()
        for name in args.presets.split(","):
            preset = DetectPreset(name)
            before, after, kept = both(video, preset, keep)
            print(f"{video.stem:34.34} {name:9} {np.mean(before):11.3f} {np.mean(after):10.3f} "
                  f"{np.max(before):10.3f} {np.max(after):9.3f}", flush=True)
            if args.sheet and kept:
                sheet(kept, args.sheet / f"{video.stem}_{name}.png")


if __name__ == "__main__":
    main()
