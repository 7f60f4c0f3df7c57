"""Greedy non-maximum suppression over xyxy boxes (the IoU itself is in geometry.py)."""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import iou_matrix, xyxy_to_xywh


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, highest score first; a box is dropped at IoU >= the threshold.

    A crowd frame at low thresholds gives thousands of candidates, so the pairwise matrix
    (quadratic memory) is avoided: OpenCV's greedy NMS does the same in C++. It only accepts
    positive scores, so anything else takes the NumPy loop, which gives identical results.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if np.all(scores > 0):
        xywh = xyxy_to_xywh(boxes).astype(np.float64)
        # OpenCV drops a box at IoU > threshold; nudge it down so that equality drops too.
        kept = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0,
                                float(np.nextafter(np.float32(iou_threshold), np.float32(0))))
        return np.asarray(kept, np.int64).reshape(-1)
    return _nms_numpy(boxes, scores, iou_threshold)


def _nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float32)
    alive = np.ones(len(b), bool)
    keep: list[int] = []
    for i in range(len(b)):
        if alive[i]:
            keep.append(int(order[i]))
            alive[i + 1:] &= iou_matrix(b[i:i + 1], b[i + 1:])[0] < iou_threshold
    return np.asarray(keep, np.int64)
