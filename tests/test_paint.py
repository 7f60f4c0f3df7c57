"""Pixel operations: every planned pixel changes, nothing else does, the input is never mutated."""

import numpy as np
import pytest

from veil import MaskRegions, MaskShape, MaskStyle
from veil.paint import apply_masks, coverage_mask


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, size=(120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("style", list(MaskStyle))
@pytest.mark.parametrize("shape", list(MaskShape))
def test_masks_change_only_planned_pixels(style: MaskStyle, shape: MaskShape) -> None:
    image = _image()
    before = image.copy()
    plan = MaskRegions(np.array([[10, 20, 70, 90], [100, 60, 160, 120]]), shape)
    out = apply_masks(image, plan, style)
    assert np.array_equal(image, before), "the caller's array was mutated"
    covered = coverage_mask(plan, 120, 160)
    assert np.array_equal(out[~covered], image[~covered])
    changed = (out != image).any(axis=2)
    if style in (MaskStyle.SOLID, MaskStyle.NOISE):
        # Irreversible styles: essentially every pixel differs (noise can match by chance: 1/256^3).
        assert changed[covered].mean() > 0.99
    else:
        assert changed[covered].mean() > 0.5


def test_region_at_edge_includes_last_row_and_column() -> None:
    image = _image()
    plan = MaskRegions(np.array([[150, 110, 160, 120]]))
    out = apply_masks(image, plan, MaskStyle.SOLID)
    assert (out[119, 159] == 0).all() and (out[110:, 150:] == 0).all()


def test_solid_mask_keeps_no_trace_of_the_face() -> None:
    plan = MaskRegions(np.array([[0, 0, 50, 50]]))
    a = apply_masks(_image(1), plan, MaskStyle.SOLID)
    b = apply_masks(_image(2), plan, MaskStyle.SOLID)
    assert np.array_equal(a[:50, :50], b[:50, :50])


def test_noise_is_independent_of_the_face() -> None:
    plan = MaskRegions(np.array([[0, 0, 60, 60]]))
    image = _image()
    out = apply_masks(image, plan, MaskStyle.NOISE)
    corr = np.corrcoef(out[:60, :60].ravel().astype(float), image[:60, :60].ravel().astype(float))[0, 1]
    assert abs(corr) < 0.05


def test_blur_scales_with_region_size() -> None:
    """A large face gets a strong blur, not a fixed small kernel."""
    image = _image()
    plan = MaskRegions(np.array([[0, 0, 160, 120]]))
    out = apply_masks(image, plan, MaskStyle.BLUR)
    assert out.astype(float).std() < image.astype(float).std() / 4


def test_ellipse_leaves_corners() -> None:
    image = _image()
    plan = MaskRegions(np.array([[0, 0, 100, 100]]), MaskShape.ELLIPSE)
    out = apply_masks(image, plan, MaskStyle.SOLID)
    assert np.array_equal(out[0, 0], image[0, 0]) and (out[50, 50] == 0).all()


def test_reversible_flags() -> None:
    assert MaskStyle.BLUR.reversible and MaskStyle.MOSAIC.reversible
    assert not MaskStyle.SOLID.reversible and not MaskStyle.NOISE.reversible


@pytest.mark.parametrize("shape", [MaskShape.BOX, MaskShape.ELLIPSE])
def test_coverage_in_a_window_equals_the_whole_frame_coverage_cut_to_it(shape: MaskShape) -> None:
    # Empty and inverted boxes cover nothing, also where a window offset would make their
    # coordinates negative (a negative slice end would select almost everything).
    plan = MaskRegions(np.array([[12, 10, 30, 25], [20, 14, 44, 40], [12, 10, 12, 30], [30, 30, 11, 9]]),
                    shape)
    whole = coverage_mask(plan, 50, 60)
    window = coverage_mask(plan, 50, 60, (12, 10, 44, 40))
    assert np.array_equal(window, whole[10:40, 12:44])
    assert whole.sum() == window.sum() > 0
    if shape is MaskShape.BOX:
        assert whole.sum() == 18 * 15 + 24 * 26 - 10 * 11  # two boxes, overlap counted once
