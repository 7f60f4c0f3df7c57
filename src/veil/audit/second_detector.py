"""Second-detector check: a face detector of another model family (dlib HOG or MMOD CNN) on the output.

veil's own detector is a CenterFace CNN; dlib's HOG + linear SVM shares nothing with it, and
dlib's MMOD CNN was trained on other data with another loss, so a face both veil and its
redaction missed has an independent chance of being seen here.
"""

from __future__ import annotations

import enum

import numpy as np

from .models import hog_detector, mmod_detector


class SecondDetector(str, enum.Enum):
    """Which dlib detector runs on the output. HOG takes well under a second per photo on a CPU;
    MMOD finds more turned faces but takes 10-20 s per photo on a CPU."""

    HOG = "hog"
    CNN = "cnn"
    BOTH = "both"


# Upsampling once lets HOG see faces down to ~40 px (its window is 80 px); twice costs 4x more.
HOG_UPSAMPLE = 1
CNN_UPSAMPLE = 0
HOG_MIN_SCORE = 0.0  # dlib's own decision threshold


def _rect_box(rect: object) -> tuple[int, int, int, int]:
    r = rect.rect if hasattr(rect, "rect") else rect  # MMOD returns mmod_rectangle
    return int(r.left()), int(r.top()), int(r.right()) + 1, int(r.bottom()) + 1  # type: ignore[attr-defined]


def detect_faces(pixels: np.ndarray, which: SecondDetector = SecondDetector.HOG,
                 hog_upsample: int = HOG_UPSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Faces dlib finds in an RGB uint8 frame: (N, 4) int xyxy boxes clipped to the frame, scores."""
    image = np.ascontiguousarray(pixels)
    h, w = image.shape[:2]
    boxes: list[tuple[int, int, int, int]] = []
    scores: list[float] = []
    if which in (SecondDetector.HOG, SecondDetector.BOTH):
        rects, found_scores, _ = hog_detector().run(image, hog_upsample, HOG_MIN_SCORE)
        boxes += [_rect_box(r) for r in rects]
        scores += [float(s) for s in found_scores]
    if which in (SecondDetector.CNN, SecondDetector.BOTH):
        for found in mmod_detector()(image, CNN_UPSAMPLE):
            boxes.append(_rect_box(found))
            scores.append(float(found.confidence))
    if not boxes:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.float32)
    arr = np.asarray(boxes, np.int64)
    arr[:, [0, 2]] = np.clip(arr[:, [0, 2]], 0, w)
    arr[:, [1, 3]] = np.clip(arr[:, [1, 3]], 0, h)
    keep = (arr[:, 2] > arr[:, 0]) & (arr[:, 3] > arr[:, 1])
    return arr[keep], np.asarray(scores, np.float32)[keep]


def covered_share(box: np.ndarray, covered: np.ndarray) -> float:
    """Share of a face box's pixels that lie under some mask."""
    x0, y0, x1, y1 = (int(v) for v in box)
    patch = covered[y0:y1, x0:x1]
    return float(patch.mean()) if patch.size else 1.0
