"""Issue 19 in video: what veil's masks are made of, and whether a score could tell faces apart.

    .venv/bin/python benchmarks/overmask_video.py CLIP.mp4 [...] [--presets fast,balanced]

Per clip and preset it runs the detect, track and regions stages (as `veil` runs them) and prints:
- the mean masked share of the frame; on the detector's frames, what its own boxes mask there
  (on the frames between, every box is carried by the tracker);
- with ground truth beside the clip (`<name>.gt.jsonl`, make_clips.py's), the share masked outside
  every annotated face and ignore box, and per detector frame the boxes that touch no face at all
  ("off") against those that do;
- "if cut at T": per score threshold T, the share of off-face boxes a cut would remove, and the
  share of (frame, face >= 32 px) pairs whose best box (IoU >= 0.3) would go with it. The
  tracker bridges single misses, so the second figure is an upper bound on what a cut costs,
  not the recall it would leave; but where it is far from 0 while the first is far from 1, no
  score threshold separates faces from the false boxes.

Rendered clips and real clips are non-commercial data: this script writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil._types import Config, DetectPreset  # noqa: E402
from veil.detect.base import Detector  # noqa: E402
from veil.evaluate import boxes_coverage  # noqa: E402
from veil.geometry import iou_matrix  # noqa: E402
from veil.media.video import VideoReader  # noqa: E402
from veil.pipeline import video_stages, with_camera  # noqa: E402
from veil.regions import face_regions, margin_scale  # noqa: E402
from veil.stages import Sighting, detect, track  # noqa: E402

CUTS = (0.1, 0.15, 0.2, 0.3)
LARGE = 32.0  # the video goal's face height


def _xyxy(rows: list) -> np.ndarray:
    boxes = np.asarray(rows, np.float32).reshape(-1, 4).copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def run(path: Path, preset: DetectPreset, detector: Detector | None = None) -> dict[str, float]:
    """The figures of one clip and preset (see the module docstring); `detector` replaces
    veil's (tests), which then sees full frames."""
    config = Config(detect=preset)
    gt_path = path.with_name(path.stem + ".gt.jsonl")
    gt = [json.loads(line) for line in gt_path.read_text().splitlines()] if gt_path.exists() else None
    shares: list[tuple[float, float, float, bool]] = []  # masked, by detections, off faces, ran
    off_scores: list[np.ndarray] = []
    on_boxes = 0
    face_best: list[np.ndarray] = []  # per detector frame, each face >= 32 px's best box score

    def note(sighting: Sighting) -> Sighting:
        nonlocal on_boxes
        if gt is None or sighting.found is None:
            return sighting
        truth = gt[sighting.frame.index]
        faces = _xyxy(truth["boxes"])
        anywhere = np.concatenate([faces, _xyxy(truth["ignore"])])
        found = sighting.found
        touch = (iou_matrix(found.boxes, anywhere) > 0).any(axis=1) if len(anywhere) and len(found) \
            else np.zeros(len(found), bool)
        off_scores.append(found.scores[~touch])
        on_boxes += int(touch.sum())
        large = faces[(faces[:, 3] - faces[:, 1]) >= LARGE]
        if len(large):
            hits = iou_matrix(large, found.boxes) >= 0.3 if len(found) else np.zeros((len(large), 0), bool)
            face_best.append(np.where(hits, found.scores[None, :], 0.0).max(axis=1, initial=0.0))
        return sighting

    with VideoReader(path) as reader:
        rate = float(reader.info.rate) if reader.info.rate else None
        stages = video_stages(config, rate, detector)
        frames = with_camera(reader.frames(None), stages)
        sightings = (note(s) for s in detect(frames, stages.detector, stages.every, stages.prescale))
        for frame, rows in track(sightings, stages.tracker):
            width, height = frame.size
            found = rows.detections
            regions = face_regions(found.boxes, width, height, config, rows.grow,
                                   margin_scale(found.scores, stages.sure, found.heights, height))
            masked = boxes_coverage(regions, width, height)
            by_detector = boxes_coverage(regions[found.scores > 0], width, height)
            off = masked
            if gt is not None:
                truth = gt[frame.index]
                faces = np.concatenate([_xyxy(truth["boxes"]), _xyxy(truth["ignore"])])
                off = masked & ~boxes_coverage(faces, width, height)
            shares.append((float(masked.mean()), float(by_detector.mean()), float(off.mean()),
                           rows.detector_ran))
    s = np.asarray(shares)
    ran = s[:, 3] > 0
    out = {"masked": s[:, 0].mean(), "detector frames: masked": s[ran, 0].mean(),
           "by its boxes": s[ran, 1].mean()}
    if gt is not None:
        off_all = np.concatenate(off_scores) if off_scores else np.zeros(0)
        best = np.concatenate(face_best) if face_best else np.zeros(0)
        out["off faces"] = s[:, 2].mean()
        out["off boxes/frame"] = len(off_all) / max(len(off_scores), 1)
        out["on boxes/frame"] = on_boxes / max(len(off_scores), 1)
        for cut in CUTS:
            out[f"cut {cut}: off removed"] = float((off_all < cut).mean()) if len(off_all) else 0.0
            out[f"cut {cut}: faces lost"] = float((best < cut).mean()) if len(best) else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", type=Path, nargs="+")
    parser.add_argument("--presets", default="fast,balanced")
    args = parser.parse_args()
    for video in args.videos:
        for name in args.presets.split(","):
            figures = run(video, DetectPreset(name))
            text = " | ".join(f"{k} {v:.3f}" if v < 10 else f"{k} {v:.0f}" for k, v in figures.items())
            print(f"{video.stem:30.30} {name:9} {text}", flush=True)


if __name__ == "__main__":
    main()
