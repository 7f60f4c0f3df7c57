"""A long video in segments: what cutting costs, what a killed run keeps, and recall at the cuts.

    python benchmarks/bench_segments.py [--seconds 60] [--segment 15] [--size 640x360]

One rendered clip (make_clips.py, with a keyframe every second so that there is somewhere to cut;
a WIDER derivative, so it is made in a temporary folder and never kept) is redacted by real
`python -m veil redact` processes, timed from start to exit:

- whole: `--segment-minutes 0` (the baseline, in the same run);
- cut: `--segment` seconds per segment, --jobs 1 and --jobs 2. The ratio to whole is the price of
  the overlaps (each core decodes and detects `segments.overlap_s` more on each side: 3 s with the
  default tracker) and the join. With the default 10-minute segments that share is about 1 %;
  a short clip cut finely shows it magnified, so the frames decoded are printed too;
- resume: the cut run SIGKILLed as soon as its second segment's part exists, then run again: the
  time of the rerun against a full cut run (it redoes only the unfinished segments);
- recall: the face-frames >= 32 px masked in the output's pixels (a solid black box), whole
  against cut, counted on the frames within 1 s of a cut too, where segments meet.

With `--real CLIP` (a real clip, no ground truth: `../shared/data/real_dev/phone_selfie.mp4`),
it is redacted whole and cut instead, and compared: frame times against the source, the masked
share of the frame (pixels solid black) in each, and the largest share of a frame masked whole
but not cut (what cutting could expose).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from veil._types import Config  # noqa: E402
from veil.evaluate import COVERED_FRACTION, read_clip_truth  # noqa: E402
from veil.segments import index_video, overlap_s, split  # noqa: E402

from bench_video import load_make_clips  # noqa: E402

MIN_FACE = 32


def _render(folder: Path, seconds: float, size: tuple[int, int]) -> tuple[Path, list]:
    module = load_make_clips()
    module.X264_OPTIONS.update(g="30", keyint_min="30")
    entry = module.make_clips(str(folder / "render"), count=1, seconds=seconds, size=size, seed=12)[0]
    source = folder / "in" / Path(entry["video"]).name
    source.parent.mkdir()
    (folder / "render" / entry["video"]).rename(source)
    return source, read_clip_truth(folder / "render" / entry["gt"], *size)


def _veil(*args: str | Path, kill_when: Path | None = None) -> float:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "veil", "redact", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, NO_COLOR="1"))
    if kill_when is not None:
        deadline = time.monotonic() + 600
        while process.poll() is None and not kill_when.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return time.perf_counter() - started
    _, err = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise SystemExit(f"veil redact {' '.join(map(str, args))} failed:\n{err.decode()}")
    return time.perf_counter() - started


def _covered(path: Path, truth: list, size: tuple[int, int], near: set[int]) -> tuple[int, int, int, int]:
    found = total = found_near = total_near = 0
    with av.open(str(path)) as container:
        for index, (frame, faces) in enumerate(zip(container.decode(video=0), truth)):
            pixels = frame.to_ndarray(format="rgb24")
            for box, height in zip(faces.boxes_xyxy.astype(int), faces.boxes[:, 3]):
                if height < MIN_FACE:
                    continue
                x0, y0, x1, y1 = np.clip(box, 0, [size[0], size[1], size[0], size[1]])
                patch = pixels[y0:y1, x0:x1].max(axis=2)
                ok = bool(patch.size and (patch < 40).mean() >= COVERED_FRACTION)
                total += 1
                found += ok
                if index in near:
                    total_near += 1
                    found_near += ok
    return found, total, found_near, total_near


def _dark(path: Path) -> tuple[list[int], list[np.ndarray]]:
    with av.open(str(path)) as container:
        frames = [(f.pts, f.to_ndarray(format="rgb24").max(axis=2) < 24)
                  for f in container.decode(video=0)]
    return [pts for pts, _ in frames], [dark for _, dark in frames]


def real(clip: Path, segment: float) -> int:
    with tempfile.TemporaryDirectory(prefix="veil-bench-segments-") as temp:
        folder = Path(temp)
        (folder / "in").mkdir()
        source = folder / "in" / clip.name
        source.symlink_to(clip.resolve())
        segments = split(index_video(clip), segment, overlap_s(Config()))
        whole = _veil(source.parent, "-o", folder / "whole", "--segment-minutes", "0", "--jobs", "1")
        cut = _veil(source.parent, "-o", folder / "cut", "--segment-minutes", str(segment / 60),
                    "--jobs", "1")
        with av.open(str(clip)) as container:
            times = [f.pts for f in container.decode(video=0)]
        whole_times, whole_dark = _dark(folder / "whole" / clip.name)
        cut_times, cut_dark = _dark(folder / "cut" / clip.name)
        exposed = max(float((w & ~c).mean()) for w, c in zip(whole_dark, cut_dark))
        print(f"{clip.name}: {len(times)} frames, {len(segments)} segments of ~{segment:g} s; "
              f"whole {whole:.1f} s, cut {cut:.1f} s ({cut / whole:.2f}x)")
        print(f"frame times as the source: whole {whole_times == times}, cut {cut_times == times}")
        print(f"masked share: whole {np.mean([d.mean() for d in whole_dark]):.4f}, cut "
              f"{np.mean([d.mean() for d in cut_dark]):.4f}; most of a frame masked whole but not "
              f"cut: {exposed:.4f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--segment", type=float, default=15.0, help="seconds per segment")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--real", type=Path, help="compare whole and cut on this real clip instead")
    args = parser.parse_args()
    if args.real is not None:
        return real(args.real, args.segment)
    size = tuple(int(v) for v in args.size.split("x"))
    minutes = str(args.segment / 60)
    with tempfile.TemporaryDirectory(prefix="veil-bench-segments-") as temp:
        folder = Path(temp)
        source, truth = _render(folder, args.seconds, size)  # type: ignore[arg-type]
        index = index_video(source)
        segments = split(index, args.segment, overlap_s(Config()))
        frames = len(index.frames)
        decoded = 0
        for s in segments:
            end = len(index.frames) if s.lead_out is None else index.frames.index(
                min(f for f in index.frames if f >= s.lead_out))
            decoded += end - s.first_index
        cuts = [index.frames.index(s.start) for s in segments[1:]]
        rate = frames / args.seconds
        near = {i for cut in cuts for i in range(int(cut - rate), int(cut + rate))}
        print(f"clip: {args.seconds:.0f} s, {frames} frames, {size[0]}x{size[1]}; "
              f"{len(segments)} segments of ~{args.segment:g} s; frames decoded "
              f"{decoded} ({decoded / frames:.2f}x the video)")
        whole = _veil(source.parent, "-o", folder / "whole", "--segment-minutes", "0", "--jobs", "1")
        cut1 = _veil(source.parent, "-o", folder / "cut1", "--segment-minutes", minutes, "--jobs", "1")
        cut2 = _veil(source.parent, "-o", folder / "cut2", "--segment-minutes", minutes, "--jobs", "2")
        second = folder / "resume" / f".{source.stem}.veil-segment-0002-of-{len(segments):04d}{source.suffix}"
        killed = _veil(source.parent, "-o", folder / "resume", "--segment-minutes", minutes,
                       "--jobs", "1", kill_when=second)
        rerun = _veil(source.parent, "-o", folder / "resume", "--segment-minutes", minutes, "--jobs", "1")
        same = (folder / "resume" / source.name).read_bytes() == (folder / "cut1" / source.name).read_bytes()
        print("| run | seconds | vs whole |\n| --- | ---: | ---: |")
        print(f"| whole (--segment-minutes 0) | {whole:.1f} | 1.00x |")
        print(f"| cut, --jobs 1 | {cut1:.1f} | {cut1 / whole:.2f}x |")
        print(f"| cut, --jobs 2 | {cut2:.1f} | {cut2 / whole:.2f}x |")
        print(f"| killed after segment 2 of {len(segments)}, then rerun | {killed:.1f} + {rerun:.1f} | "
              f"rerun {rerun / cut1:.2f}x a full cut run |")
        print(f"resumed output byte-identical to an uninterrupted cut run: {same}")
        w = _covered(folder / "whole" / source.name, truth, size, near)  # type: ignore[arg-type]
        c = _covered(folder / "cut1" / source.name, truth, size, near)  # type: ignore[arg-type]
        print(f"covered face-frames >= {MIN_FACE} px: whole {w[0]}/{w[1]} ({w[0] / w[1]:.4f}), "
              f"cut {c[0]}/{c[1]} ({c[0] / c[1]:.4f}); within 1 s of a cut: whole {w[2]}/{w[3]}, "
              f"cut {c[2]}/{c[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
