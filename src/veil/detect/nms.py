"""Greedy non-maximum suppression over xyxy boxes, and the IoU matrix it is built on."""

from __future__ import annotations

import cv2
import numpy as np


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes along the last axis, broadcast over the others."""
    ix0 = np.maximum(a[..., 0], b[..., 0])
    iy0 = np.maximum(a[..., 1], b[..., 1])
    ix1 = np.minimum(a[..., 2], b[..., 2])
    iy1 = np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) against every box in b (M, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    return _iou(a[:, None, :], b[None, :, :])


def iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box in a (N, 4) with the box in the same row of b (N, 4), xyxy."""
    return _iou(a, b).reshape(len(a))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, highest score first; a box is dropped at IoU >= the threshold.

    A crowd frame at low thresholds gives thousands of candidates, so the pairwise matrix
    (quadratic memory) is avoided: OpenCV's greedy NMS does the same in C++. It only accepts
    positive scores, so anything else takes the NumPy loop, which gives identical results.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    if np.all(scores > 0):
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
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
