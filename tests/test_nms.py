"""NMS: OpenCV's fast path and the NumPy fallback agree with the plain pairwise definition."""

from __future__ import annotations

import numpy as np
import pytest

from veil.detect.nms import _nms_numpy, nms
from veil.geometry import iou_matrix


def reference(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    ious = iou_matrix(boxes, boxes)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if not suppressed[i]:
            keep.append(int(i))
            suppressed |= ious[i] >= threshold
    return np.asarray(keep, np.int64)


def crowd(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Heavily overlapping boxes, as a heatmap decoder gives around each face."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 640, (n // 10 + 1, 2))[rng.integers(0, n // 10 + 1, n)]
    centres += rng.normal(0, 4, (n, 2))
    sizes = rng.uniform(6, 60, (n, 1))
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]).astype(np.float32)
    return boxes, rng.uniform(0.05, 1.0, n).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.3, 0.4])
def test_nms_matches_the_pairwise_definition(seed: int, threshold: float) -> None:
    boxes, scores = crowd(seed, 1500)
    expected = reference(boxes, scores, threshold)
    assert 50 < len(expected) < 1500  # the case is a real crowd: some kept, many suppressed
    np.testing.assert_array_equal(nms(boxes, scores, threshold), expected)
    np.testing.assert_array_equal(_nms_numpy(boxes, scores, threshold), expected)


def test_iou_equal_to_the_threshold_suppresses() -> None:
    # A 10x10 box inside a 10x20 one: IoU 100 / 200 = 0.5 exactly.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert float(iou_matrix(boxes, boxes)[0, 1]) == 0.5
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0])
    np.testing.assert_array_equal(nms(boxes, scores, 0.51), [0, 1])


def test_non_positive_scores_are_kept_too() -> None:
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 11]], np.float32)
    scores = np.array([0.0, 0.5, -1.0], np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), reference(boxes, scores, 0.4))
    assert len(nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.4)) == 0
