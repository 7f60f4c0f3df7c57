"""The detector's own rules: size-tiered thresholds, flip fusion, pass planning, presets on a real photo."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from veil._types import Config, DetectPreset, Detections
from veil.detect.faces import DetectorSettings, FaceDetector, fuse_views, pass_support, touches_edge
from veil.geometry import iou_matrix
from veil.presets import preset_settings, video_settings
from veil.media.image import read_image
from veil.pipeline import scan_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _dets(boxes: list[tuple[float, float, float, float]], scores: list[float]) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32))


def test_thresholds_depend_on_face_height() -> None:
    settings = DetectorSettings(thresholds=(0.05, 0.1, 0.2, 0.4))
    heights = [10, 20, 40, 80]
    found = _dets([(0, 0, 10, h) for h in heights], [0.06] * 4)
    assert settings.keep(found).tolist() == [True, False, False, False]
    found = _dets([(0, 0, 10, h) for h in heights], [0.39] * 4)
    assert settings.keep(found).tolist() == [True, True, True, False]
    # The tier edges are the harness's size buckets: 16 px belongs to 16-32.
    assert settings.keep(_dets([(0, 0, 10, 16)], [0.07])).tolist() == [False]
    assert settings.threshold == 0.05


def test_a_given_threshold_replaces_every_tier() -> None:
    settings = preset_settings(DetectPreset.BALANCED, 0.3)
    assert settings.thresholds == (0.3, 0.3, 0.3, 0.3)
    assert preset_settings("balanced").thresholds != settings.thresholds
    with pytest.raises(ValueError):
        DetectorSettings(thresholds=(0.1, 0.2))  # type: ignore[arg-type]


def test_flip_fusion_averages_the_views() -> None:
    face = (10, 10, 50, 50)
    plain = _dets([face, (100, 100, 120, 120)], [0.8, 0.3])
    mirrored = _dets([(11, 10, 51, 50)], [0.6])
    fused = fuse_views([plain, mirrored])
    assert len(fused) == 3
    # The face seen in both views keeps the mean of its two scores; the blip seen once is halved.
    assert fused.scores.tolist() == pytest.approx([0.7, 0.15, 0.7])
    assert len(fuse_views([Detections.empty(), Detections.empty()])) == 0


def test_passes_per_preset() -> None:
    def passes(preset: str, width: int, height: int) -> list[float]:
        detector = FaceDetector.__new__(FaceDetector)
        detector.settings = preset_settings(preset)
        return detector.passes(width, height)

    # presets.CLOSEUP_SIDE and COARSE_SIDE: for faces that fill the frame
    coarse = [pytest.approx(160 / 1024), pytest.approx(288 / 1024)]
    assert passes("fast", 1024, 768) == [coarse[1], pytest.approx(0.625)]
    assert passes("balanced", 1024, 768) == [*coarse, pytest.approx(0.625), 1.5]
    assert passes("thorough", 1024, 768) == [coarse[1], pytest.approx(0.625), 1.0, 1.5]
    # Small frames need no 640 px pass; only the coarse ones; tiny ones not even those.
    assert passes("balanced", 640, 480) == [pytest.approx(160 / 640), pytest.approx(288 / 640), 1.5]
    assert passes("balanced", 320, 240) == [pytest.approx(0.5), 1.5]
    assert passes("balanced", 192, 144) == [1.5]


@pytest.mark.parametrize("preset", list(DetectPreset))
def test_every_preset_masks_the_example_face(preset: DetectPreset) -> None:
    pixels = read_image(EXAMPLE).pixels
    detections, plan = scan_image(pixels, Config(detect=preset))
    assert len(detections) >= 1
    best = detections[int(np.argmax(detections.scores))]
    assert float(best.scores[0]) > 0.5
    # The mask extends past the detected face on every side (hair, ears, chin).
    x0, y0, x1, y1 = best.boxes[0]
    mx0, my0, mx1, my1 = plan.boxes[int(np.argmax(detections.scores))]
    assert mx0 < x0 and my0 < y0 and mx1 > x1 and my1 > y1


def test_boxes_wholly_in_the_padding_are_dropped() -> None:
    """A 100x60 image runs padded to 128x64; a peak past x=100 is no face in the picture."""
    from veil.detect.faces import _decode

    heatmap = np.zeros((1, 1, 16, 32), np.float32)
    scale = np.full((1, 2, 16, 32), np.log(2.0), np.float32)  # 8x8 px boxes
    offset = np.zeros((1, 2, 16, 32), np.float32)
    lms = np.zeros((1, 10, 16, 32), np.float32)
    heatmap[0, 0, 5, 10] = 0.9  # centre (42, 22): inside
    heatmap[0, 0, 5, 28] = 0.9  # centre (114, 22): all of it right of x=100
    heatmap[0, 0, 5, 24] = 0.9  # centre (98, 22): straddles the edge, kept clipped
    found = _decode(heatmap, scale, offset, lms, 100, 60, 0.5)
    assert sorted(found.boxes[:, 0].tolist()) == [38.0, 94.0]
    assert np.all(found.boxes[:, 2] > found.boxes[:, 0]) and found.boxes[:, 2].max() == 100.0


def test_a_box_at_the_edge_is_kept_at_a_lower_threshold() -> None:
    settings = DetectorSettings(thresholds=(0.1, 0.1, 0.1, 0.2), edge_scale=0.5)
    # 40 px tall: tier 32-64 (0.1). Touching the bottom of a 320x240 image, and well inside it.
    found = _dets([(100, 200, 140, 240), (100, 100, 140, 140)], [0.06, 0.06])
    assert settings.keep(found, 320, 240).tolist() == [True, False]
    assert settings.keep(_dets([(0, 50, 40, 90)], [0.049]), 320, 240).tolist() == [False]
    # Without the image's size (or at edge_scale 1) every box needs its tier's threshold.
    assert settings.keep(found).tolist() == [False, False]
    assert DetectorSettings(thresholds=(0.1, 0.1, 0.1, 0.2)).keep(found, 320, 240).tolist() == [False, False]
    with pytest.raises(ValueError):
        DetectorSettings(edge_scale=0.0)


def test_cells_under_the_threshold_give_boxes_only_at_the_edge() -> None:
    from veil.detect.faces import _decode

    heatmap = np.zeros((1, 1, 16, 32), np.float32)
    scale = np.full((1, 2, 16, 32), np.log(4.0), np.float32)  # 16x16 px boxes
    offset = np.zeros((1, 2, 16, 32), np.float32)
    lms = np.zeros((1, 10, 16, 32), np.float32)
    heatmap[0, 0, 14, 10] = 0.3  # centre (42, 58): its box is cut off by the bottom (y=64)
    heatmap[0, 0, 5, 10] = 0.3  # centre (42, 22): inside
    heatmap[0, 0, 5, 20] = 0.9  # centre (82, 22): over the threshold anyway
    found = _decode(heatmap, scale, offset, lms, 128, 64, 0.5, 0.25)
    assert sorted(found.boxes[:, 1].tolist()) == [14.0, 50.0]
    assert found.boxes[:, 3].max() == 64.0
    assert len(_decode(heatmap, scale, offset, lms, 128, 64, 0.5)) == 1


def test_balanced_video_keeps_edge_boxes_lower_unless_a_threshold_is_given() -> None:

    assert video_settings(Config()).detector.edge_scale == 0.5
    assert video_settings(Config(threshold=0.3)).detector.edge_scale == 1.0
    assert preset_settings(DetectPreset.BALANCED).edge_scale == 1.0  # stills as calibrated


def test_the_edge_rule_only_adds_boxes_for_faces_cut_off_by_the_frame() -> None:
    # The example face (y 58-178) cut off by the bottom edge: only its top 50 px remain.
    pixels = np.ascontiguousarray(read_image(EXAMPLE).pixels[:110])
    plain = FaceDetector(DetectorSettings(thresholds=(0.3, 0.3, 0.3, 0.3), large_face_side=0))
    edge = FaceDetector(DetectorSettings(thresholds=(0.3, 0.3, 0.3, 0.3), large_face_side=0,
                                         edge_scale=0.1))
    before, after = plain(pixels), edge(pixels)
    # Every box found without the rule is found with it, first and unchanged.
    assert np.array_equal(after.boxes[:len(before)], before.boxes)
    added = after[len(before):]
    assert len(added) >= 1 and np.all(added.scores < 0.3)
    assert np.all(touches_edge(added.boxes, 512, 110))
    over_face = (added.boxes[:, 0] < 260) & (added.boxes[:, 2] > 190) & (added.boxes[:, 3] >= 109)
    assert over_face.any()


def test_pass_support_counts_the_passes_over_a_box_and_combines_their_best_scores() -> None:
    box = np.array([[100, 100, 200, 200]], np.float32)
    passes = [
        _dets([(102, 98, 198, 204), (104, 100, 200, 200)], [0.1, 0.2]),  # its best here: 0.2
        _dets([(100, 110, 200, 210)], [0.1]),  # IoU 0.82: counts
        _dets([(150, 150, 250, 250)], [0.9]),  # IoU 0.14: another box, not evidence
        Detections.empty(),
    ]
    count, support = pass_support(box, passes)
    assert count.tolist() == [2]
    assert support.tolist() == pytest.approx([1 - 0.8 * 0.9])
    count, support = pass_support(np.zeros((0, 4), np.float32), passes)
    assert len(count) == len(support) == 0


def _scripted(settings: DetectorSettings, per_pass: dict[int, Detections]) -> FaceDetector:
    """A FaceDetector whose passes return hand-built boxes, by the pass's rank (smallest scale first)."""
    detector = object.__new__(FaceDetector)
    detector.settings = settings

    def scripted(frame: np.ndarray, scale: float) -> Detections:
        rank = detector.passes(frame.shape[1], frame.shape[0]).index(scale)
        found = per_pass.get(rank, Detections.empty())
        return found[found.scores >= settings.decode_floor]

    detector._detect_pass = scripted  # type: ignore[method-assign]
    return detector


