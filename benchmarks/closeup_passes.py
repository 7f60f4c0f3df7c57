"""Which coarse passes and margins find close-ups: every candidate pass cached once, rules replayed.

    .venv/bin/python benchmarks/hard_sets.py --sets closeup --presets ""   # build the close-up set
    .venv/bin/python benchmarks/closeup_passes.py                          # cache (minutes), then the table

Runs CenterFace once per image and candidate pass (the 1.5x tile pass, 640 px, and coarse passes
at 480, 384, 288, 224 and 160 px on the longer side) with a score floor of 0.02, on the close-up
set (benchmarks/hard_sets.py) and on the 183 WIDER dev photos, and caches the boxes under
test-artifacts/ (git-ignored: WIDER derivatives are never committed). Each rule is then replayed
through veil's own `FaceDetector` with balanced's thresholds, only the network's output read from
the cache (the passes, a score floor on the coarse ones, NMS, support across passes), and turned
into regions with balanced's sure-box margins, optionally full for boxes at least a given share of
the frame's height; `veil.evaluate` scores it. The "now" row
reproduces `scan_image`'s balanced figures on both sets.

`--yolo FILE` also asks whether a second network, added as a detector, finds the close-ups
CenterFace misses: a YOLOv8 face model's boxes at 640 px (faceghost 0.1.5's model/v0-1.onnx, not a
veil dependency; its metadata names Ultralytics' AGPL-3.0), kept from a score, with full margins.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil import presets  # noqa: E402
from veil._types import Config, Detections, DetectPreset  # noqa: E402
from veil.detect.faces import DetectorSettings, FaceDetector  # noqa: E402
from veil.detect.nms import nms  # noqa: E402
from veil.evaluate import FrameScore, FrameTruth, read_annotations, score_frame, summarise  # noqa: E402
from veil.media.image import read_image  # noqa: E402
from veil.regions import mask_regions  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"
CLOSEUP = ROOT / "test-artifacts" / "hard_sets" / "closeup.gt.jsonl"
PASSES: tuple[str | int, ...] = ("x1.5", 640, 480, 384, 288, 224, 160)
RULES: list[tuple[str, tuple[str | int, ...], float, float, int, int]] = [
    # label, passes, floor on the coarse passes, full margins from this share of the height (0: never),
    # support across this many passes (0: off; DetectorSettings.support_passes), support for boxes at
    # the edge across this many (0: off; DetectorSettings.edge_support_passes)
    ("as before (288 px at 0.3)", ("x1.5", 640, 288), 0.3, 0.0, 0, 0),
    ("+ 224 px", ("x1.5", 640, 288, 224), 0.3, 0.0, 0, 0),
    ("+ 384 px", ("x1.5", 640, 288, 384), 0.3, 0.0, 0, 0),
    ("+ 160 px", ("x1.5", 640, 288, 160), 0.3, 0.0, 0, 0),
    ("+ 160 px, coarse floor 0.2", ("x1.5", 640, 288, 160), 0.2, 0.0, 0, 0),
    ("+ 160 px, coarse floor 0.1", ("x1.5", 640, 288, 160), 0.1, 0.0, 0, 0),
    ("full margins >= 0.35 H", ("x1.5", 640, 288), 0.3, 0.35, 0, 0),
    ("+ 160 px, full margins >= 0.35 H", ("x1.5", 640, 288, 160), 0.3, 0.35, 0, 0),
    ("+ 160 px, floor 0.1, full margins >= 0.35 H", ("x1.5", 640, 288, 160), 0.1, 0.35, 0, 0),
    ("+ 160 px, full margins >= 0.35 H, support of 2 passes", ("x1.5", 640, 288, 160), 0.3, 0.35, 2, 0),
    ("+ 160 px, full margins >= 0.35 H, support of 3 passes", ("x1.5", 640, 288, 160), 0.3, 0.35, 3, 0),
    ("+ 160 px, full margins >= 0.35 H, support of 4 passes", ("x1.5", 640, 288, 160), 0.3, 0.35, 4, 0),
    ("+ 160 px, full margins >= 0.35 H, support of 3 passes, at the edge of 2", ("x1.5", 640, 288, 160), 0.3,
     0.35, 3, 2),
    ("+ 160 px, full margins >= 0.35 H, support of 3 passes, at the edge of 3", ("x1.5", 640, 288, 160), 0.3,
     0.35, 3, 3),
    ("now", ("x1.5", 640, presets.COARSE_SIDE, presets.CLOSEUP_SIDE), presets.COARSE_MIN_SCORE,
     presets.SURE_MARGINS[DetectPreset.BALANCED][2], presets.STILL[DetectPreset.BALANCED].support_passes,
     presets.STILL[DetectPreset.BALANCED].edge_support_passes),
]


YOLO_BASE = "+ 160 px, full margins >= 0.35 H"  # the rule the second detector was measured against
YOLO_RULES: list[tuple[str, tuple[str | int, ...], float, float, int, int]] = [
    (f"+ 160 px, full margins >= 0.35 H, + YOLOv8 face >= {t}, full margins",
     ("x1.5", 640, 288, 160, f"yolo@{t}"), 0.3, 0.35, 0, 0)
    for t in (0.3, 0.5, 0.7)
]


def _scale(key: str | int, width: int, height: int) -> float:
    return float(key[1:]) if isinstance(key, str) else key / max(width, height)


def cached_passes(truths: list[FrameTruth], images: Path, cache_path: Path
                  ) -> dict[tuple[int, str | int], tuple[np.ndarray, np.ndarray]]:
    cache = pickle.loads(cache_path.read_bytes()) if cache_path.exists() else {}
    detector = FaceDetector(DetectorSettings(thresholds=(0.02,) * 4))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    for i, truth in enumerate(truths):
        todo = [key for key in PASSES if (i, key) not in cache]
        if not todo:
            continue
        pixels = read_image(images / truth.image).pixels
        for key in todo:
            found = detector._detect_pass(pixels, _scale(key, truth.width, truth.height))
            cache[(i, key)] = (found.boxes, found.scores)
        if i % 25 == 0:
            cache_path.write_bytes(pickle.dumps(cache))
            print(f"  {cache_path.name}: {i + 1}/{len(truths)}", file=sys.stderr, flush=True)
    cache_path.write_bytes(pickle.dumps(cache))
    return cache


class CachedPasses(FaceDetector):
    """`FaceDetector` reading image `index`'s passes from the floor-0.02 cache instead of running
    the network, so each rule runs veil's own merging (thresholds, coarse floor, NMS, support)."""

    def __init__(self, settings: DetectorSettings, cache: dict, index: int, truth: FrameTruth) -> None:
        super().__init__(settings)
        self.cache, self.index = cache, index
        self.keys = {round(_scale(key, truth.width, truth.height), 6): key for key in PASSES}

    def _detect_pass(self, frame: np.ndarray, scale: float) -> Detections:
        boxes, scores = self.cache[(self.index, self.keys[round(scale, 6)])]
        keep = scores >= self.settings.decode_floor
        return Detections(boxes[keep], scores[keep])


