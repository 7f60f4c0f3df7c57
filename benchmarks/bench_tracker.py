"""The tracker alone, on a crowd clip's real detections, against the whole pipeline in the same run.

    python benchmarks/bench_tracker.py [--clips DIR] [--seconds 10] [--size 1280x720]
                                       [--setting balanced] [--repeat 3]

Runs veil once on the clip (rendered from ../shared/data/wider_dev with make_clips.py into a
temporary folder unless --clips is given) and records what the tracker was fed: each frame's
detections and camera motion. Then it times, alternately, the whole redaction of the clip and a
replay of those recorded frames through a fresh tracker, and prints both in ms a frame with the
tracker's share of the pipeline's time. The replay gives the same output as the run (checked by
a digest of every released frame), so it times exactly the tracking work the run did.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import veil.pipeline as pipeline  # noqa: E402
import veil.stages as stages  # noqa: E402
from bench_video import parse_setting, render  # noqa: E402
from veil._types import Config  # noqa: E402
from veil.track import TrackedFrame, Tracker, TrackerSettings  # noqa: E402

Push = tuple[int, Any, Any]


class _Recording(Tracker):
    """The pipeline's tracker, keeping a copy of everything pushed into it."""

    runs: list[tuple[TrackerSettings, list[Push], list[TrackedFrame]]] = []

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        super().__init__(settings)
        self.pushes: list[Push] = []
        self.out: list[TrackedFrame] = []
        _Recording.runs.append((self.settings, self.pushes, self.out))

    def push(self, index: int, detections: Any, motion: Any = None) -> list[TrackedFrame]:
        self.pushes.append((index, detections, motion))
        released = super().push(index, detections, motion)
        self.out.extend(released)
        return released

    def flush(self) -> list[TrackedFrame]:
        released = super().flush()
        self.out.extend(released)
        return released


def replay(settings: TrackerSettings, pushes: list[Push]) -> list[TrackedFrame]:
    tracker = Tracker(settings)
    out: list[TrackedFrame] = []
    for index, detections, motion in pushes:
        out.extend(tracker.push(index, detections, motion))
    out.extend(tracker.flush())
    return out


def digest(frames: list[TrackedFrame]) -> str:
    h = hashlib.sha256()
    for f in frames:
        d = f.detections
        for a in (d.boxes, d.scores, d.track_ids, d.sources, f.grow):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(f"{f.index} {f.detector_ran}".encode())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, help="folder with <name>.mp4 (the first is used)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--setting", default="balanced")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    name, setting = parse_setting(args.setting)
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.clips:
            video = sorted(args.clips.glob("*.mp4"))[0]
        else:
            size = tuple(int(v) for v in args.size.split("x"))
            video = render(tmp / "clips", args.seconds, [size])[0][0]  # type: ignore[list-item]

        def redact() -> None:
            pipeline.redact_file(video, tmp / "veil.mp4", Config(), overwrite=True,
                                       detect_settings=setting)

        stages.Tracker = _Recording  # type: ignore[misc]
        try:
            redact()
        finally:
            stages.Tracker = Tracker  # type: ignore[misc]
        settings, pushes, recorded = _Recording.runs[-1]
        frames = len(pushes)
        same = digest(replay(settings, pushes)) == digest(recorded)
        rows = sum(len(f.detections) for f in recorded) / max(frames, 1)
        ran = sum(d is not None for _, d, _ in pushes)
        found = sum(len(d) for _, d, _ in pushes if d is not None) / max(ran, 1)
        print(f"{video.name}: {frames} frames, veil {name}; {found:.0f} detections a detector frame, "
              f"{rows:.0f} regions a frame after tracking; replay output same as the run's: {same}")
        whole, tracking = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            redact()
            whole.append((time.perf_counter() - t) / frames)
            t = time.perf_counter()
            replay(settings, pushes)
            tracking.append((time.perf_counter() - t) / frames)
        share = [t / w for t, w in zip(tracking, whole)]
        print(f"pipeline  {1000 * statistics.median(whole):6.2f} ms a frame "
              f"({1000 * min(whole):.2f}-{1000 * max(whole):.2f})")
        print(f"tracker   {1000 * statistics.median(tracking):6.2f} ms a frame "
              f"({1000 * min(tracking):.2f}-{1000 * max(tracking):.2f}), "
              f"{100 * statistics.median(share):.1f} % of the pipeline's time "
              f"({100 * min(share):.1f}-{100 * max(share):.1f})")
        if not same:
            sys.exit("the replayed tracker's output differs from the run's")


if __name__ == "__main__":
    main()