def test_a_large_box_under_its_threshold_is_kept_when_enough_passes_see_it() -> None:
    """Four passes of a 1280x720 frame: 160 and 288 px (coarse), 640 px, 1.5x. A 120 px box scored
    0.1 (under the >= 64 px tier's 0.2) is kept only when two other passes (coarse ones count,
    whatever their own floor) see it too; a box under 64 px is never a candidate; a box the
    thresholds keep comes first and unchanged."""
    settings = DetectorSettings(thresholds=(0.06, 0.08, 0.1, 0.2), scales=(1.5,), coarse_sides=(288, 160),
                                coarse_min_score=0.3, support_passes=3)
    face, sure = (500, 300, 600, 420), (50, 50, 150, 170)
    small = (900, 100, 940, 150)  # 50 px: its tier's threshold is 0.1

    def run(witnesses: int, score: float = 0.1) -> Detections:
        per_pass = {2: _dets([face, sure, small], [score, 0.9, 0.05]),
                    **{k: _dets([face, small], [0.08, 0.05]) for k in (0, 1, 3)[:witnesses]}}
        return _scripted(settings, per_pass)(np.zeros((720, 1280, 3), np.uint8))

    assert run(1).boxes.tolist() == [list(map(float, sure))]  # two passes: not enough
    found = run(2)  # three passes, 1 - 0.9 * 0.92 * 0.92 = 0.24 >= 0.2
    assert found.boxes.tolist() == [list(map(float, sure)), list(map(float, face))]
    assert found.scores.tolist() == pytest.approx([0.9, 0.1])  # its own score, not the support
    assert run(2, score=0.02).boxes.tolist() == [list(map(float, sure))]  # 1 - .98 * .92^2 = 0.17
    off = replace(settings, support_passes=0)
    assert _scripted(off, {2: _dets([face, sure], [0.1, 0.9]), 0: _dets([face], [0.08]),
                           1: _dets([face], [0.08])})(np.zeros((720, 1280, 3), np.uint8)).boxes.tolist() == [
        list(map(float, sure))]
    # The weak boxes are decoded only where support needs them.
    assert settings.decode_floor == settings.support_floor < off.decode_floor == 0.06