def balanced_detections(cache: dict, i: int, truth: FrameTruth, passes: tuple[str | int, ...],
                        floor: float, support: int | None = None, edge: int | None = None) -> Detections:
    """Image i's detections as `FaceDetector` makes them with balanced's settings, from the cached
    `passes` ("x1.5", 640 and coarse sides; "yolo@T" adds a second detector's boxes from T), the
    coarse ones kept from `floor` on, support across `support` passes and at the edge across `edge`
    (None: the preset's)."""
    settings = replace(presets.STILL[DetectPreset.BALANCED], coarse_min_score=floor,
                       coarse_sides=tuple(k for k in passes if isinstance(k, int) and k < 640))
    if support is not None:
        settings = replace(settings, support_passes=support)
    if edge is not None:
        settings = replace(settings, edge_support_passes=edge)
    frame = np.zeros((truth.height, truth.width, 3), np.uint8)  # only its size is read
    found = CachedPasses(settings, cache, i, truth)(frame)
    for key in passes:
        if isinstance(key, str) and key.startswith("yolo@"):  # a second detector: full margins
            boxes, values = cache[(i, "yolo")]
            kept = values >= float(key[5:])
            found = Detections.concat([found, Detections(boxes[kept], np.zeros(int(kept.sum()), np.float32))])
    return found


def yolo_decode(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's YOLOv8 output, (5, anchors) rows cx, cy, w, h, score: xyxy boxes (float32, in
    the network input's pixels) and scores, before any threshold or NMS."""
    cx, cy, w, h, conf = raw
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32), conf


