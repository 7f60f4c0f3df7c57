"""deface 1.5.0's defaults as a predictor for veil's harness: the comparison row of the recall tables.

What deface does with its defaults (deface/deface.py and centerface.py): CenterFace on the whole
frame at full resolution (resized to a multiple of 32), threshold 0.2, each box grown by 0.3 of its
size on every side (mask scale 1.3), clipped to [0, size - 1], then blurred inside the ellipse
inscribed in that box. We reproduce the region it replaces, pixel for pixel, with its own code.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

THRESHOLD = 0.2
MASK_SCALE = 1.3


def available() -> bool:
    try:
        import deface  # noqa: F401
        import skimage  # noqa: F401
    except ImportError:
        return False
    return True


class DefaceDefaults:
    """Callable: RGB pixels -> (Detections, boolean coverage of the pixels deface would replace)."""

    def __init__(self, ellipse: bool = True) -> None:
        from deface.centerface import CenterFace

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider
            self._net = CenterFace(backend="onnxrt", override_execution_provider="CPUExecutionProvider")
        self.ellipse = ellipse

    def __call__(self, pixels: np.ndarray):  # type: ignore[no-untyped-def]
        import skimage.draw
        from deface.deface import scale_bb

        from veil._types import Detections

        dets, _ = self._net(pixels, threshold=THRESHOLD)
        height, width = pixels.shape[:2]
        coverage = np.zeros((height, width), bool)
        for det in dets:
            x1, y1, x2, y2 = scale_bb(*det[:4].astype(int), MASK_SCALE)
            # deface clips to the last index, then slices end-exclusive: its last row and column stay bare.
            y1, y2 = max(0, y1), min(height - 1, y2)
            x1, x2 = max(0, x1), min(width - 1, x2)
            roi = coverage[y1:y2, x1:x2]
            if not self.ellipse:
                roi[...] = True
                continue
            ey, ex = skimage.draw.ellipse((y2 - y1) // 2, (x2 - x1) // 2, (y2 - y1) // 2, (x2 - x1) // 2)
            inside = (ey < roi.shape[0]) & (ex < roi.shape[1])
            roi[ey[inside], ex[inside]] = True
        boxes = dets[:, :4] if len(dets) else np.zeros((0, 4), np.float32)
        scores = dets[:, 4] if len(dets) else np.zeros(0, np.float32)
        return Detections(boxes, scores), coverage