def test_a_face_cut_off_by_the_edge_is_kept_when_two_passes_hold_it() -> None:
    """Same four passes. A 60 px box at the top edge scored 0.07 (under the 32-64 px tier's 0.1) by
    the 640 px pass is kept when another pass holds a box over it at IoU 0.4-0.5 (looser than
    support's 0.5: each pass frames a cut face differently) and the two together reach 0.1; not
    away from the edge, not under 48 px, not with a witness at IoU under 0.4, not with the rule off.
    A coarse box between its tier's threshold and the coarse floor is a candidate too."""
    settings = DetectorSettings(thresholds=(0.06, 0.08, 0.1, 0.2), scales=(1.5,), coarse_sides=(288, 160),
                                coarse_min_score=0.3, support_passes=3, edge_support_passes=2)
    frame = np.zeros((720, 1280, 3), np.uint8)
    cut, witness = (500, 0, 560, 60), (515, 0, 580, 70)
    assert 0.4 <= iou_matrix(np.array([cut], np.float32), np.array([witness], np.float32))[0, 0] < 0.5

    def run(box: tuple[float, float, float, float], other: tuple[float, float, float, float],
            s: DetectorSettings = settings) -> list[list[float]]:
        shift = np.array([0, box[1], 0, box[1]]) if box[1] else 0  # the witness moves with the box
        other = tuple(np.asarray(other, float) + shift)  # type: ignore[assignment]
        return _scripted(s, {2: _dets([box], [0.07]), 1: _dets([other], [0.05])})(frame).boxes.tolist()

    assert run(cut, witness) == [list(map(float, cut))]  # 1 - 0.93 * 0.95 = 0.117 >= 0.1
    assert run((500, 20, 560, 80), witness) == []  # the same pair away from the edge
    assert run((500, 0, 560, 40), (515, 0, 580, 46)) == []  # 40 px: under edge_support_min_height
    assert run(cut, (540, 0, 600, 70)) == []  # IoU 0.22: another box
    assert run(cut, witness, replace(settings, edge_support_passes=0)) == []
    # A coarse pass's edge box at 0.2: over its tier's 0.1, under the coarse floor, and held by the
    # 1.5x pass's weak box.
    coarse_box = (100, 620, 200, 720)
    found = _scripted(settings, {0: _dets([coarse_box], [0.2]), 3: _dets([(95, 630, 195, 720)], [0.03])})(frame)
    assert found.boxes.tolist() == [list(map(float, coarse_box))]
    assert _scripted(settings, {0: _dets([coarse_box], [0.2])})(frame).boxes.tolist() == []


