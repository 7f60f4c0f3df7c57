"""Faces turned on their side and faces that fill the frame (issue 18, part 1).

The box mapping is checked against np.rot90 itself turning an image with a drawn rectangle; the
wrapper against a toy detector that only sees upright ("tall") rectangles; the presets and stages
against what they promise; and the real detector against dev photos turned and cropped at test
time (written only to tmp_path).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from veil._types import Config, Detections, DetectPreset
from veil.detect.base import StaticDetector
from veil.detect.faces import DetectorSettings
from veil.detect.rotate import (MEMORY, Rotated, merge_views, rotate_boxes, rotate_frame, standing_view,
                               unrotate, view_evidence)
from veil.pipeline import still_stages, video_stages
from veil.presets import (ROLL_MIN_SCORE, ROTATED_LARGE_MIN_SCORE, ROTATED_MIN_SCORE, STILL, UPSIDE_DOWN_MIN_SCORES,
                          rotations)


def _drawn_box(image: np.ndarray) -> list[float]:
    """The xyxy extent (exclusive ends) of the non-zero pixels: the oracle for a turned box."""
    ys, xs = np.nonzero(image[..., 0] if image.ndim == 3 else image)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, -1])
def test_rotated_box_lands_where_rot90_moves_the_drawn_rectangle(turns: int) -> None:
    width, height = 80, 50
    image = np.zeros((height, width), np.uint8)
    box = [30.0, 10.0, 45.0, 22.0]
    image[10:22, 30:45] = 255
    turned = rotate_frame(image, turns)
    assert rotate_boxes(np.array([box]), turns, width, height)[0].tolist() == _drawn_box(turned)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_unrotate_brings_boxes_and_landmarks_back_from_the_turned_frame(turns: int) -> None:
    width, height = 120, 70
    image = np.zeros((height, width, 3), np.uint8)
    image[5:40, 60:90] = 255
    turned = rotate_frame(image, turns)
    # A detection of the rectangle made in the turned frame, with a landmark at its first corner.
    tb = _drawn_box(turned)
    landmarks = np.tile(np.array([tb[0], tb[1]], np.float32), 5)[None]
    back = unrotate(Detections(np.array([tb]), np.array([0.9]), landmarks), turns, width, height)
    assert back.boxes[0].tolist() == [60.0, 5.0, 90.0, 40.0]
    # The landmark is still a corner of the box: turning its point moves it with the box.
    x, y = back.landmarks[0, 0], back.landmarks[0, 1]
    assert x in (60.0, 90.0) and y in (5.0, 40.0)
    assert back.scores.tolist() == pytest.approx([0.9])


class TallOnly:
    """A toy detector that, like CenterFace, only sees upright faces: the bright rectangle, if it
    is taller than wide, with a score that says which way round it was seen."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, frame: np.ndarray) -> Detections:
        self.shapes.append(frame.shape)
        if not frame.any():
            return Detections.empty()
        x1, y1, x2, y2 = _drawn_box(frame)
        if y2 - y1 <= x2 - x1:
            return Detections.empty()
        return Detections(np.array([[x1, y1, x2, y2]]), np.array([0.8]))


def test_wrapper_finds_a_sideways_face_and_maps_it_back() -> None:
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[20:40, 10:60] = 200  # wider than tall: a face lying on its side
    toy = TallOnly()
    assert len(toy(frame)) == 0
    found = Rotated(toy)(frame)
    # The 90 and 270 degree views both found it, at the same place: merged to one box.
    assert found.boxes.tolist() == [[10.0, 20.0, 60.0, 40.0]]
    # The upright frame and both turned ones were searched, turned ones with swapped sides.
    assert toy.shapes[1:] == [(60, 100, 3), (100, 60, 3), (100, 60, 3)]


def test_wrapper_keeps_an_upright_face_once_and_the_best_scored_box() -> None:
    upright = Detections(np.array([[10, 10, 30, 40]], np.float32), np.array([0.9], np.float32))
    sideways = Detections(np.array([[11, 12, 31, 41], [70, 5, 90, 20]], np.float32),
                          np.array([0.3, 0.5], np.float32))
    merged = merge_views([upright, sideways])
    assert sorted(merged.scores.tolist()) == pytest.approx([0.5, 0.9])
    assert [10.0, 10.0, 30.0, 40.0] in merged.boxes.tolist()


def test_wrapper_drops_weak_boxes_seen_only_sideways_when_asked() -> None:
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[20:40, 10:60] = 200
    assert len(Rotated(TallOnly(), min_score=0.9)(frame)) == 0
    assert len(Rotated(TallOnly(), min_score=0.5)(frame)) == 1
    with pytest.raises(ValueError):
        Rotated(TallOnly(), turns=(0, 1))


