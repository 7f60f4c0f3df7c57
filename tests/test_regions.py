"""Mask planning: margins scale with the face and regions clip exactly at frame edges."""

import numpy as np
import pytest

from veil import Config, Detections, DetectPreset, MaskShape
from veil.presets import sure_margins
from veil.regions import clip_regions, mask_regions


def _dets(*boxes: tuple[float, float, float, float], score: float = 0.2) -> Detections:
    """Boxes the detector is not sure of (under presets.SURE_MARGINS): Config's full margins."""
    return Detections(np.asarray(boxes, np.float32), np.full(len(boxes), score, np.float32))


@pytest.mark.parametrize(
    ("box", "width", "height", "expected"),
    [
        # Wholly inside: margins of 0.3 / 0.35 / 0.2 around a 100x100 face, rounded outwards.
        ((200, 200, 300, 300), 1000, 1000, (170, 165, 330, 320)),
        # Touching the right and bottom edges: the region ends at width/height (last column/row masked).
        ((950, 950, 1000, 1000), 1000, 1000, (935, 932, 1000, 1000)),
        # Off the top-left: clipped to 0.
        ((0, 0, 40, 40), 1000, 1000, (0, 0, 52, 48)),
        # Fractional boxes never shrink: floor the start, ceil the end.
        ((10.4, 10.4, 20.6, 20.6), 100, 100, (7, 6, 24, 23)),
    ],
)
def test_plan_margins_and_clipping(box, width, height, expected) -> None:
    config = Config(margin_x=0.3, margin_top=0.35, margin_bottom=0.2)
    plan = mask_regions(_dets(box), width, height, config)
    assert tuple(plan.boxes[0]) == expected


@pytest.mark.parametrize(
    ("preset", "score", "expected"),
    [
        # A sure box in fast and balanced: 0.6x the margins (0.15 / 0.24 / 0.12 of a 100 px face).
        (DetectPreset.BALANCED, 0.9, (185, 176, 315, 312)),
        (DetectPreset.FAST, 0.3, (185, 176, 315, 312)),
        # Unsure, or carried by the tracker (score 0): the full 0.25 / 0.4 / 0.2.
        (DetectPreset.BALANCED, 0.29, (175, 160, 325, 320)),
        (DetectPreset.BALANCED, 0.0, (175, 160, 325, 320)),
        # thorough too (issue 18: every face kept, less area).
        (DetectPreset.THOROUGH, 0.9, (185, 176, 315, 312)),
        (DetectPreset.THOROUGH, 0.2, (175, 160, 325, 320)),
    ],
)
def test_sure_boxes_get_smaller_margins(preset, score, expected) -> None:
    config = Config(detect=preset)
    plan = mask_regions(_dets((200, 200, 300, 300), score=score), 1000, 1000, config,
                        sure=sure_margins(config))
    assert tuple(plan.boxes[0]) == expected


@pytest.mark.parametrize(("frame_height", "expected"), [
    # The 100 px face is 0.33 of a 300 px frame: a sure box, 0.6x margins (clipped at 300).
    (300, (185, 176, 315, 300)),
    # ... and 0.4 of a 250 px frame: a close-up, full margins (clipped at the bottom edge).
    (250, (175, 160, 325, 250)),
])
def test_a_sure_close_up_keeps_full_margins(frame_height: int, expected: tuple[int, ...]) -> None:
    config = Config(detect=DetectPreset.BALANCED)
    assert sure_margins(config) == (0.3, 0.6, 0.35)
    plan = mask_regions(_dets((200, 200, 300, 300), score=0.9), 1000, frame_height, config,
                        sure=sure_margins(config))
    assert tuple(plan.boxes[0]) == expected


def test_sure_margins_never_leave_the_face_box() -> None:
    """Whatever the margins are scaled to, the region still holds the whole detected box."""
    plan = mask_regions(_dets((10.5, 20.5, 60.5, 90.5), score=0.99), 640, 480,
                        Config(margin_x=0.0, margin_top=0.0, margin_bottom=0.0), sure=(0.3, 0.6))
    assert tuple(plan.boxes[0]) == (10, 20, 61, 91)


def test_region_covers_the_face_box_entirely() -> None:
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(200):
        x, y = rng.uniform(-20, 620), rng.uniform(-20, 460)  # every box overlaps the frame
        w, h = rng.uniform(1, 200, 2)
        boxes.append((x, y, x + w, y + h))
    plan = mask_regions(_dets(*boxes), 640, 480, Config())
    assert len(plan) == len(boxes)
    for (x0, y0, x1, y1), (bx0, by0, bx1, by1) in zip(plan.boxes, np.asarray(boxes)):
        assert x0 <= max(bx0, 0) and y0 <= max(by0, 0)
        assert x1 >= min(bx1, 640) and y1 >= min(by1, 480)
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480


def test_tiny_detection_still_gets_a_minimum_mask() -> None:
    plan = mask_regions(_dets((50, 50, 50.5, 50.5)), 100, 100, Config(min_mask_px=4))
    x0, y0, x1, y1 = plan.boxes[0]
    assert x1 - x0 >= 4 and y1 - y0 >= 4


def test_empty_detections_give_empty_plan() -> None:
    plan = mask_regions(Detections.empty(), 10, 10, Config(shape=MaskShape.ELLIPSE))
    assert len(plan) == 0 and plan.shape is MaskShape.ELLIPSE


def test_clip_regions_outside_frame_is_empty_region() -> None:
    out = clip_regions(np.array([[200.0, 200.0, 300.0, 300.0]]), 100, 100)
    x0, y0, x1, y1 = out[0]
    assert x1 <= x0 or y1 <= y0
    assert len(mask_regions(_dets((200, 200, 300, 300)), 100, 100, Config(margin_x=0, margin_top=0,
                                                                           margin_bottom=0))) == 0


def test_grow_enlarges_regions() -> None:
    base = mask_regions(_dets((100, 100, 200, 200)), 1000, 1000, Config())
    grown = mask_regions(_dets((100, 100, 200, 200)), 1000, 1000, Config(), grow=0.5)
    assert (grown.boxes[0, :2] < base.boxes[0, :2]).all() and (grown.boxes[0, 2:] > base.boxes[0, 2:]).all()
