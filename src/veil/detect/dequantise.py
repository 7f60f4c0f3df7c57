"""Gives the detector a smoothed copy of 1-bit, dithered and few-colour pictures (detection only).

The lowered thresholds such pictures are searched at are in `veil.presets` (QUANTISED_SCALE).
"""

from __future__ import annotations

import numpy as np

from .._types import Detections
from .base import Detector

# At most this many grey levels in every channel marks a picture as quantised: 1-bit images have
# 2, web-safe palettes 6, 16-colour palettes at most 16; photos, even dark or JPEG-compressed
# greyscale ones, use far more.
LOW_LEVELS = 16
# Gaussian sigma (pixels) of the smoothing: about the period of error-diffusion dither, which is
# fixed in pixels whatever the picture's size. On 1-bit copies of the first 50 dev photos
# (benchmarks/dithered_recall.py --limit 50 --sigmas 1,2,3, balanced) sigma 1.5 covered the most
# faces >= 32 px: 1 lost small faces' detail less but found fewer 32-64 px faces, 2 and 3 blurred
# away small faces (covered <16: 0.90 at 1 and 1.5, 0.75 at 2, 0.36 at 3).
DITHER_SIGMA = 1.5
# Levels are counted on every 4th row and column: quantised pictures stay quantised when
# subsampled, photos keep their many levels, and a 12-megapixel still costs a millisecond.
_SUBSAMPLE = 4


def grey_levels(pixels: np.ndarray) -> int:
    """The most distinct values any channel of an (H, W, 3) uint8 frame uses (sampled)."""
    sample = np.ascontiguousarray(pixels[::_SUBSAMPLE, ::_SUBSAMPLE])
    if sample.size == 0:
        return 0
    channels = sample.reshape(-1, sample.shape[-1] if sample.ndim == 3 else 1)
    return max(int(np.count_nonzero(np.bincount(channels[:, c], minlength=256)))
               for c in range(channels.shape[1]))


def is_quantised(pixels: np.ndarray) -> bool:
    """Whether the frame holds so few levels that it must be dithered or posterised."""
    return grey_levels(pixels) <= LOW_LEVELS


def detection_view(pixels: np.ndarray, sigma: float = DITHER_SIGMA) -> np.ndarray:
    """The pixels the face detector should see: a smoothed copy of a quantised frame, else the frame.

    Why: CenterFace was trained on photos. In a dithered picture a face is a field of isolated
    black and white dots whose average is the face; the detector sees the dots and misses large
    frontal faces a colour copy shows plainly. Smoothing over the dither period gives back the
    average the eye sees. Only detection uses the view: masks are applied to the real pixels,
    which are never changed (a new array is returned).
    """
    if pixels.ndim != 3 or not is_quantised(pixels):
        return pixels
    import cv2

    return cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


class Dequantised:
    """A detector that looks at `detection_view` of each frame: for stills that are quantised."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def __call__(self, frame: np.ndarray) -> Detections:
        return self.detector(detection_view(frame))