class Scripted:
    """A detector that answers each call with the next of its scripted score lists: Rotated calls
    it on the frame as given, then turned once, then three times. Boxes sit apart on a diagonal."""

    def __init__(self, script: list[list[float]]) -> None:
        self.script = list(script)

    def __call__(self, frame: np.ndarray) -> Detections:
        scores = self.script.pop(0)
        boxes = [[10.0 * i, 10.0 * i, 10.0 * i + 8, 10.0 * i + 8] for i in range(len(scores))]
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))


FRAME = np.zeros((100, 100, 3), np.uint8)  # square: the turned views' boxes stay inside


def test_the_view_where_sure_faces_stand_upright_keeps_its_weak_faces() -> None:
    # Two sure faces and a weak one sideways, nothing upright: the camera was on its side, so the
    # weak face is kept as it would be in an upright frame.
    found = Rotated(Scripted([[], [0.8, 0.7, 0.1], []]), min_score=0.15)(FRAME)
    assert sorted(found.scores.tolist()) == pytest.approx([0.1, 0.7, 0.8])
    # One sure box is not enough to turn the picture: a texture can score that.
    found = Rotated(Scripted([[], [0.8, 0.1], []]), min_score=0.15)(FRAME)
    assert found.scores.tolist() == pytest.approx([0.8])
    # Nor are as many sure faces upright as sideways: the frame as given stays the upright one.
    found = Rotated(Scripted([[0.9, 0.6], [0.8, 0.7, 0.1], []]), min_score=0.15)(FRAME)
    assert min(found.scores.tolist()) > 0.15
    assert len(found) == 4


def test_standing_view_needs_a_margin_and_two_sure_faces() -> None:
    assert standing_view(np.array([0.0, 0.0, 0.0])) == 0
    assert standing_view(np.array([0.0, 0.9, 0.0])) == 0  # under STANDING_LEAST
    assert standing_view(np.array([0.0, 0.0, 1.5])) == 2
    assert standing_view(np.array([1.0, 1.9, 0.0])) == 0  # under twice the frame's own
    assert standing_view(np.array([1.0, 2.0, 0.0])) == 1
    sure = Detections(np.zeros((3, 4), np.float32), np.array([0.9, 0.5, 0.49], np.float32))
    assert view_evidence([sure, Detections.empty()]).tolist() == pytest.approx([1.4, 0.0])


def test_video_remembers_which_way_is_up_but_a_texture_does_not_add_up() -> None:
    # Video (memory): one decisive detector frame, then one where the sideways faces all dip
    # under the sure score; the weak faces are still kept there, for a while.
    rolled = Rotated(Scripted([[], [0.8, 0.7], [], [], [0.3, 0.1], [], [], [0.3, 0.1], []]),
                     min_score=0.15, memory=MEMORY)
    rolled(FRAME)
    assert len(rolled(FRAME)) == 2  # 1.5 x 0.7 = 1.05: still upright sideways
    assert len(rolled(FRAME)) == 1  # 0.74: no longer; the 0.1 box is dropped again
    # A still has no memory: the same second frame keeps only what passes the floor.
    still = Rotated(Scripted([[], [0.3, 0.1], []]), min_score=0.15)
    assert len(still(FRAME)) == 1
    # The same 0.6 texture sideways on every frame never makes that view the upright one.
    texture = Rotated(Scripted([[], [0.6, 0.1], []] * 10), min_score=0.15, memory=MEMORY)
    assert all(len(texture(FRAME)) == 1 for _ in range(10))


class WithEvidence:
    """A detector with veil's `with_evidence`: the same box in every view, at a scripted score per
    call (in the order Rotated calls it: the frame as given, then each turn), and what the upright
    passes saw there (`seen`: scores of boxes over it, none kept)."""

    def __init__(self, scores: list[float], seen: list[float], height: float = 100.0) -> None:
        self.scores = list(scores)
        self.box = [0.0, 0.0, height, height]  # square, so turning it keeps it in place on FRAME
        self.seen = seen

    def __call__(self, frame: np.ndarray) -> Detections:
        score = self.scores.pop(0)
        if score == 0:
            return Detections.empty()
        return Detections(np.array([self.box], np.float32), np.array([score], np.float32))

    def with_evidence(self, frame: np.ndarray) -> tuple[Detections, Detections]:
        found = self(frame)
        seen = Detections(np.array([self.box] * len(self.seen), np.float32).reshape(-1, 4),
                          np.array(self.seen, np.float32))
        return found, seen


