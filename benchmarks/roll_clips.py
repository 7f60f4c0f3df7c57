"""Video from a camera that rolls: rendered clips turned on their side, or rolling, with and without --roll.

    .venv/bin/python benchmarks/roll_clips.py [--seed 8] [--seconds 3] [--clips 3]
                                              [--views upright,cw,ccw,roll] [--settings balanced]
                                              [--before] [--rotated-floors 0.05,0] [--floors 0.25]

A head-worn or handheld camera that rolls puts faces at 90 degrees in the frame, where CenterFace
scores them low or not at all. `Config.roll` (`veil redact --roll`) also runs every detector pass
on the frame turned a quarter turn either way (detect/rotate.py). This measures what that buys on
clips no setting was tuned on: make_clips.py's programme rendered with `--seed` (the first
`--clips` clips) into a temporary folder (WIDER derivatives: never kept), then each clip in these
views:

- `upright`: as rendered (what --roll costs on ordinary footage);
- `cw` / `ccw`: every frame turned 90 degrees clockwise / counter-clockwise (a camera held on its
  side); the ground-truth boxes turn exactly with it;
- `roll`: the camera rolls steadily from upright to 90 degrees clockwise over the clip, the frame
  keeping its size (corners outside the turned picture go black). Each ground-truth face is the
  axis-aligned box around the turned ellipse inscribed in its annotated box (faces are oval: the
  box around the turned rectangle would ask masks to cover background corners); a face less than
  half inside the frame moves to "ignore", as make_clips.py does.

Each view is re-encoded as H.264 (PyAV) and redacted by veil with each setting, with and without
`Config.roll`, and scored as bench_video.py scores: covered recall of faces >= 32 px, the longest
run of frames any such face went unmasked, the median masked fraction of the frame and of the
face area, and the seconds the redaction took. `--before` adds `--roll` as first built (every turned
view under presets.ROLL_MIN_SCORE, none taken for the upright one: rotate.standing_view off),
`--rotated-floors` the same at other floors, `--floors` veil's --roll at other floors, each in the
same run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_video import Recorder, load_gt, load_make_clips, parse_setting, score  # noqa: E402

from veil._types import Config  # noqa: E402
from veil import pipeline  # noqa: E402
from veil.detect import rotate  # noqa: E402
from veil.pipeline import redact_file  # noqa: E402

VIEWS = ("upright", "cw", "ccw", "roll")


def turn_box(box: list[float], view: str, width: int, height: int) -> list[float]:
    """An [x, y, w, h] box of a width x height frame, in the frame turned a quarter turn."""
    x, y, w, h = box
    if view == "cw":  # (x, y) -> (height - y, x)
        return [height - y - h, x, h, w]
    if view == "ccw":  # (x, y) -> (y, width - x)
        return [y, width - x - w, h, w]
    return [x, y, w, h]


def rolled_box(box: list[float], angle: float, width: int, height: int) -> list[float]:
    """The axis-aligned box around the ellipse inscribed in `box`, turned by `angle` degrees
    clockwise about the frame's centre (the frame keeps its size)."""
    x, y, w, h = box
    a = math.radians(angle)
    cx, cy = width / 2, height / 2
    px, py = x + w / 2 - cx, y + h / 2 - cy
    # Clockwise on screen (y down): x' = x cos - y sin, y' = x sin + y cos.
    qx, qy = px * math.cos(a) - py * math.sin(a) + cx, px * math.sin(a) + py * math.cos(a) + cy
    half_w = math.hypot(w / 2 * math.cos(a), h / 2 * math.sin(a))
    half_h = math.hypot(w / 2 * math.sin(a), h / 2 * math.cos(a))
    return [qx - half_w, qy - half_h, 2 * half_w, 2 * half_h]


def clip_to_frame(box: list[float], width: int, height: int) -> tuple[list[float], float]:
    """The box clipped to the frame, and the share of its area inside."""
    x, y, w, h = box
    x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
    if x1 <= x0 or y1 <= y0:
        return [x0, y0, 0.0, 0.0], 0.0
    return [x0, y0, x1 - x0, y1 - y0], (x1 - x0) * (y1 - y0) / max(w * h, 1e-9)


