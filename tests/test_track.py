"""The tracker only ever adds boxes: interpolation across gaps, padding at both ends, growth."""

from __future__ import annotations

import numpy as np
import pytest

from veil._types import Detections, RegionSource
from veil.track import TrackedFrame, Tracker, TrackerSettings


def _dets(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32))


def _run(frames: list[Detections | None], settings: TrackerSettings) -> list[TrackedFrame]:
    tracker = Tracker(settings)
    out: list[TrackedFrame] = []
    for i, dets in enumerate(frames):
        out.extend(tracker.push(i, dets))
    out.extend(tracker.flush())
    assert [f.index for f in out] == list(range(len(frames)))
    return out


def _tracked(frame: TrackedFrame) -> np.ndarray:
    return frame.detections.boxes[frame.detections.sources == int(RegionSource.TRACKED)]


def test_detections_pass_through_unchanged_and_first() -> None:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(10, 80, (n, 2))
        frames.append(Detections(np.hstack([xy, xy + wh]).astype(np.float32), rng.uniform(0.2, 1, n)))
    out = _run(frames, TrackerSettings(gap_frames=5, pad_frames=2))
    for given, got in zip(frames, out):
        n = len(given)
        np.testing.assert_array_equal(got.detections.boxes[:n], given.boxes)
        np.testing.assert_array_equal(got.detections.scores[:n], given.scores)
        assert np.all(got.detections.sources[:n] == int(RegionSource.DETECTED))
        assert np.all(got.grow[:n] == 0)
        assert np.all(got.detections.track_ids >= 0)


def test_gap_is_interpolated_with_growth() -> None:
    a, b = (100, 100, 140, 150), (140, 100, 180, 150)
    frames: list[Detections | None] = [_dets(a), None, None, None, _dets(b)]
    out = _run(frames, TrackerSettings(gap_frames=3, pad_frames=0))
    for i in (1, 2, 3):
        boxes = _tracked(out[i])
        assert len(boxes) == 1
        np.testing.assert_allclose(boxes[0], [100 + 10 * i, 100, 140 + 10 * i, 150])
        assert out[i].grow[0] > 0
    # The same track id throughout.
    ids = {int(f.detections.track_ids[0]) for f in out}
    assert len(ids) == 1
    assert out[2].grow[0] >= out[1].grow[0]


def test_gap_longer_than_allowed_is_not_bridged() -> None:
    a = (100, 100, 140, 150)
    frames: list[Detections | None] = [_dets(a)] + [None] * 6 + [_dets(a)]
    out = _run(frames, TrackerSettings(gap_frames=5, pad_frames=1))
    covered = [len(_tracked(f)) for f in out]
    assert covered == [0, 1, 0, 0, 0, 0, 1, 0]


def test_padding_before_first_and_after_last_detection_follows_velocity() -> None:
    frames: list[Detections | None] = [_dets(), _dets(), _dets(), _dets((200, 100, 240, 150)),
                                       _dets((210, 100, 250, 150)), _dets(), _dets(), _dets()]
    out = _run(frames, TrackerSettings(gap_frames=0, pad_frames=2, hold_frames=0))
    assert len(_tracked(out[0])) == 0
    np.testing.assert_allclose(_tracked(out[1])[0], [180, 100, 220, 150])  # two frames back at 10 px/frame
    np.testing.assert_allclose(_tracked(out[2])[0], [190, 100, 230, 150])
    np.testing.assert_allclose(_tracked(out[5])[0], [220, 100, 260, 150])
    np.testing.assert_allclose(_tracked(out[6])[0], [230, 100, 270, 150])
    assert len(_tracked(out[7])) == 0
    assert out[6].grow[-1] > out[5].grow[-1] > 0


def test_two_faces_keep_their_own_tracks() -> None:
    frames = [_dets((10 + 5 * i, 10, 50 + 5 * i, 60), (300 - 5 * i, 10, 340 - 5 * i, 60)) for i in range(10)]
    out = _run(frames, TrackerSettings(gap_frames=2, pad_frames=1))
    first = out[0].detections.track_ids[:2].tolist()
    assert first[0] != first[1]
    for f in out:
        assert f.detections.track_ids[:2].tolist() == first
        assert f.tracked_rows == 0


