"""Issue 19's photo experiments, offline: raw detector passes cached once, rules replayed in seconds.

    .venv/bin/python benchmarks/overmask_offline.py build                # cache every pass (minutes)
    .venv/bin/python benchmarks/overmask_offline.py margins              # sure-box margin sweep
    .venv/bin/python benchmarks/overmask_offline.py verify --keep 0.05   # + the low-score verifier

`build` runs every pass `fast` and `balanced` use (the 640 px pass and the 1.5x pass) on the WIDER
dev photos with a score floor of 0.02 and saves boxes and scores per photo and pass under
--cache (default test-artifacts/overmask-cache, git-ignored: WIDER derivatives are never
committed). Replaying a preset's thresholds and NMS on the cache gives exactly `scan_image`'s
detections (a lower floor adds only boxes that fall under every threshold). The other commands
print covered faces per size bucket, masked / face area, precision and loose precision.

`verify` is the verifier measured and not adopted (docs/benchmarks.md, "Over-masking"): each box
scoring under --sure is re-scored by CenterFace on a crop of its own, where the box is about
crop_px / context pixels high, and kept only if the best cell there whose box overlaps it scores
--keep. Crop scores are memoised in the cache folder.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil import presets  # noqa: E402
from veil._types import Config, Detections, DetectPreset  # noqa: E402
from veil.detect.faces import DetectorSettings, FaceDetector, _session  # noqa: E402
from veil.detect.nms import iou_matrix, nms  # noqa: E402
from veil.evaluate import read_annotations, score_frame, summarise  # noqa: E402
from veil.media.image import read_image  # noqa: E402
from veil.regions import mask_regions  # noqa: E402

GT = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"
PASSES = ("640", "1.5")


@dataclass(frozen=True)
class VerifySettings:
    """Which boxes get a second look and what they must score on it (see the module docstring)."""

    sure: float = 0.3  # boxes scoring at least this skip the second look
    keep: float = 0.05  # a re-scored box is kept when its best match on the crop scores this
    context: float = 2.5  # the crop's side over the box's longer side
    crop_px: int = 96  # the crop's side at the network (a box reaches it at crop_px / context)
    match_iou: float = 0.3  # a box found on the crop matches the candidate at this IoU
    batch: int = 64  # crops per network call

    def __post_init__(self) -> None:
        if not 0.0 < self.keep < 1.0 or not 0.0 < self.sure <= 1.0:
            raise ValueError(f"keep and sure must be scores in (0, 1], got {self.keep}, {self.sure}")
        if self.context < 1.0 or self.crop_px % 32:
            raise ValueError("context must be >= 1 and crop_px a multiple of 32")


def crops(frame: np.ndarray, boxes: np.ndarray, settings: VerifySettings
          ) -> tuple[np.ndarray, np.ndarray]:
    """Square crops around each xyxy box, zero-padded beyond the frame and resized to crop_px.

    Returns the (N, crop_px, crop_px, 3) uint8 crops and each box mapped into its crop's pixels.
    """
    import cv2

    height, width = frame.shape[:2]
    size = settings.crop_px
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    mapped = np.zeros((len(boxes), 4), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64)):
        side = max(x1 - x0, y1 - y0, 1.0) * settings.context
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        span = max(1, int(round(side)))
        patch = np.zeros((span, span, 3), np.uint8)
        sx0, sy0 = max(0, left), max(0, top)
        sx1, sy1 = min(width, left + span), min(height, top + span)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = frame[sy0:sy1, sx0:sx1]
        interp = cv2.INTER_AREA if span > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(patch, (size, size), interpolation=interp)
        k = size / span
        mapped[i] = ((x0 - left) * k, (y0 - top) * k, (x1 - left) * k, (y1 - top) * k)
    return out, mapped


def crop_scores(run: Callable[[np.ndarray], list[np.ndarray]], frame: np.ndarray, boxes: np.ndarray,
                settings: VerifySettings) -> np.ndarray:
    """Each box's score on its own crop: the best cell whose box overlaps it (0 if none).

    `run` is the network: a (B, 3, S, S) float blob in, CenterFace's heatmap, scale and offset
    maps out (landmarks, if given, are ignored).
    """
    scores = np.zeros(len(boxes), np.float32)
    if len(boxes) == 0:
        return scores
    images, mapped = crops(frame, boxes, settings)
    for start in range(0, len(images), settings.batch):
        chunk = images[start:start + settings.batch]
        blob = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32)
        heatmap, scale, offset = run(blob)[:3]
        for j in range(len(chunk)):
            scores[start + j] = _best_match(heatmap[j, 0], scale[j], offset[j], mapped[start + j],
                                            settings.match_iou)
    return scores


def _best_match(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, box: np.ndarray,
                match_iou: float) -> float:
    """The highest heatmap cell whose decoded box (CenterFace's stride-4 grid) overlaps `box`."""
    ys, xs = np.nonzero(heatmap > 0.01)
    if len(ys) == 0:
        return 0.0
    bh = np.exp(scale[0, ys, xs]) * 4
    bw = np.exp(scale[1, ys, xs]) * 4
    cx = (xs + offset[1, ys, xs] + 0.5) * 4
    cy = (ys + offset[0, ys, xs] + 0.5) * 4
    cells = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    hits = iou_matrix(box[None].astype(np.float32), cells)[0] >= match_iou
    return float(heatmap[ys[hits], xs[hits]].max()) if hits.any() else 0.0


def build(truths: list, images: Path, cache: Path) -> None:
    detector = FaceDetector(DetectorSettings(thresholds=(0.02,) * 4))
    cache.mkdir(parents=True, exist_ok=True)
    for i, truth in enumerate(truths):
        pixels = read_image(images / truth.image).pixels
        for key in PASSES:
            out = cache / f"{i:03d}_{key}.npz"
            if not out.exists():
                scale = 640 / max(pixels.shape[:2]) if key == "640" else float(key)
                found = detector._detect_pass(pixels, scale)
                np.savez(out, boxes=found.boxes, scores=found.scores)
        print(f"{i + 1}/{len(truths)}", file=sys.stderr, flush=True)


def replay(i: int, truth, settings: DetectorSettings,  # type: ignore[no-untyped-def]
           cache: Path) -> Detections:
    """The detections `FaceDetector` returns for photo i (no edge rule: stills have none)."""
    detector = FaceDetector.__new__(FaceDetector)
    detector.settings = settings
    parts = []
    for scale in detector.passes(truth.width, truth.height):
        key = "1.5" if abs(scale - 1.5) < 1e-6 else "640"
        z = np.load(cache / f"{i:03d}_{key}.npz")
        parts.append(Detections(z["boxes"], z["scores"]))
    merged = Detections.concat(parts)
    kept = merged[settings.keep(merged)] if len(merged) else merged
    return kept[nms(kept.boxes, kept.scores, settings.nms_iou)] if len(kept) else kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "margins", "verify"))
    parser.add_argument("--cache", type=Path, default=ROOT / "test-artifacts" / "overmask-cache")
    parser.add_argument("--annotations", type=Path, default=GT)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--keep", type=float, default=0.05)
    parser.add_argument("--sure", type=float, default=0.3)
    args = parser.parse_args()
    truths = read_annotations(args.annotations)[:args.limit or None]
    images = args.annotations.parent
    if args.command == "build":
        build(truths, images, args.cache)
        return
    preset = DetectPreset(args.preset)
    settings, config = presets.STILL[preset], Config(detect=preset)
    verify = VerifySettings(sure=args.sure, keep=args.keep) if args.command == "verify" else None
    memo_path = args.cache / "crop_scores.pkl"
    memo = pickle.loads(memo_path.read_bytes()) if memo_path.exists() else {}
    session = _session(0, False)

    def net(blob: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {"input.1": blob})

    rules = [("before", None), *[(f"sure >= {s} x{f}", (s, f)) for s in (0.3, 0.5, 0.7)
                                  for f in (0.6, 0.5, 0.4)]] if verify is None else \
        [("margins as preset", presets.SURE_MARGINS[preset])]
    for label, rule in rules:
        frames = []
        for i, truth in enumerate(truths):
            found = replay(i, truth, settings, args.cache)
            if verify is not None and len(found):
                unsure = np.flatnonzero(found.scores < verify.sure)
                keys = [(i, tuple(np.round(found.boxes[j], 1))) for j in unsure]
                todo = [j for j, k in zip(unsure, keys) if k not in memo]
                if todo:
                    pixels = read_image(images / truth.image).pixels
                    for j, s in zip(todo, crop_scores(net, pixels, found.boxes[todo], verify)):
                        memo[(i, tuple(np.round(found.boxes[j], 1)))] = float(s)
                keep = np.ones(len(found), bool)
                keep[unsure] = np.array([memo[k] for k in keys]) >= verify.keep
                found = found[keep]
            # The rule is passed, not read from presets: the regions stage takes it as an
            # argument (setting presets.SURE_MARGINS here changed nothing, every row was "before").
            plan = mask_regions(found, truth.width, truth.height, config, sure=rule)
            frames.append(score_frame(truth.boxes, truth.ignore, found.boxes, found.scores,
                                      plan.boxes, truth.width, truth.height))
        r = summarise(frames)
        counts = " ".join(f"{b.name} {b.covered}/{b.faces}" for b in r.buckets[:4])
        print(f"{args.preset} {label:18} covered {counts} | area {r.area_ratio:.2f}x "
              f"precision {r.precision:.3f} loose {r.loose_precision:.3f} "
              f"regions/photo {r.predictions / max(r.frames, 1):.1f}", flush=True)
    if verify is not None:
        memo_path.write_bytes(pickle.dumps(memo))


if __name__ == "__main__":
    main()
