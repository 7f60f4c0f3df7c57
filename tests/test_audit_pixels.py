"""The pixel check on hand-built frames: exact for solid and noise, 'reversible' for blur and mosaic."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from veil import MaskRegions, MaskShape, MaskStyle
from veil.audit.pixels import (
    EDGE_RUN_PX,
    RING_PX,
    RUN_PX,
    channel_difference,
    check_regions,
    encoding_tolerance,
    runs,
)
from veil.audit.report import RegionStyle
from veil.paint import apply_masks, coverage_mask


def _textured(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """A structured picture (gradients, blobs, fine detail), like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(6):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(15, 60)
            img[..., c] += rng.uniform(40, 120) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img[..., c] += 30 + 0.3 * xx + 0.2 * yy
        # Fine detail (like eyes, hair, print) that any real blur removes.
        img[..., c] += 25 * np.sin(xx / rng.uniform(1.2, 2.0)) * np.cos(yy / rng.uniform(1.2, 2.0))
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray, quality: int = 95) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


PLAN = MaskRegions(np.array([[40, 30, 140, 150], [180, 60, 300, 200]]))


def _verdicts(original: np.ndarray, output: np.ndarray, plan: MaskRegions = PLAN):
    diff = channel_difference(original, output)
    tol = encoding_tolerance(diff, coverage_mask(plan, *original.shape[:2]))
    return check_regions(original, output, plan, tol), tol


@pytest.mark.parametrize("run", [
    ([0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 0]),
    ([1, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]),
    ([1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]),
])
def test_runs_keep_only_long_runs(run: tuple[list[int], list[int]]) -> None:
    row, expected = run
    assert RUN_PX == 4
    got = runs(np.array([row], bool))
    assert got[0].astype(int).tolist() == expected
    # The same holds vertically.
    assert runs(np.array([row], bool).T)[:, 0].astype(int).tolist() == expected


@pytest.mark.parametrize("style,quality", [(MaskStyle.SOLID, None), (MaskStyle.SOLID, 95),
                                           (MaskStyle.SOLID, 75), (MaskStyle.NOISE, None),
                                           (MaskStyle.NOISE, 95)])
def test_destroying_masks_leave_no_original_pixels(style: MaskStyle, quality: int | None) -> None:
    original = _textured()
    output = apply_masks(original, PLAN, style, np.random.default_rng(1))
    if quality:
        output = _jpeg(output, quality)
        original = original  # the original stays the decoded source
    verdicts, _ = _verdicts(original, output)
    for v in verdicts:
        assert v.style is RegionStyle(style.value)
        assert v.surviving_pixels == 0, v


@pytest.mark.parametrize("where", ["last_row", "last_column", "patch"])
@pytest.mark.parametrize("style", [MaskStyle.SOLID, MaskStyle.NOISE])
def test_a_strip_of_original_pixels_is_found(where: str, style: MaskStyle) -> None:
    """The classic clipping bug (last row or column left unmasked) and a pasted-back patch."""
    original = _textured()
    output = apply_masks(original, PLAN, style, np.random.default_rng(2))
    x0, y0, x1, y1 = PLAN.boxes[1]
    if where == "last_row":
        output[y1 - 1, x0:x1] = original[y1 - 1, x0:x1]
    elif where == "last_column":
        output[y0:y1, x1 - 1] = original[y0:y1, x1 - 1]
    else:
        output[y0 + 20: y0 + 28, x0 + 30: x0 + 38] = original[y0 + 20: y0 + 28, x0 + 30: x0 + 38]
    verdicts, _ = _verdicts(original, _jpeg(output))
    assert verdicts[0].surviving_pixels == 0
    leak = verdicts[1]
    assert leak.surviving_pixels > 0
    bx, by, bw, bh = leak.surviving_box
    if where == "last_row":
        assert by == y1 - 1 and bh == 1
    elif where == "last_column":
        assert bx == x1 - 1 and bw == 1
    else:
        assert x0 + 30 <= bx and bx + bw <= x0 + 38 and y0 + 20 <= by and by + bh <= y0 + 28


@pytest.mark.parametrize("inset,length,found", [
    (2, RUN_PX, False),  # codec ringing near the border: a short chance match is not a leak
    (RING_PX - 1, RUN_PX, False),
    (RING_PX, RUN_PX, True),  # past the ringing band the usual run length holds
    (12, RUN_PX, True),
    (2, EDGE_RUN_PX, True),  # a longer run near the border still is one
])
def test_short_matches_in_the_codec_ringing_band_are_not_leaks(inset: int, length: int, found: bool) -> None:
    """H.264 carries the picture just outside a solid box a few pixels into it; where the
    original continues that picture, a few output pixels match it by chance (a yuv444 clip's
    audit flagged 4 dark-grey pixels 2 px inside a box's bottom edge)."""
    original = _textured()
    output = apply_masks(original, PLAN, MaskStyle.SOLID)
    x0, y0, x1, y1 = PLAN.boxes[1]
    row, start = y1 - 1 - inset, x0 + 40
    output[row, start:start + length] = original[row, start:start + length]
    verdicts, _ = _verdicts(original, output)
    assert verdicts[0].surviving_pixels == 0
    assert (verdicts[1].surviving_pixels == length) is found, verdicts[1]
    assert (verdicts[1].surviving_pixels == 0) is not found, verdicts[1]


def test_an_unmasked_region_is_reported_as_unmasked() -> None:
    original = _textured()
    output = apply_masks(original, PLAN[[0]], MaskStyle.SOLID)
    verdicts, _ = _verdicts(original, _jpeg(output))
    assert verdicts[0].style is RegionStyle.SOLID and not verdicts[0].leaks_pixels
    assert verdicts[1].style is RegionStyle.UNMASKED
    assert verdicts[1].surviving_pixels > 0.9 * verdicts[1].region_pixels


@pytest.mark.parametrize("style", [MaskStyle.BLUR, MaskStyle.MOSAIC])
def test_blur_and_mosaic_are_reported_reversible(style: MaskStyle) -> None:
    original = _textured()
    verdicts, _ = _verdicts(original, _jpeg(apply_masks(original, PLAN, style)))
    for v in verdicts:
        assert v.style is RegionStyle(style.value)
        assert v.style.reversible


def test_ellipse_regions_check_only_the_ellipse() -> None:
    """Corners outside an ellipse are not part of the region and hold original pixels legitimately."""
    original = _textured()
    plan = MaskRegions(PLAN.boxes, MaskShape.ELLIPSE)
    output = _jpeg(apply_masks(original, plan, MaskStyle.SOLID))
    verdicts, _ = _verdicts(original, output, plan)
    assert all(v.style is RegionStyle.SOLID and v.surviving_pixels == 0 for v in verdicts)
    # Judged as boxes, the same output leaks its corners.
    box_verdicts, _ = _verdicts(original, output, PLAN)
    assert all(v.surviving_pixels > 0 for v in box_verdicts)


def test_tolerance_follows_the_encoding_noise() -> None:
    original = _textured(480, 640)
    plan = MaskRegions(np.array([[100, 100, 200, 220]]))
    masked = apply_masks(original, plan, MaskStyle.SOLID)
    cover = coverage_mask(plan, 480, 640)
    exact = encoding_tolerance(channel_difference(original, masked), cover)
    rough = encoding_tolerance(channel_difference(original, _jpeg(masked, 40)), cover)
    assert exact == 6  # the floor: a lossless output has no encoding noise
    assert rough > exact