def test_a_large_box_seen_only_sideways_needs_a_high_score_or_the_upright_passes_evidence() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)

    def kept(score: float, seen: list[float], height: float = 100.0, large: float = 0.4) -> int:
        detector = WithEvidence([0.0, score, 0.0], seen, height)
        return len(Rotated(detector, min_score=0.25, large_min_score=large)(frame))

    assert kept(0.3, []) == 0  # a large sideways-only box at 0.3, nothing upright: a texture
    assert kept(0.3, [0.1]) == 0  # the upright passes saw it, but under UPRIGHT_EVIDENCE
    assert kept(0.3, [0.25]) == 1  # a face tilted part-way: both views see it
    assert kept(0.45, []) == 1  # sure enough on its own
    assert kept(0.3, [], height=50.0) == 1  # under LARGE_HEIGHT: the floor alone decides
    assert kept(0.3, [], large=0.0) == 1  # the rule off (video)
    assert kept(0.2, [0.9]) == 0  # under the sideways floor, whatever the upright passes saw
    # A detector without with_evidence: its upright faces are the evidence (here none).
    plain = WithEvidence([0.0, 0.3, 0.0], [])
    assert len(Rotated(lambda f: plain(f), min_score=0.25, large_min_score=0.4)(frame)) == 0  # type: ignore[arg-type]


def test_the_upside_down_view_has_floors_of_its_own() -> None:
    """Turns 1, 2, 3 (the order Rotated calls them after the frame as given); a box in one view
    only. Sideways: the 0.25 floor. Upside down: 0.4, and 0.5 for a large box without the upright
    passes' evidence."""
    frame = np.zeros((100, 100, 3), np.uint8)

    def kept(view: int, score: float, height: float = 30.0, seen: list[float] | None = None) -> int:
        scores = [0.0, 0.0, 0.0, 0.0]
        scores[view] = score
        detector = WithEvidence(scores, seen or [], height)
        return len(Rotated(detector, (1, 2, 3), min_score=0.25, large_min_score=0.4,
                           upside_down=(0.4, 0.5))(frame))

    assert kept(1, 0.3) == 1 and kept(3, 0.3) == 1  # sideways: over 0.25
    assert kept(2, 0.3) == 0  # upside down: under 0.4
    assert kept(2, 0.45) == 1
    assert kept(2, 0.45, height=100.0) == 0  # a large box needs 0.5 ...
    assert kept(2, 0.45, height=100.0, seen=[0.3]) == 1  # ... or the upright passes' evidence
    assert kept(2, 0.55, height=100.0) == 1
    assert kept(1, 0.5, height=100.0) == 1  # sideways, a large box needs 0.4
    # Without floors of its own, the upside-down view has the sideways ones.
    detector = WithEvidence([0.0, 0.0, 0.3, 0.0], [], 30.0)
    assert len(Rotated(detector, (1, 2, 3), min_score=0.25)(frame)) == 1


def test_thorough_searches_stills_sideways_and_video_only_when_the_camera_rolls() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    assert isinstance(still_stages(Config(detect=DetectPreset.THOROUGH), pixels).detector, Rotated)
    # Stills: thorough also upside down; --roll adds the sideways views to any preset's.
    assert rotations(Config(detect=DetectPreset.THOROUGH)) == (1, 3, 2)
    assert rotations(Config(detect=DetectPreset.THOROUGH, roll=True)) == (1, 2, 3)
    assert rotations(Config(detect=DetectPreset.BALANCED, roll=True)) == (1, 3)
    assert not isinstance(still_stages(Config(detect=DetectPreset.FAST), pixels).detector, Rotated)
    assert rotations(Config(detect=DetectPreset.THOROUGH), video=True) == ()
    assert isinstance(video_stages(Config(roll=True), 30.0).detector, Rotated)
    assert not isinstance(video_stages(Config(), 30.0).detector, Rotated)
    # A caller's own detector is used as given, never turned.
    mine = StaticDetector([(1, 1, 9, 9)])
    assert still_stages(Config(detect=DetectPreset.THOROUGH), pixels, mine).detector is mine