def test_at_seam_marks_boxes_at_a_tiles_inner_edges_only() -> None:
    from veil.detect.faces import _at_seam

    boxes = np.array([[0, 10, 50, 60], [10, 10, 60, 60], [10, 1490, 60, 1536], [1500, 10, 1536, 60]],
                     np.float32)
    # The first of two tiles across a 2000 x 1000 image: its right edge is a seam, its left,
    # top and bottom edges are the image's.
    assert _at_seam(boxes, 0, 0, 1536, 1000, 2000, 1000).tolist() == [False, False, False, True]
    # The second (x0 = 464): its left edge is the seam.
    assert _at_seam(boxes, 464, 0, 1536, 1000, 2000, 1000).tolist() == [True, False, False, False]
    # A tile in the middle of a tall image: seams above and below.
    assert _at_seam(boxes, 0, 500, 1536, 1536, 1536, 3000).tolist() == [False, False, True, False]


def test_a_tiled_pass_drops_what_a_tile_sees_cut_at_its_seam() -> None:
    """A 100 x 2000 frame is cut into two tiles (y 0 and 464). Each tile "sees" a box reaching its
    bottom edge: in the first that edge is the seam with the second tile (dropped with seam_drop),
    in the second it is the frame's own edge (kept)."""
    settings = DetectorSettings(thresholds=(0.1,) * 4, large_face_side=0)
    assert settings.seam_drop  # the default

    def run(on: bool) -> list[list[float]]:
        detector = object.__new__(FaceDetector)
        detector.settings = replace(settings, seam_drop=on)
        detector._run = lambda crop: _dets([(10, crop.shape[0] - 60, 70, crop.shape[0])], [0.9])  # type: ignore[method-assign]
        return detector._detect_scaled(np.zeros((2000, 100, 3), np.uint8), 1.0).boxes.tolist()

    assert run(True) == [[10.0, 1940.0, 70.0, 2000.0]]
    assert sorted(run(False)) == [[10.0, 1476.0, 70.0, 1536.0], [10.0, 1940.0, 70.0, 2000.0]]


