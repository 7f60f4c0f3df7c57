"""Estimates the camera's motion between consecutive frames, so that carried masks follow it.

Between two detector runs the tracker has to say where a face is. Without the camera's motion a
pan moves every face tens of pixels per frame away from where linear interpolation puts it,
and a hand-held shake is not linear at all. With it, a face that stands still in the scene is
carried exactly, whatever the camera does; only the face's own motion is interpolated.

The motion is a similarity transform (shift, zoom, small rotation) fitted with RANSAC to sparse
optical flow on a small grey copy of each frame (Lucas-Kanade on about 100 corners): about
2 ms a frame, and within half a pixel of the true motion on the rendered bench clips
(benchmarks/bench_video.py). Where it fails (a blank or wholly changed picture) the previous
frame's motion is assumed, as a camera keeps moving the way it moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .media.video import Frame

IDENTITY = np.eye(3)
IDENTITY.flags.writeable = False  # shared: returned as is, never to be changed in place


@dataclass(frozen=True)
class MotionSettings:
    """How the camera's motion is estimated."""

    width: int = 160  # width of the grey copy the flow is computed on
    corners: int = 100  # corners tracked from the previous frame
    min_inliers: int = 8  # fewer agreeing corners than this: the fit is not trusted
    max_zoom: float = 1.25  # a fitted zoom beyond this per frame (either way) is not trusted


class MotionEstimator:
    """Feed upright frames in order; each call returns the 3x3 matrix that maps the previous
    frame's pixel coordinates to this frame's (the identity for the first frame)."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._previous: np.ndarray | None = None
        self._last = IDENTITY

    def __call__(self, grey: np.ndarray, scale: float) -> np.ndarray:
        """`grey`: the frame shrunk by `scale` (small / full size); returns full-size motion."""
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            self._last = IDENTITY
            return IDENTITY
        fitted = self._fit(previous, grey)
        if fitted is None:
            return self._last  # assume the camera kept moving as it did
        # The fit is in small-image pixels: conjugate by the scale to get full-size pixels.
        fitted[:2, 2] /= scale
        self._last = fitted
        return fitted

    def _fit(self, previous: np.ndarray, grey: np.ndarray) -> np.ndarray | None:
        s = self.settings
        corners = cv2.goodFeaturesToTrack(previous, maxCorners=s.corners, qualityLevel=0.01,
                                          minDistance=4, blockSize=3)
        if corners is None or len(corners) < s.min_inliers:
            return None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, grey, corners, None,
                                                    winSize=(15, 15), maxLevel=3)
        ok = status.reshape(-1) == 1
        if int(ok.sum()) < s.min_inliers:
            return None
        matrix, inliers = cv2.estimateAffinePartial2D(corners[ok], moved[ok], method=cv2.RANSAC,
                                                      ransacReprojThreshold=1.0)
        if matrix is None or int(inliers.sum()) < s.min_inliers:
            return None
        zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        if not 1 / s.max_zoom <= zoom <= s.max_zoom:
            return None
        return np.vstack([matrix, [0.0, 0.0, 1.0]])


def with_motion(frames: Iterable[Frame], settings: MotionSettings | None = None
                ) -> Iterator[tuple[Frame, np.ndarray]]:
    """Pair each frame with the camera motion since the frame before it."""
    estimator = MotionEstimator(settings)
    width = estimator.settings.width
    for frame in frames:
        grey, scale = frame.grey(width)
        yield frame, estimator(grey, scale)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The xyxy boxes' corners mapped by a 3x3 matrix, as the boxes that enclose them.

    Under rotation the enclosing box is larger than the face's: masks only grow.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if matrix is IDENTITY or np.array_equal(matrix, IDENTITY):
        return boxes.copy()
    xs = boxes[:, [0, 2, 2, 0]]
    ys = boxes[:, [1, 1, 3, 3]]
    mx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    my = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return np.stack([mx.min(axis=1), my.min(axis=1), mx.max(axis=1), my.max(axis=1)], axis=1)


__all__ = ["IDENTITY", "MotionEstimator", "MotionSettings", "transform_boxes", "with_motion"]