def test_stills_and_rolling_video_have_their_own_floor_for_sideways_boxes() -> None:
    """Stills keep sideways-only boxes from ROTATED_MIN_SCORE; video, where the upright view is
    found over a few detector frames, from the lower ROLL_MIN_SCORE (benchmarks/roll_clips.py)."""
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)
    still = still_stages(Config(detect=DetectPreset.THOROUGH), pixels).detector
    video = video_stages(Config(roll=True), 30.0).detector
    assert isinstance(still, Rotated) and isinstance(video, Rotated)
    assert still.min_score == ROTATED_MIN_SCORE and still.memory == 0.0
    assert video.min_score == ROLL_MIN_SCORE and video.memory == MEMORY
    # Large sideways-only boxes need more in stills only: a rolling camera's faces lie at every
    # angle for a while, and the view they stand upright in is found over several frames.
    assert still.large_min_score == ROTATED_LARGE_MIN_SCORE > ROTATED_MIN_SCORE
    assert video.large_min_score == 0.0
    assert still.upside_down == UPSIDE_DOWN_MIN_SCORES and video.upside_down is None
    assert ROLL_MIN_SCORE < ROTATED_MIN_SCORE


def test_every_still_preset_has_a_coarse_pass_for_frame_filling_faces() -> None:
    from veil.detect.faces import FaceDetector

    for preset, settings in STILL.items():
        assert settings.coarse_sides and min(settings.coarse_sides) > 0, preset
    detector = object.__new__(FaceDetector)  # passes() needs only the settings, not a session
    detector.settings = DetectorSettings(coarse_sides=(288, 160), large_face_side=640, scales=(1.5,))
    assert detector.passes(1280, 720) == pytest.approx([160 / 1280, 288 / 1280, 640 / 1280, 1.5])
    assert detector._coarse_scales(1280, 720) == pytest.approx([160 / 1280, 288 / 1280])
    # A frame already small enough gets no extra pass.
    assert detector.passes(192, 144) == pytest.approx([1.5])


def _face_coverage(pixels: np.ndarray, face_xyxy: np.ndarray, config: Config) -> float:
    """The share of the face's box that veil's masks hide (veil.evaluate's measure)."""
    from veil.evaluate import boxes_coverage, covered_fractions
    from veil.pipeline import scan_image

    _, plan = scan_image(pixels, config)
    coverage = boxes_coverage(plan.boxes.astype(np.float64), pixels.shape[1], pixels.shape[0])
    return float(covered_fractions(face_xyxy.reshape(1, 4).astype(np.float64), coverage)[0])