def yolo_boxes(net: Any, pixels: np.ndarray, side: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """A YOLOv8 face model's boxes (xyxy in the frame) and scores from 0.05, after NMS at 0.45,
    the longer side resized to `side` (both sides a multiple of its stride, 32)."""
    height, width = pixels.shape[:2]
    s = side / max(width, height)
    w, h = max(32, int(round(width * s / 32)) * 32), max(32, int(round(height * s / 32)) * 32)
    tile = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    batch = np.transpose(tile.astype(np.float32)[None] / 255.0, (0, 3, 1, 2))
    boxes, conf = yolo_decode(net.run(None, {net.get_inputs()[0].name: batch})[0][0])
    keep = conf >= 0.05
    boxes = (boxes[keep] * np.array([width / w, height / h, width / w, height / h])).astype(np.float32)
    scores = conf[keep].astype(np.float32)
    order = nms(boxes, scores, 0.45) if len(boxes) else np.zeros(0, int)
    return boxes[order], scores[order]


def add_yolo(cache: dict, truths: list[FrameTruth], images: Path, model: Path, cache_path: Path) -> None:
    """Cache the YOLO model's boxes for each image under (i, "yolo")."""
    if all((i, "yolo") in cache for i in range(len(truths))):
        return
    import onnxruntime as ort

    net = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for i, truth in enumerate(truths):
        cache[(i, "yolo")] = yolo_boxes(net, read_image(images / truth.image).pixels)
    cache_path.write_bytes(pickle.dumps(cache))


def replay(truths: list[FrameTruth], cache: dict, passes: tuple[str | int, ...], floor: float,
           closeup_share: float, support: int, edge: int = 0) -> list[FrameScore]:
    config = Config(detect=DetectPreset.BALANCED)
    threshold, factor = presets.SURE_MARGINS[DetectPreset.BALANCED][:2]
    sure = (threshold, factor, closeup_share) if closeup_share else (threshold, factor)
    scores = []
    for i, truth in enumerate(truths):
        found = balanced_detections(cache, i, truth, passes, floor, support, edge)
        plan = mask_regions(found, truth.width, truth.height, config, sure=sure)
        scores.append(score_frame(truth.boxes, truth.ignore, found.boxes, found.scores, plan.boxes,
                                  truth.width, truth.height))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "test-artifacts" / "closeup-passes")
    parser.add_argument("--yolo", type=Path, help="a YOLOv8 face model (ONNX) to add as a second detector")
    parser.add_argument("--rules", help="comma-separated row numbers of RULES to run (default: all)")
    parser.add_argument("--closeup", type=Path, default=CLOSEUP,
                        help="the close-up set's annotations (another sample: hard_sets.py --seed N --out DIR)")
    args = parser.parse_args()
    closeup = args.closeup
    if not closeup.is_file() or not DEV.is_file():
        print("build the close-up set first (benchmarks/hard_sets.py) and check ../shared/data",
              file=sys.stderr)
        return 2
    sets = {"close-up": read_annotations(closeup), "dev": read_annotations(DEV)}
    other = "" if closeup.resolve() == CLOSEUP.resolve() else f"-{closeup.parent.name}"
    names = {"close-up": f"close-up{other}.pkl", "dev": "dev.pkl"}
    caches = {name: cached_passes(truths, (closeup if name == "close-up" else DEV).parent,
                                  args.cache / names[name]) for name, truths in sets.items()}
    rules = [RULES[int(k)] for k in args.rules.split(",")] if args.rules else RULES
    if args.yolo is not None:
        for name, truths in sets.items():
            add_yolo(caches[name], truths, (closeup if name == "close-up" else DEV).parent, args.yolo,
                     args.cache / names[name])
        rules = [rule for rule in RULES if rule[0] == YOLO_BASE] + YOLO_RULES
    print("| rule | close-up covered | close-up area | dev < 16 | 16-32 | 32-64 | 64+ | dev area |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, passes, floor, share, support, edge in rules:
        close = summarise(replay(sets["close-up"], caches["close-up"], passes, floor, share, support, edge))
        dev = summarise(replay(sets["dev"], caches["dev"], passes, floor, share, support, edge))
        faces = sum(b.faces for b in close.buckets[:4])
        covered = sum(b.covered for b in close.buckets[:4])
        buckets = " | ".join(f"{b.covered}/{b.faces}" for b in dev.buckets[:4])
        print(f"| {label} | {covered}/{faces} = {covered / faces:.3f} | {close.area_ratio:.2f}x | "
              f"{buckets} | {dev.area_ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
