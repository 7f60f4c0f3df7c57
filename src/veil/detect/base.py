"""The Detector protocol every face finder implements, and a trivial one for tests downstream."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .._types import Detections


@runtime_checkable
class Detector(Protocol):
    """Finds faces in an upright RGB uint8 frame of shape (H, W, 3)."""

    def __call__(self, frame: np.ndarray) -> Detections: ...


class StaticDetector:
    """Returns the same boxes for every frame; lets tests exercise everything after detection."""

    def __init__(self, boxes: list[tuple[float, float, float, float]], score: float = 0.9) -> None:
        self._detections = Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                                      np.full(len(boxes), score, np.float32))

    def __call__(self, frame: np.ndarray) -> Detections:
        return self._detections
