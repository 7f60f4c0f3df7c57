"""Video speed and recall, measured in one run: veil settings vs a bare transcode vs deface.

    python benchmarks/bench_video.py [--clips DIR] [--seconds 3] [--sizes 1280x720,1920x1080]
                                     [--settings fast:3,balanced:2,fast:5:still] [--no-deface]
                                     [--repeat 3]

Without --clips it renders clips from ../shared/data/wider_dev with make_clips.py into a temporary
folder (WIDER derivatives: never kept). For every clip it prints, measured in the same process
tree on the same clip:

- bare: decode + encode with veil's encoder settings (libx264, yuv420p, CRF 18, veil's x264 preset),
  no detection: the floor for any redactor that re-encodes;
- veil for each setting (see parse_setting: a video preset, optionally run on every k-th frame),
  with covered recall (a ground-truth face counts when >= 80% of its box is inside the union of
  the masks of that frame) for faces >= 32 px and for all faces, and the longest run of
  consecutive frames any face >= 32 px went unmasked, and how much is masked (the median over
  frames of the masked fraction of the frame, and of masked pixels over ground-truth face pixels);
- deface's default CLI run (speed), and its recall from its own CenterFace at its defaults
  (threshold 0.2, mask scale 1.3) run in-process on the same frames, counting its masks as boxes
  (its ellipses cover less, so this flatters deface).

"x bare" is a run's time over the bare transcode's; "x deface" is deface's time over the run's.
With --repeat N every run is timed N times, back to back, and each ratio is the median of the
N paired ratios with their range. A veil row ends with whether it met the issue's goals in every
repetition: >= 10x deface's throughput at equal or better recall (>= 32 px), <= 2x the bare time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import av
import av.video.frame
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil._types import Config, DetectPreset, MaskRegions  # noqa: E402
from veil.detect.base import StaticDetector  # noqa: E402
from veil.media.video import X264_PRESET  # noqa: E402
from veil.paint import coverage_mask  # noqa: E402
from veil.pipeline import redact_file  # noqa: E402
from veil import presets  # noqa: E402
from veil.presets import VideoDetectSettings, preset_settings, video_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MIN_FACE = 32


@dataclass
class Recall:
    covered_large: int = 0
    total_large: int = 0
    covered_all: int = 0
    total_all: int = 0
    masked: float = 0.0  # median over frames: fraction of the frame masked
    area: float = 0.0  # median over frames: masked pixels over ground-truth face pixels
    runs: dict[int, int] = field(default_factory=dict)  # face id -> its longest unmasked run (>= 32 px)

    @property
    def longest_gap(self) -> int:
        """The longest run of consecutive frames any face >= 32 px went unmasked."""
        return max(self.runs.values(), default=0)

    def line(self) -> str:
        large = self.covered_large / max(self.total_large, 1)
        every = self.covered_all / max(self.total_all, 1)
        return (f"recall>=32px {large:.4f}  recall(all) {every:.4f}  max-unmasked-run {self.longest_gap}"
                f"  masked {self.masked:.2f} of frame, {self.area:.1f}x faces")


@contextlib.contextmanager
def before_issue19() -> Iterator[None]:
    """Inside, veil plans as before issue 19, so that "before" and "after" are measured in the
    same run: every box keeps Config's full margins (presets.SURE_MARGINS off)."""
    margins = dict(presets.SURE_MARGINS)
    presets.SURE_MARGINS.update(dict.fromkeys(margins))
    try:
        yield
    finally:
        presets.SURE_MARGINS.update(margins)