def test_release_waits_for_the_lookahead() -> None:
    settings = TrackerSettings(gap_frames=4, pad_frames=2)
    tracker = Tracker(settings)
    released = []
    for i in range(settings.lookahead):
        released += tracker.push(i, _dets())
    assert released == []
    assert [f.index for f in tracker.push(settings.lookahead, _dets())] == [0]


def test_frames_must_come_in_order() -> None:
    tracker = Tracker()
    tracker.push(0, None)
    with pytest.raises(ValueError):
        tracker.push(2, None)


def test_a_face_leaving_the_picture_stays_masked_up_to_the_gap() -> None:
    # Detected at the left edge, clipped and shrinking, then no more: carried for gap_frames.
    frames: list[Detections | None] = [_dets((0, 100, 40, 150)), _dets((0, 100, 36, 150))] + [_dets()] * 8
    edge = TrackerSettings(gap_frames=5, pad_frames=1, hold_frames=5, frame_size=(640, 360))
    out = _run(frames, edge)
    assert [len(_tracked(f)) for f in out] == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    widths = [float(b[0][2] - b[0][0]) for b in (_tracked(out[i]) for i in range(3, 7))]
    assert min(widths) >= 36  # carried at its last size, not shrunk further
    inside = TrackerSettings(gap_frames=5, pad_frames=1, hold_after_hits=0)  # no frame size: pad only
    assert [len(_tracked(f)) for f in _run(frames, inside)] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("hits", "expected"), [
    (1, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),  # one detection: a stray box gets the pad only
    (2, [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]),  # seen twice: a face, held for the whole gap
])
def test_a_face_seen_twice_is_held_for_the_gap_after_it_is_lost(hits: int, expected: list[int]) -> None:
    frames: list[Detections | None] = [_dets((200, 100, 240, 150))] * hits + [_dets()] * (10 - hits)
    out = _run(frames, TrackerSettings(gap_frames=5, pad_frames=1, hold_frames=5))
    assert [len(_tracked(f)) for f in out] == expected


@pytest.mark.parametrize(("score", "carried"), [
    (0.2, 5),  # a box seen often but never with confidence: held for the gap only
    (0.6, 12),  # a face the detector was sure of once: held for hold_frames
])
def test_a_confident_face_is_held_longer_than_the_gap(score: float, carried: int) -> None:
    # Detected on every 3rd frame (0..9), then lost while still in view.
    box = (200, 100, 240, 150)
    frames: list[Detections | None] = [_dets(box, score=score) if i % 3 == 0 else None for i in range(10)]
    frames += [_dets()] * 20
    settings = TrackerSettings(gap_frames=5, pad_frames=3, hold_frames=12, hold_min_score=0.5)
    out = _run(frames, settings)
    after = [len(_tracked(f)) for f in out[10:]]
    assert after == [1] * carried + [0] * (20 - carried)
    assert all(np.allclose(_tracked(f)[0], box) for f in out[10:10 + carried])  # a still face stays put
    # A track seen once, however confidently, is a stray box: the pad only.
    once: list[Detections | None] = [_dets(box, score=0.9)] + [_dets()] * 20
    assert [len(_tracked(f)) for f in _run(once, settings)][1:] == [1] * 3 + [0] * 17


def test_holding_longer_does_not_delay_release() -> None:
    # The hold only carries forward, so frames are released after the same look-ahead.
    settings = TrackerSettings(gap_frames=5, pad_frames=3, hold_frames=60)
    tracker = Tracker(settings)
    released = [len(tracker.push(i, _dets((10, 10, 50, 50)))) for i in range(10)]
    assert settings.lookahead == 6
    assert released == [0] * 6 + [1] * 4