def make_view(video: Path, gt: list[dict], view: str, out: Path) -> list[dict]:
    """Write `video` in the given view to `out` (H.264, same rate) and return its ground truth."""
    rows = []
    with av.open(str(video)) as source, av.open(str(out), "w") as sink:
        stream_in = source.streams.video[0]
        frames = stream_in.frames or len(gt)
        stream = None
        for index, frame in enumerate(source.decode(stream_in)):
            pixels = frame.to_ndarray(format="rgb24")
            height, width = pixels.shape[:2]
            angle = 90.0 * index / max(frames - 1, 1)
            if view == "cw":
                turned = np.ascontiguousarray(np.rot90(pixels, k=-1))
            elif view == "ccw":
                turned = np.ascontiguousarray(np.rot90(pixels, k=1))
            elif view == "roll":
                # cv2's positive angle turns counter-clockwise on screen: negate for clockwise.
                matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
                turned = cv2.warpAffine(pixels, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                        borderValue=(0, 0, 0))
            else:
                turned = pixels
            if stream is None:
                stream = sink.add_stream("libx264", rate=stream_in.average_rate)
                stream.width, stream.height = turned.shape[1], turned.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(turned, format="rgb24")):
                sink.mux(packet)
            row = gt[index] if index < len(gt) else {"boxes": [], "ignore": [], "ids": []}
            boxes, ids, ignore = [], [], []
            for box, face in zip(row["boxes"], row["ids"]):
                if view == "roll":
                    moved, inside = clip_to_frame(rolled_box(box, angle, width, height), width, height)
                    (boxes if inside >= 0.5 else ignore).append(moved)
                    if inside >= 0.5:
                        ids.append(face)
                else:
                    boxes.append(turn_box(box, view, width, height))
                    ids.append(face)
            rows.append({"frame": index, "boxes": boxes, "ids": ids, "ignore": ignore})
        if stream is not None:
            for packet in stream.encode():
                sink.mux(packet)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=8, help="make_clips.py seed")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clips", type=int, default=3, help="the first N clips of the programme")
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--settings", default="balanced")
    parser.add_argument("--rotated-floors", default="",
                        help="also run --roll with these floors on boxes seen only sideways "
                             "(comma-separated; veil's is presets.ROLL_MIN_SCORE), in every "
                             "turned view")
    parser.add_argument("--floors", default="",
                        help="also run --roll as veil runs it (the standing view kept whole) with "
                             "these floors on boxes seen only sideways (comma-separated)")
    parser.add_argument("--before", action="store_true",
                        help="also run --roll as first built: the floor on every turned view, "
                             "none taken for upright (rotate.standing_view)")
    args = parser.parse_args()
    views = args.views.split(",")
    unknown = set(views) - set(VIEWS)
    if unknown:
        parser.error(f"unknown views {sorted(unknown)}; choose from {', '.join(VIEWS)}")
    settings = [parse_setting(s) for s in args.settings.split(",")]
    veil_floor = pipeline.ROLL_MIN_SCORE
    floors = [float(f) for f in args.rotated_floors.split(",") if f]
    veil_standing = rotate.standing_view
    variants: list[tuple[str, bool, float, Callable[..., int]]] = [
        ("", False, veil_floor, veil_standing), (" --roll", True, veil_floor, veil_standing)]
    if args.before:  # issue 18's first --roll: every turned view under the floor
        variants.append((" --roll before", True, veil_floor, lambda *_: 0))
    variants += [(f" --roll@{f:g}", True, f, lambda *_: 0) for f in floors]
    variants += [(f" --roll floor {f:g}", True, f, veil_standing)
                 for f in (float(f) for f in args.floors.split(",") if f)]
    totals: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="veil-roll-") as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / f"seed{args.seed}"
        load_make_clips().make_clips(str(folder), count=args.clips, seconds=args.seconds, seed=args.seed)
        print(f"{'clip':28} {'view':8} {'setting':16} {'>=32px':>7} {'all':>7} {'run':>4} {'masked':>7} "
              f"{'area':>6} {'s':>6}")
        for video in sorted(folder.glob("*.mp4")):
            gt = load_gt(video.with_name(video.stem + ".gt.jsonl"))
            for view in views:
                turned = tmp / f"{video.stem}.{view}.mp4"
                truth = make_view(video, gt, view, turned)
                (tmp / f"{video.stem}.{view}.gt.jsonl").write_text(
                    "".join(json.dumps(row) + "\n" for row in truth))
                for name, setting in settings:
                    for suffix, roll, floor, standing in variants:
                        recorder = Recorder()
                        started = time.perf_counter()
                        pipeline.ROLL_MIN_SCORE = floor
                        rotate.standing_view = standing
                        try:
                            redact_file(turned, tmp / "out.mp4", Config(roll=roll), overwrite=True,
                                        plan=recorder, detect_settings=setting)
                        finally:
                            pipeline.ROLL_MIN_SCORE = veil_floor
                            rotate.standing_view = veil_standing
                        seconds = time.perf_counter() - started
                        r = score(truth, recorder.coverages)
                        recall = r.covered_large / max(r.total_large, 1)
                        every = r.covered_all / max(r.total_all, 1)
                        label = name + suffix
                        totals.setdefault((view, label), []).extend([recall, every, r.longest_gap,
                                                                     r.masked, seconds])
                        print(f"{video.stem:28.28} {view:8} {label:16} {recall:7.4f} {every:7.4f} "
                              f"{r.longest_gap:4d} {r.masked:7.3f} {r.area:5.2f}x {seconds:6.1f}",
                              flush=True)
    print()
    print("| view | setting | lowest recall >= 32 px | mean recall, all faces | longest unmasked run "
          "| mean masked | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (view, label), values in totals.items():
        recalls, every, runs, masked, seconds = (values[k::5] for k in range(5))
        print(f"| {view} | {label} | {min(recalls):.4f} | {sum(every) / len(every):.4f} | {max(runs)} | "
              f"{sum(masked) / len(masked):.3f} | {sum(seconds):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