def load_gt(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def score(gt: list[dict], coverages: list[np.ndarray]) -> Recall:
    """Per-frame covered recall against the clip's ground truth."""
    result = Recall()
    current: dict[int, int] = {}  # face id -> frames unmasked so far in its present run
    masked, area_ratio = [], []
    for row, covered in zip(gt, coverages):
        h, w = covered.shape
        faces = np.zeros((h, w), bool)
        for (x, y, bw, bh), face in zip(row["boxes"], row["ids"]):
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            x1, y1 = min(w, int(np.ceil(x + bw))), min(h, int(np.ceil(y + bh)))
            faces[y0:y1, x0:x1] = True
            area = covered[y0:y1, x0:x1]
            ok = area.size > 0 and area.mean() >= 0.8
            result.total_all += 1
            result.covered_all += ok
            if bh >= MIN_FACE:
                result.total_large += 1
                result.covered_large += ok
                current[face] = 0 if ok else current.get(face, 0) + 1
                result.runs[face] = max(result.runs.get(face, 0), current[face])
            else:
                current.pop(face, None)
        masked.append(float(covered.mean()))
        if faces.any():
            area_ratio.append(covered.sum() / faces.sum())
    # Over-masking: recall alone would reward masking the whole frame.
    result.masked = float(np.median(masked)) if masked else 0.0
    result.area = float(np.median(area_ratio)) if area_ratio else 0.0
    return result


class Recorder:
    """A plan hook that keeps each frame's final regions without changing them.

    Coverage rasters are made after the timed run (`coverages`), so scoring costs veil nothing.
    """

    def __init__(self) -> None:
        self.plans: list[tuple[MaskRegions, int, int]] = []

    def apply(self, frame_index: int, computed: MaskRegions, width: int,
              height: int) -> tuple[MaskRegions, np.ndarray]:
        self.plans.append((computed, width, height))
        return computed, np.arange(len(computed))

    @property
    def coverages(self) -> list[np.ndarray]:
        return [coverage_mask(plan, height, width) for plan, width, height in self.plans]


def bare_transcode(src: Path, dst: Path, quality: int = 18) -> int:
    """Decode and re-encode the video stream with veil's encoder settings; return frames."""
    frames = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate,
                              options={"crf": str(quality), "preset": X264_PRESET, "a53cc": "0"})
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vout.encode(frame))
            frames += 1
        out.mux(vout.encode(None))
    return frames


def deface_recall(src: Path, gt: list[dict]) -> Recall:
    from deface.centerface import CenterFace
    from deface.deface import scale_bb

    centerface = CenterFace(in_shape=None, backend="onnxrt")
    coverages = []
    with av.open(str(src)) as inp:
        for frame in inp.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            dets, _ = centerface(rgb, threshold=0.2)
            covered = np.zeros((h, w), bool)
            for det in dets:
                x1, y1, x2, y2 = scale_bb(*det[:4].astype(int), 1.3)
                covered[max(0, y1):min(h - 1, y2), max(0, x1):min(w - 1, x2)] = True
            coverages.append(covered)
    return score(gt, coverages)


def parse_setting(text: str) -> tuple[str, VideoDetectSettings]:
    """`preset` is veil's video setting for that preset; `preset:k` runs it on every k-th frame;
    `preset@scale` scales frames for the detector; `image-preset` runs the still-image preset's
    passes; `preset~fp32` runs the fp32 detector at the still preset's thresholds instead of
    INT8; a trailing `:still` turns camera-motion compensation off (a still camera assumed);
    `preset=t1/t2/t3/t4` replaces the four size tiers' thresholds (to compare a preset's old ones)."""
    label = text
    text, _, tiers = text.partition("=")
    if tiers:
        _, detect = parse_setting(text)
        thresholds = tuple(float(t) for t in tiers.split("/"))
        return label, replace(detect, detector=replace(detect.detector, thresholds=thresholds))
    text, _, precision = text.partition("~")
    parts = text.split(":")
    still = parts[-1] == "still"
    if still:
        parts = parts[:-1]
    name, every = parts[0], (parts[1] if len(parts) > 1 else "")
    if name == "none":
        return text, VideoDetectSettings(preset_settings(DetectPreset.FAST), 1)
    name, _, scale = name.partition("@")
    if name.startswith("image-"):
        detect = VideoDetectSettings(preset_settings(DetectPreset(name[6:])), 1)
    else:
        detect = video_settings(Config(detect=DetectPreset(name)))
    if scale:
        detect = replace(detect, scale=float(scale))
    if precision == "fp32":
        fp32 = preset_settings(DetectPreset(name.removeprefix("image-")))
        detect = replace(detect, detector=replace(detect.detector, int8=False, thresholds=fp32.thresholds))
    elif precision:
        raise ValueError(f"unknown precision {precision!r} (fp32 is the one alternative)")
    if every:
        detect = replace(detect, detect_every=int(every))
    return text + (f"~{precision}" if precision else ""), replace(detect, camera_motion=not still)


def load_make_clips() -> Any:
    """../shared/data/make_clips.py as a module (it is not a package)."""
    spec = importlib.util.spec_from_file_location("make_clips", DATA / "make_clips.py")
    assert spec and spec.loader
    make_clips = importlib.util.module_from_spec(spec)
    sys.modules["make_clips"] = make_clips  # dataclasses look their module up there
    spec.loader.exec_module(make_clips)
    return make_clips