def test_the_upscaled_pass_drops_boxes_from_its_height_cap() -> None:
    """thorough's passes on a 1280x720 frame: 288 px (coarse), 640 px, full and 1.5x scale. A 300 px
    box from the 1.5x pass is dropped with the 256 px cap, kept without it; the same box from the
    full-scale pass, and a 200 px box from the 1.5x pass, are kept. What the passes saw
    (`with_evidence`) leaves the capped box out too."""
    settings = replace(preset_settings(DetectPreset.THOROUGH), large_face_side=640)
    assert settings.upscaled_max_height == 256.0
    frame = np.zeros((720, 1280, 3), np.uint8)
    big, mid = (100, 100, 340, 400), (700, 100, 860, 300)
    scales = FaceDetector.passes(_scripted(settings, {}), 1280, 720)
    assert scales[-1] == 1.5 and scales[-2] == 1.0
    upscaled = len(scales) - 1
    found, seen = _scripted(settings, {upscaled: _dets([big, mid], [0.9, 0.9])}).with_evidence(frame)
    assert found.boxes.tolist() == [list(map(float, mid))]
    assert seen.boxes.tolist() == [list(map(float, mid))]
    off = replace(settings, upscaled_max_height=0.0)
    assert len(_scripted(off, {upscaled: _dets([big, mid], [0.9, 0.9])})(frame)) == 2
    assert len(_scripted(settings, {upscaled - 1: _dets([big], [0.9])})(frame)) == 1
    assert preset_settings(DetectPreset.BALANCED).upscaled_max_height == 0.0
    with pytest.raises(ValueError, match="upscaled_max_height"):
        DetectorSettings(upscaled_max_height=-1.0)


def test_support_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="support_passes"):
        DetectorSettings(support_passes=-1)
    with pytest.raises(ValueError, match="support_floor"):
        DetectorSettings(support_passes=3, support_floor=0.0)
    with pytest.raises(ValueError, match="edge_support"):
        DetectorSettings(edge_support_passes=-1)
    with pytest.raises(ValueError, match="edge_support"):
        DetectorSettings(edge_support_passes=2, edge_support_iou=0.0)


def test_support_is_a_still_rule_of_fast_and_balanced() -> None:
    assert preset_settings(DetectPreset.BALANCED).support_passes == 3  # of its four passes
    assert preset_settings(DetectPreset.FAST).support_passes == 2  # both of its passes
    assert preset_settings(DetectPreset.THOROUGH).support_passes == 0
    assert preset_settings(DetectPreset.BALANCED).edge_support_passes == 2
    assert preset_settings(DetectPreset.FAST).edge_support_passes == 2
    assert preset_settings(DetectPreset.THOROUGH).edge_support_passes == 0
    # Video's two passes cannot reach three, so the weak boxes are not even decoded.
    for preset in DetectPreset:
        assert video_settings(Config(detect=preset)).detector.support_passes == 0
        assert video_settings(Config(detect=preset)).detector.edge_support_passes == 0
