"""Pixel check: inside every mask region, does any run of the original's pixels survive?

What "the original's pixel" means after lossy re-encoding: the output pixel is within `tolerance`
of the original on every channel. The tolerance is measured per file from the pixels *outside*
every mask region, where the output should equal the original up to encoding error (JPEG at
quality 95 moves a pixel by at most ~20 levels, 99.9 % of them by <= 7; H.264 more).

A single matching pixel proves nothing (random noise matches by chance, and a black box matches
pixels that were black), so a pixel *survives* only when
  - it matches the original within the tolerance,
  - it is not explained by the mask itself (within the tolerance of a solid fill colour), and
  - it lies in a horizontal or vertical run of at least RUN_PX such pixels.
For a noise mask a chance run of RUN_PX matches has probability < 1e-10 per pixel, so any
surviving run is a real leak; for a solid mask, the region must be exactly the fill colour. Blur
and mosaic keep the original's coarse structure by design, so they are reported as reversible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._types import MaskRegions
from ..paint import SOLID_COLOUR, coverage_mask, region_mask
from .report import RegionStyle

RUN_PX = 4
# Within this many pixels of a region's border, a video codec's ringing carries the picture just
# outside into the mask (H.264's 4x4 transforms and its deblocking filter reach 3 px across an
# edge), and over an original that continues the same picture it can match the original by
# chance: 4 dark-grey pixels 2 px inside a solid box's bottom edge did, on a yuv444 clip. There a
# run must be this long to count; the real border leak, a row or column left unpainted, runs
# along the whole border.
RING_PX = 4
EDGE_RUN_PX = 2 * RUN_PX
MIN_TOLERANCE = 6
MAX_TOLERANCE = 32
DEFAULT_TOLERANCE = 16  # when too little of the frame lies outside the masks to measure noise
# A region is "unmasked" when at least this share of its pixels still match the original.
UNMASKED_SHARE = 0.5
# Low-frequency correlation above which the output still carries the original's structure.
STRUCTURE_CORRELATION = 0.6


@dataclass(frozen=True)
class RegionVerdict:
    """What the pixel check saw in one mask region."""

    style: RegionStyle
    surviving_pixels: int  # pixels in surviving runs
    region_pixels: int
    surviving_box: tuple[int, int, int, int] | None  # x, y, w, h in frame pixels
    correlation: float  # low-frequency correlation between original and output

    @property
    def leaks_pixels(self) -> bool:
        return self.surviving_pixels > 0


# An output whose grey levels span under this share of the original's was squeezed, not masked.
SQUEEZED_SPAN = 0.25


def matched_levels(original: np.ndarray, output: np.ndarray) -> np.ndarray:
    """The output with its levels stretched onto the original's when they were squeezed.

    Why: an output that holds the picture in a few levels (a float image in 0..1 written as
    8-bit 0s and 1s) looks black, so every check would call it masked, yet anyone can stretch
    it back into the photo. The audit judges what such a stretch shows. A faithful redaction
    keeps the original's pixels outside the masks, hence its range, and is returned unchanged.
    """
    low, high = int(output.min(initial=0)), int(output.max(initial=0))
    target_low, target_high = int(original.min(initial=0)), int(original.max(initial=0))
    if output.size == 0 or (high - low) >= SQUEEZED_SPAN * (target_high - target_low):
        return output
    scale = (target_high - target_low) / max(1, high - low)
    stretched = (output.astype(np.float64) - low) * scale + target_low
    return np.clip(np.rint(stretched), 0, 255).astype(np.uint8)


def channel_difference(original: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Largest per-channel absolute difference, (H, W) uint8."""
    return np.abs(original.astype(np.int16) - output.astype(np.int16)).max(axis=2).astype(np.uint8)


def encoding_tolerance(difference: np.ndarray, covered: np.ndarray) -> int:
    """Per-file tolerance from the re-encoding error outside the (dilated) mask regions."""
    import cv2

    # JPEG and H.264 ringing spreads from a mask edge into its 8x8 / 16x16 blocks: stay 16 px away.
    near = cv2.dilate(covered.astype(np.uint8), np.ones((33, 33), np.uint8)).astype(bool)
    outside = difference[~near]
    if outside.size < 4096:
        return DEFAULT_TOLERANCE
    p999 = float(np.percentile(outside, 99.9))
    return int(np.clip(np.ceil(2 * p999), MIN_TOLERANCE, MAX_TOLERANCE))