def render(out_dir: Path, seconds: float, sizes: list[tuple[int, int]]) -> list[tuple[Path, Path]]:
    make_clips = load_make_clips()
    clips = []
    for k, size in enumerate(sizes):
        # The first clip of make_clips' program: a crowd photo, zooming in.
        entries = make_clips.make_clips(str(out_dir), count=1, seconds=seconds, size=size,
                                        prefix=f"s{k}_")
        chosen = entries[0]
        clips.append((out_dir / chosen["video"], out_dir / chosen["gt"]))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, help="folder with <name>.mp4 and <name>.gt.jsonl")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--settings", default="fast,balanced,balanced:1,thorough")
    parser.add_argument("--no-deface", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time every run this many times; ratios are medians, with their range")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    settings = [parse_setting(s) for s in args.settings.split(",")]
    deface = shutil.which("deface") or (str(Path(sys.executable).with_name("deface"))
                                        if Path(sys.executable).with_name("deface").exists() else None)
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.clips:
            clips = [(p, p.with_name(p.stem + ".gt.jsonl")) for p in sorted(args.clips.glob("*.mp4"))]
        else:
            sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
            clips = render(tmp / "clips", args.seconds, sizes)  # type: ignore[arg-type]
        print(f"{'clip':30} {'run':15} {'fps':>6} {'x bare':>17} {'x deface':>17}  recall")
        for video, gt_path in clips:
            gt = load_gt(gt_path)
            with av.open(str(video)) as c:
                s = c.streams.video[0]
                label = f"{video.stem[:22]} {s.height}p"
            times: dict[str, list[float]] = {}
            recalls: dict[str, Recall] = {}
            n = 0
            # Every repetition times each run once, back to back, so that each ratio compares
            # runs made under the same load; the table gives the median ratio and its range.
            for rep in range(args.repeat):
                t = time.perf_counter()
                n = bare_transcode(video, tmp / "bare.mp4")
                times.setdefault("bare transcode", []).append(time.perf_counter() - t)
                if deface and not args.no_deface:
                    t = time.perf_counter()
                    subprocess.run([deface, str(video), "-o", str(tmp / "deface.mp4")], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    times.setdefault("deface", []).append(time.perf_counter() - t)
                    if rep == 0:
                        recalls["deface"] = deface_recall(video, gt)
                for name, setting in settings:
                    recorder = Recorder()
                    t = time.perf_counter()
                    # "none": the pipeline with a detector that finds nothing (veil's overhead).
                    redact_file(video, tmp / "veil.mp4", Config(), overwrite=True, plan=recorder,
                                      detect_settings=setting,
                                      detector=StaticDetector([]) if name == "none" else None)
                    times.setdefault(f"veil {name}", []).append(time.perf_counter() - t)
                    if rep == 0:  # the output is the same every time; only the time varies
                        recalls[f"veil {name}"] = score(gt, recorder.coverages)
            bare, defaced = times["bare transcode"], times.get("deface")
            for run, seconds in times.items():
                vs_bare = [t / b for t, b in zip(seconds, bare)]
                vs_deface = [d / t for t, d in zip(seconds, defaced)] if defaced else []
                recall = recalls.get(run)
                print(f"{label:30} {run:15} {n / statistics.median(seconds):6.2f} "
                      f"{spread(vs_bare):>17} {spread(vs_deface):>17}  "
                      f"{recall.line() if recall else ''}{goals(run, vs_bare, vs_deface, recalls)}",
                      flush=True)


def spread(ratios: list[float]) -> str:
    """The median ratio, with its range over repetitions when there are several."""
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def goals(run: str, vs_bare: list[float], vs_deface: list[float], recalls: dict[str, Recall]) -> str:
    """Whether a veil run meets the issue's goals in every repetition: at least 10x deface's
    throughput at equal or better covered recall (faces >= 32 px), and at most 2x the bare
    transcode's time."""
    if not run.startswith("veil") or not vs_deface or "deface" not in recalls:
        return ""
    mine, theirs = recalls[run], recalls["deface"]
    ok = (min(vs_deface) >= 10 and max(vs_bare) <= 2
          and mine.covered_large * theirs.total_large >= theirs.covered_large * mine.total_large)
    return "  goals met" if ok else "  goals NOT met"

if __name__ == "__main__":
    main()