def _reread(pixels: np.ndarray, tmp_path, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Written as JPEG to tmp_path and read back, as a user's file would be (never kept)."""
    import cv2

    from veil.media.image import read_image

    path = tmp_path / name
    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return read_image(path).pixels


def test_a_face_filling_a_720p_frame_is_masked_by_default(wider_dir, wider_gt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A dev portrait cropped so that the face fills 90 % of a 4:3 frame, resized to 720 px high:
    a person right in front of a body-worn camera. Without the coarse pass balanced left it
    wholly unmasked (covered 0.0)."""
    import cv2

    from veil.media.image import read_image

    truth = next(t for t in wider_gt if t.image.endswith("19_Couple_Couple_19_509.jpg"))
    pixels = read_image(wider_dir / truth.image).pixels
    x1, y1, x2, y2 = truth.boxes_xyxy[0]
    side = min(int((y2 - y1) / 0.9), pixels.shape[0])
    width = min(int(side * 4 / 3), pixels.shape[1])
    top = int(max(0, min((y1 + y2 - side) / 2, pixels.shape[0] - side)))
    left = int(max(0, min((x1 + x2 - width) / 2, pixels.shape[1] - width)))
    scale = 720 / side
    crop = cv2.resize(pixels[top:top + side, left:left + width], (round(width * scale), 720),
                      interpolation=cv2.INTER_CUBIC)
    face = (np.array([x1, y1, x2, y2]) - [left, top, left, top]) * scale
    assert face[3] - face[1] >= 0.85 * 720  # the face does fill the frame
    frame = _reread(crop, tmp_path, "closeup.jpg")
    assert _face_coverage(frame, face, Config()) >= 0.8



@pytest.mark.parametrize("turns", [1, 2])
def test_a_dev_photo_turned_on_its_side_or_upside_down_has_its_face_masked_by_thorough(  # type: ignore[no-untyped-def]
        wider_dir, wider_gt, tmp_path, turns: int) -> None:
    """A dev photo (at 512 px, to keep the test quick) turned 90 or 180 degrees: thorough without
    the sideways passes covered 0.2 of the largest face's box turned 90 degrees, without the
    upside-down view 0.26 of it turned 180 degrees; with them all of it."""
    import cv2

    from veil.media.image import read_image

    truth = next(t for t in wider_gt if t.image.endswith("23_Shoppers_Shoppers_23_880.jpg"))
    pixels = read_image(wider_dir / truth.image).pixels
    scale = 512 / max(pixels.shape[:2])
    small = cv2.resize(pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    heights = truth.boxes[:, 3]
    face = truth.boxes_xyxy[int(heights.argmax())] * scale
    turned = _reread(rotate_frame(small, turns), tmp_path, "turned.jpg")
    face = rotate_boxes(face[None], turns, small.shape[1], small.shape[0])[0]
    assert _face_coverage(turned, face, Config(detect=DetectPreset.THOROUGH)) >= 0.8


_CROWD_FACE = np.array([848, 203, 875, 239])  # a 27x36 px face in the election crowd photo


def _crowd_closeup(wider_dir, wider_gt, tmp_path, window: tuple[int, int, int, int]  # type: ignore[no-untyped-def]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One of hard_sets.py's close-ups of the election crowd photo, built in memory: the window
    (left, top, right, bottom) up-scaled to 720 px high and re-read as JPEG; and the crowd face's
    box there, clipped to the frame."""
    import cv2

    from veil.media.image import read_image

    truth = next(t for t in wider_gt if t.image.endswith("8_Election_Campain_Election_Campaign_8_498.jpg"))
    pixels = read_image(wider_dir / truth.image).pixels
    left, top, right, bottom = window
    scale = 720 / (bottom - top)
    crop = cv2.resize(pixels[top:bottom, left:right], (round((right - left) * scale), 720),
                      interpolation=cv2.INTER_CUBIC)
    face = np.clip((_CROWD_FACE - [left, top, left, top]) * scale, 0, [crop.shape[1], 720] * 2)
    return _reread(crop, tmp_path, "crowd-closeup.jpg"), face


def test_a_blurred_face_in_an_upscaled_crowd_crop_is_masked_by_support_across_passes(
        wider_dir, wider_gt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A crop of a crowd photo (one of hard_sets.py's close-ups) up-scaled 1.9x to 720 px high:
    a 27x36 px face there becomes 51x68 px and blurred. balanced scores it 0.04-0.1 in each of
    its four passes, under the >= 64 px tier's 0.2, so without support across passes it was left
    wholly unmasked; together the passes keep it."""
    from veil import presets

    frame, face = _crowd_closeup(wider_dir, wider_gt, tmp_path, (492, 0, 1003, 384))
    assert _face_coverage(frame, face, Config()) >= 0.8
    balanced = presets.STILL[DetectPreset.BALANCED]
    monkeypatch.setitem(presets.STILL, DetectPreset.BALANCED, replace(balanced, support_passes=0))
    assert _face_coverage(frame, face, Config()) < 0.8


def test_a_face_cut_off_by_the_bottom_edge_is_masked_by_support_at_the_edge(
        wider_dir, wider_gt, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same crowd face in another of hard_sets.py's close-ups: up-scaled 3.6x and cut off by
    the bottom edge. No pass scores it over 0.1 and each frames the visible part differently
    (IoU 0.4-0.7 with it), so support across passes does not hold it; support at the edge does."""
    from veil import presets

    frame, face = _crowd_closeup(wider_dir, wider_gt, tmp_path, (731, 28, 883, 230))
    assert face[3] == 720 and face[3] - face[1] < 100  # 96 of its 128 px are in the frame
    assert _face_coverage(frame, face, Config()) >= 0.8
    balanced = presets.STILL[DetectPreset.BALANCED]
    monkeypatch.setitem(presets.STILL, DetectPreset.BALANCED, replace(balanced, edge_support_passes=0))
    assert _face_coverage(frame, face, Config()) < 0.8


@pytest.mark.parametrize("coarse_score, kept", [(0.25, 1), (0.35, 2)])
def test_coarse_pass_boxes_need_their_own_floor(coarse_score: float, kept: int) -> None:
    """A big box from the coarse pass needs coarse_min_score; other passes' boxes only their tier's."""
    from veil.detect.faces import FaceDetector

    detector = object.__new__(FaceDetector)
    detector.settings = DetectorSettings(thresholds=(0.1,) * 4, large_face_side=0, coarse_sides=(288,),
                                         coarse_min_score=0.3)
    coarse = 288 / 1280

    def one_box_per_pass(frame: np.ndarray, scale: float) -> Detections:
        if abs(scale - coarse) < 1e-9:
            return Detections(np.array([[0, 0, 600, 700]], np.float32), np.array([coarse_score], np.float32))
        return Detections(np.array([[900, 100, 940, 150]], np.float32), np.array([0.2], np.float32))

    detector._detect_pass = one_box_per_pass  # type: ignore[method-assign]
    found = detector(np.zeros((720, 1280, 3), np.uint8))
    assert len(found) == kept
    assert [900.0, 100.0, 940.0, 150.0] in found.boxes.tolist()