def runs(mask: np.ndarray, length: int = RUN_PX) -> np.ndarray:
    """Pixels of `mask` that lie in a horizontal or vertical run of at least `length` True pixels."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    if w >= length:
        start = mask[:, : w - length + 1].copy()
        for k in range(1, length):
            start &= mask[:, k: w - length + 1 + k]
        for k in range(length):
            out[:, k: w - length + 1 + k] |= start
    if h >= length:
        start = mask[: h - length + 1, :].copy()
        for k in range(1, length):
            start &= mask[k: h - length + 1 + k, :]
        for k in range(length):
            out[k: h - length + 1 + k, :] |= start
    return out


def _border_band(inside: np.ndarray) -> np.ndarray:
    """The pixels of `inside` within RING_PX of its border (outside the array counts as outside)."""
    import cv2

    padded = np.pad(inside.astype(np.uint8), RING_PX)
    shrunk = cv2.erode(padded, np.ones((2 * RING_PX + 1, 2 * RING_PX + 1), np.uint8))
    return inside & ~shrunk[RING_PX:-RING_PX, RING_PX:-RING_PX].astype(bool)


def _low_frequency_correlation(original: np.ndarray, output: np.ndarray) -> float:
    """Pearson correlation of 8x8 area averages: blur and mosaic keep it high, solid/noise do not."""
    import cv2

    h, w = original.shape[:2]
    size = (max(1, min(8, w)), max(1, min(8, h)))
    a = cv2.resize(original, size, interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    b = cv2.resize(output, size, interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    if a.std() < 1.0 or b.std() < 1.0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _roughness(pixels: np.ndarray) -> float:
    """Mean absolute step between horizontal neighbours: ~85 for uniform noise, ~1 for a blur."""
    grey = pixels.astype(np.int16).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean()) if grey.shape[1] > 1 else 0.0


def _is_blocky(output: np.ndarray, tolerance: int) -> bool:
    """Mosaic: most neighbours are equal and the change is concentrated in a few block edges."""
    grey = output.astype(np.int16).max(axis=2)
    steps = np.abs(np.diff(grey, axis=1)).ravel()
    if steps.size < 16 or steps.sum() == 0:
        return False
    flat_share = float((steps <= tolerance // 2).mean())
    top = np.sort(steps)[::-1][: max(1, steps.size // 6)]
    concentrated = float(top.sum() / steps.sum())
    return flat_share > 0.7 and concentrated > 0.75


def classify_region(original: np.ndarray, output: np.ndarray, inside: np.ndarray,
                    matches: np.ndarray, tolerance: int) -> tuple[RegionStyle, np.ndarray, float]:
    """Style of one region, and which of its pixels are explained by a solid fill."""
    pixels = output[inside].astype(np.int16)
    fill = np.median(pixels, axis=0)
    near_fill = np.zeros(inside.shape, bool)
    near_fill[inside] = np.abs(pixels - fill).max(axis=1) <= tolerance
    # veil's own fill colour counts as fill even when it covers less than half the region.
    veil_fill = np.abs(output.astype(np.int16) - np.asarray(SOLID_COLOUR, np.int16)).max(axis=2) <= tolerance
    correlation = _low_frequency_correlation(original, output)
    n = int(inside.sum())
    fill_share = float(near_fill[inside].mean()) if n else 1.0
    match_share = float(matches[inside].mean()) if n else 0.0
    # A fill explains its pixels only if it painted over something different: a region whose most
    # common colour still matches the original underneath (an unmasked cheek) has no fill.
    fill_matches = float(matches[near_fill].mean()) if near_fill.any() else 0.0
    explained = (near_fill if fill_share >= 0.25 and fill_matches < 0.5 else np.zeros_like(near_fill))
    explained = explained | veil_fill
    if fill_share >= 0.9:
        return RegionStyle.SOLID, explained, correlation
    if match_share >= 0.9:
        return RegionStyle.UNMASKED, explained, correlation
    # A mosaic over a flat area leaves many cells equal to the original: test blocks first.
    if correlation >= STRUCTURE_CORRELATION and _is_blocky(output, tolerance):
        return RegionStyle.MOSAIC, explained, correlation
    if match_share >= UNMASKED_SHARE:
        return RegionStyle.UNMASKED, explained, correlation
    roughness = _roughness(output)
    if roughness > 30 and correlation < STRUCTURE_CORRELATION:
        return RegionStyle.NOISE, explained, correlation
    if correlation >= STRUCTURE_CORRELATION:
        smoothed = roughness < _roughness(original)
        return (RegionStyle.BLUR if smoothed else RegionStyle.FILTERED), explained, correlation
    return RegionStyle.OTHER, explained, correlation


def check_regions(original: np.ndarray, output: np.ndarray, plan: MaskRegions,
                  tolerance: int) -> list[RegionVerdict]:
    """One verdict per planned region, in plan order."""
    difference = channel_difference(original, output)
    matches_all = difference <= tolerance
    verdicts = []
    for i, (x0, y0, x1, y1) in enumerate(plan.boxes):
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        if x1 <= x0 or y1 <= y0:
            verdicts.append(RegionVerdict(RegionStyle.SOLID, 0, 0, None, 0.0))
            continue
        inside = region_mask(plan, i)
        orig = original[y0:y1, x0:x1]
        out = output[y0:y1, x0:x1]
        matches = matches_all[y0:y1, x0:x1] & inside
        style, explained, correlation = classify_region(orig, out, inside, matches, tolerance)
        candidates = matches & ~explained
        band = _border_band(inside)  # the candidates, and so their runs, lie inside the region
        surviving = (runs(candidates) & ~band) | (runs(candidates, EDGE_RUN_PX) & band)
        count = int(surviving.sum())
        box = None
        if count:
            ys, xs = np.nonzero(surviving)
            box = (x0 + int(xs.min()), y0 + int(ys.min()),
                   int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        verdicts.append(RegionVerdict(style, count, int(inside.sum()), box, correlation))
    return verdicts


def applied_coverage(original: np.ndarray, output: np.ndarray, plan: MaskRegions,
                     verdicts: list[RegionVerdict], tolerance: int) -> np.ndarray:
    """Where the output actually hides something: planned regions that were masked, plus any
    other area that changed beyond encoding error (a redaction made by other means)."""
    import cv2

    h, w = original.shape[:2]
    masked = [i for i, v in enumerate(verdicts) if v.style is not RegionStyle.UNMASKED]
    covered = coverage_mask(plan[masked], h, w) if masked else np.zeros((h, w), bool)
    changed = (channel_difference(original, output) > tolerance).astype(np.uint8)
    # Opening drops isolated encoding outliers; closing joins a mask's changed pixels into one area.
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    changed = cv2.morphologyEx(changed, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    for label in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[label])
        if area >= 64:
            covered[y: y + bh, x: x + bw] = True
    return covered
