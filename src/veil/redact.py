"""Pixel operations that hide faces; each returns a new array and leaves the caller's alone."""

from __future__ import annotations

import functools

import numpy as np

from ._types import MaskPlan, MaskShape, MaskStyle

SOLID_COLOUR = (0, 0, 0)
# Mosaic cells and blur strength scale with the region, never a fixed kernel: a fixed 15 px blur
# leaves a large face recognisable.
MOSAIC_CELLS = 8
BLUR_SIGMA_FRACTION = 0.12


def region_mask(plan: MaskPlan, index: int) -> np.ndarray:
    """Boolean mask of region `index` inside its own box (all True for boxes); read-only."""
    x0, y0, x1, y1 = (int(v) for v in plan.boxes[index])
    return _shape_mask(plan.shape, y1 - y0, x1 - x0)


@functools.lru_cache(maxsize=4096)
def _shape_mask(shape: MaskShape, h: int, w: int) -> np.ndarray:
    """Cached per size: a crowd video asks for the same few hundred sizes frame after frame."""
    if shape is MaskShape.BOX:
        mask = np.ones((max(h, 0), max(w, 0)), bool)
    else:
        yy, xx = np.ogrid[:h, :w]
        # The ellipse inscribed in the pixel grid, measured from pixel centres.
        cy, cx = (h - 1) / 2, (w - 1) / 2
        ry, rx = max(h / 2, 0.5), max(w / 2, 0.5)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    mask.flags.writeable = False
    return mask


def coverage_mask(plan: MaskPlan, height: int, width: int,
                  window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Boolean (H, W) mask of every pixel the plan replaces; with `window` (x0, y0, x1, y1), only
    that part of the frame (the regions must lie inside it)."""
    wx, wy = (window[0], window[1]) if window else (0, 0)
    if window:
        width, height = window[2] - window[0], window[3] - window[1]
    covered = np.zeros((height, width), bool)
    boxes = plan.boxes - np.array([wx, wy, wx, wy], plan.boxes.dtype)
    if plan.shape is MaskShape.BOX:  # no per-region mask to combine: set the boxes directly
        for x0, y0, x1, y1 in boxes.tolist():
            if x1 > x0 and y1 > y0:
                covered[y0:y1, x0:x1] = True
        return covered
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if x1 > x0 and y1 > y0:
            covered[y0:y1, x0:x1] |= region_mask(plan, i)
    return covered


def apply_masks(pixels: np.ndarray, plan: MaskPlan, style: MaskStyle,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Return a copy of `pixels` (H, W, C uint8) with every planned region replaced."""
    out = pixels.copy()
    if len(plan) == 0:
        return out
    style = MaskStyle(style)
    rng = rng or np.random.default_rng()
    for i, (x0, y0, x1, y1) in enumerate(plan.boxes):
        if x1 <= x0 or y1 <= y0:
            continue
        inside = region_mask(plan, i)
        patch = out[y0:y1, x0:x1]
        replacement = _replacement(patch, style, rng)
        patch[inside] = replacement[inside]
    return out


def _replacement(patch: np.ndarray, style: MaskStyle, rng: np.random.Generator) -> np.ndarray:
    if style is MaskStyle.SOLID:
        fill = np.empty_like(patch)
        fill[...] = np.asarray(SOLID_COLOUR[: patch.shape[2]] if patch.ndim == 3 else SOLID_COLOUR[0],
                               patch.dtype)
        return fill
    if style is MaskStyle.NOISE:
        return rng.integers(0, 256, size=patch.shape, dtype=np.uint8).astype(patch.dtype)
    if style is MaskStyle.MOSAIC:
        return _mosaic(patch)
    if style is MaskStyle.BLUR:
        return _blur(patch)
    raise ValueError(f"unknown mask style {style}")


def _mosaic(patch: np.ndarray) -> np.ndarray:
    import cv2

    h, w = patch.shape[:2]
    cells = max(1, MOSAIC_CELLS)
    small = cv2.resize(patch, (max(1, min(cells, w)), max(1, min(cells, h))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).reshape(patch.shape)


def _blur(patch: np.ndarray) -> np.ndarray:
    import cv2

    h, w = patch.shape[:2]
    sigma = max(1.0, BLUR_SIGMA_FRACTION * max(h, w))
    return cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REPLICATE).reshape(patch.shape)
