"""Gives the detector a smoothed copy of 1-bit, dithered and few-colour pictures (detection only)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from .._types import Config
from ..detect.base import Detector

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
# Faces rebuilt from dots score lower than in the photo, so a quantised picture is searched at this
# share of each size tier's threshold. Same 50 photos, sigma 1.5: covered 32-64 px 0.90 at the
# preset's thresholds, 0.91 at 0.75x, 0.96 at 0.5x (colour photos: 0.975), at 4.3x the annotated
# face area masked instead of 3.0x. A missed face outranks a false mask. With both, on the first
# 100 photos (--limit 100 --raw): covered 32-64 px 0.956 and >= 64 px 0.980 against the colour
# photos' 0.981 and 0.987; the detector on the raw dots covered 0.753 and 0.795.
THRESHOLD_SCALE = 0.5
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


def quantised_detector(config: Config) -> Detector:
    """The config's detector with every size tier's threshold scaled by THRESHOLD_SCALE."""
    return _quantised_detector(config.detect.value, config.threshold, config.threads)


@lru_cache(maxsize=4)
def _quantised_detector(preset: str, threshold: float | None, threads: int) -> Detector:
    from ..detect.faces import FaceDetector, preset_settings

    settings = preset_settings(preset, threshold)
    scaled = tuple(t * THRESHOLD_SCALE for t in settings.thresholds)
    return FaceDetector(replace(settings, thresholds=scaled), threads)  # shares the ONNX session