def _shift(dx: float, dy: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    return np.array([[zoom, 0.0, dx], [0.0, zoom, dy], [0.0, 0.0, 1.0]])


def test_carried_masks_follow_the_camera() -> None:
    # A still face in a pan of 40 px a frame, detected on frames 0 and 6 only: without the
    # camera's motion, interpolation puts it where it is not; with it, exactly where it is.
    face = np.array([300.0, 100.0, 340.0, 150.0])
    frames: list[Detections | None] = [None] * 7
    frames[0] = _dets(tuple(face))
    frames[6] = _dets(tuple(face + [-240, 0, -240, 0]))  # the camera moved 6 x 40 px right
    tracker = Tracker(TrackerSettings(gap_frames=8, pad_frames=1))
    out = []
    for i, dets in enumerate(frames):
        out.extend(tracker.push(i, dets, _shift(-40.0) if i else None))
    out.extend(tracker.flush())
    for i in range(1, 6):
        (box,) = _tracked(out[i])
        np.testing.assert_allclose(box, face + [-40 * i, 0, -40 * i, 0], atol=1e-3)


def test_a_zoom_scales_carried_masks() -> None:
    # Zooming in 10% a frame about the origin: the face grows and moves away from the corner.
    frames: list[Detections | None] = [_dets((100, 100, 140, 150))] + [_dets()] * 3
    tracker = Tracker(TrackerSettings(gap_frames=2, pad_frames=2))
    out = []
    for i, dets in enumerate(frames):
        out.extend(tracker.push(i, dets, _shift(0.0, zoom=1.1) if i else None))
    out.extend(tracker.flush())
    (box,) = _tracked(out[2])
    np.testing.assert_allclose(box, np.array([100, 100, 140, 150]) * 1.21, rtol=1e-5)


def test_only_nearby_pairs_are_compared_but_none_that_could_link_is_missed() -> None:
    from veil.geometry import iou_matrix
    from veil.track import _near_pairs

    rng = np.random.default_rng(3)
    for _ in range(20):
        def boxes(n: int) -> np.ndarray:
            xy = rng.uniform(0, 1200, (n, 2))
            wh = rng.uniform(4, 300, (n, 2)) * rng.uniform(0.3, 1.0, (n, 1))
            return np.hstack([xy, xy + wh]).astype(np.float32)
        predicted, found = boxes(int(rng.integers(1, 120))), boxes(int(rng.integers(1, 120)))
        reach = rng.uniform(0.7, 1.4, len(predicted))
        pc, dc = (predicted[:, :2] + predicted[:, 2:]) / 2, (found[:, :2] + found[:, 2:]) / 2
        p_size = np.sqrt(np.prod(predicted[:, 2:] - predicted[:, :2], axis=1))
        distance = np.linalg.norm(pc[:, None] - dc[None], axis=2) / p_size[:, None]
        linkable = (iou_matrix(predicted, found) > 0) | (distance <= reach[:, None])
        ti, di = _near_pairs(predicted, found, reach)
        near = np.zeros_like(linkable)
        near[ti, di] = True
        assert not (linkable & ~near).any()
        assert len(ti) == len(set(zip(ti.tolist(), di.tolist())))
        assert near.sum() < near.size  # it does leave pairs out


def test_a_moving_crowd_keeps_its_track_ids() -> None:
    # 300 faces 30 px apart, all moving 2 px a frame, detected every 3rd frame: each detection
    # links to its own face's track, never to a neighbour's.
    grid = np.stack(np.meshgrid(np.arange(20) * 30.0, np.arange(15) * 30.0), -1).reshape(-1, 2)
    frames: list[Detections | None] = []
    for i in range(30):
        xy = grid + 2.0 * i
        frames.append(_dets(*map(tuple, np.hstack([xy, xy + 20]))) if i % 3 == 0 else None)
    out = _run(frames, TrackerSettings(gap_frames=5, pad_frames=3))
    first = out[0].detections.track_ids
    assert len(set(first.tolist())) == 300
    for frame in out[3::3]:
        rows = frame.detections.sources == int(RegionSource.DETECTED)
        assert frame.detections.track_ids[rows].tolist() == first.tolist()
    for frame in out[1:27]:
        if frame.index % 3:  # the frames between detections: every face carried, none twice
            assert sorted(frame.detections.track_ids.tolist()) == sorted(first.tolist())


def test_pipeline_settings_turn_seconds_into_frames() -> None:
    from veil._types import Config
    from veil.presets import tracker_settings

    at30 = tracker_settings(Config(), 30.0, 3)
    assert (at30.gap_frames, at30.hold_frames, at30.pad_frames) == (15, 30, 3)
    at25 = tracker_settings(Config(track_hold_s=2.0), 25.0, 3)
    assert (at25.gap_frames, at25.hold_frames) == (12, 50)
    # The hold never falls short of the gap.
    assert tracker_settings(Config(track_hold_s=0.0), 30.0, 3).hold_frames == 15
    with pytest.raises(ValueError):
        Config(track_hold_s=-1.0)
