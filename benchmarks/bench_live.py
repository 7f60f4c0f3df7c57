"""`veil live` in real time on rendered clips: what reaches the viewer, how late, at what cost.

    python benchmarks/bench_live.py [--seconds 60] [--runs crowd720,pan720,crowd1080,crowd720-d0]

Renders make_clips.py clips (WIDER derivatives: a temporary folder, never kept), stamps each
picture with its frame number (tests/live_support.py), and plays each through `veil live` with
veil's own detector at the live preset, in real time from the file, to an MPEG-TS file. Every
output frame is then judged against the ground truth of the input frame it shows:

- unchecked frames (veil's count; by construction 0) and bare faces >= 32 px in shown frames;
- covered fraction of face-frames >= 32 px, and the longest run of output frames any such face
  stayed bare (the bar for files: <= 2);
- output fps, curtain and repeated share, dropped input frames;
- added latency p50/p95 (output wall clock minus input time minus --delay, veil's report);
- CPU (process time / wall time, 1.0 = one core) and RSS sampled every second.

Runs: crowd720 (crowd, zoom, 1280x720), pan720 (crowd, pan), crowd1080 (the pan at 1920x1080),
<run>-d0 for --delay 0 (no backward fill) and <run>-ks for --keep-scale (curtains when behind,
no smaller detector scale). One JSON line per run, then a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT.parent / "shared" / "data"

from live_support import MIN_FACE, Clip, above_band, read_stamp, stamp_clip  # noqa: E402
from bench_video import load_make_clips  # noqa: E402

from veil.evaluate import COVERED_FRACTION, covered_fractions  # noqa: E402
from veil.live import LiveOptions, run_live  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

# run name -> (program clip number, size)
RUNS = {"crowd720": (0, (1280, 720)), "pan720": (2, (1280, 720)), "crowd1080": (2, (1920, 1080))}



def render(make_clips, out: Path, number: int, size: tuple[int, int], seconds: float) -> Clip:  # type: ignore[no-untyped-def]
    records = make_clips.load_records(str(DATA / "wider_dev"))
    by_image = {r["image"]: r for r in records}
    spec = make_clips.plan_clips(records, 3, 7, seconds, Fraction(30), size, "bench")[number]
    entry = make_clips.render_clip(spec, by_image, str(DATA / "wider_dev"), str(out))
    return stamp_clip(out / entry["video"], out / entry["gt"], out, size, 30, name=entry["name"])


class Sampler(threading.Thread):
    """RSS (MB) and CPU share once a second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rss: list[float] = []
        self.cpu: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last_cpu, last_t = time.process_time(), time.monotonic()
        while not self.stop.wait(1.0):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss.append(int(line.split()[1]) / 1024)
            cpu, t = time.process_time(), time.monotonic()
            self.cpu.append((cpu - last_cpu) / (t - last_t))
            last_cpu, last_t = cpu, t


def judge(path: Path, clip: Clip) -> dict[str, float]:
    frames = curtains = unreadable = face_frames = covered = 0
    runs: dict[int, int] = {}
    longest = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames += 1
            luma = frame.reformat(format="yuv420p").to_ndarray()[:frame.height]
            if float(np.percentile(luma, 99.5)) <= 40:
                curtains += 1
                runs.clear()
                continue
            number = read_stamp(luma)
            if number is None or number >= len(clip.truth):
                unreadable += 1
                continue
            truth = clip.truth[number]
            boxes, shown = above_band(truth.boxes_xyxy, luma.shape[0])
            masked = (luma <= 40) | (clip.originals[number] <= 40)
            fractions = covered_fractions(boxes, masked)
            for height, face, fraction, seen in zip(truth.boxes[:, 3], truth.ids, fractions, shown):
                if height < MIN_FACE or not seen:  # under the stamp band: not in the picture
                    continue
                face_frames += 1
                ok = fraction >= COVERED_FRACTION
                covered += int(ok)
                runs[int(face)] = 0 if ok else runs.get(int(face), 0) + 1
                longest = max(longest, runs[int(face)])
    return {"frames_judged": int(frames), "curtains_seen": curtains, "unreadable": unreadable,
            "face_frames": face_frames, "covered_fraction": round(covered / max(face_frames, 1), 4),
            "bare_face_frames": int(face_frames - covered), "longest_bare_run": int(longest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", default="crowd720,pan720,crowd1080,crowd720-d0")
    args = parser.parse_args()
    make_clips = load_make_clips()
    rows = []
    with tempfile.TemporaryDirectory(prefix="veil-bench-live-") as tmp:
        clips: dict[str, Clip] = {}
        for run in args.runs.split(","):
            name, _, variant = run.partition("-")
            if name not in clips:
                number, size = RUNS[name]
                started = time.monotonic()
                clips[name] = render(make_clips, Path(tmp), number, size, args.seconds)
                print(f"rendered {name} in {time.monotonic() - started:.0f} s", file=sys.stderr)
            clip = clips[name]
            delay = 0.0 if variant == "d0" else 0.5  # "ks": --keep-scale, curtains when behind
            out = Path(tmp) / f"{run}.ts"
            sampler = Sampler()
            sampler.start()
            report = run_live(LiveOptions(str(clip.path), str(out), delay_s=delay,
                                          degrade=variant != "ks"))
            sampler.stop.set()
            sampler.join()
            row = {"run": run, "delay_s": delay, "frames_out": report.frames_out,
                   "unchecked_frames": report.unchecked_frames, **judge(out, clip),
                   "output_fps": report.output_fps, "input_fps": report.input_fps,
                   "curtain_share": round(report.curtain_frames / max(report.frames_out, 1), 4),
                   "repeated_share": round(report.repeated_frames / max(report.frames_out, 1), 4),
                   "reduced_share": round(report.reduced_scale_frames / max(report.frames_out, 1), 4),
                   "scale_changes": report.scale_changes,
                   "dropped_frames": report.dropped_frames, "latency_ms": report.latency_ms,
                   "cpu_cores_mean": round(float(np.mean(sampler.cpu)), 2) if sampler.cpu else None,
                   "rss_mb_first_last_max": [round(sampler.rss[0]), round(sampler.rss[-1]),
                                             round(max(sampler.rss))] if sampler.rss else None,
                   "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| run | out fps | curtain | repeated | reduced scale (changes) | covered >=32 | longest bare | "
          "unchecked | latency p50/p95 ms | CPU cores | RSS MB first/last/max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['output_fps']} | {r['curtain_share']:.1%} | {r['repeated_share']:.1%} | "
              f"{r['reduced_share']:.1%} ({r['scale_changes']}) | {r['covered_fraction']:.3f} | {r['longest_bare_run']} | {r['unchecked_frames']} | "
              f"{r['latency_ms']['p50']:.0f}/{r['latency_ms']['p95']:.0f} | {r['cpu_cores_mean']} | "
              f"{'/'.join(str(v) for v in r['rss_mb_first_last_max'] or [])} |")


if __name__ == "__main__":
    main()
