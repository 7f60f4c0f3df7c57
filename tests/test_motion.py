"""Camera motion: estimated from real H.264 frames of a known pan and zoom, and applied to boxes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from veil.media.video import VideoReader
from veil.motion import IDENTITY, MotionEstimator, transform_boxes, with_motion

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def pan_clip(path: Path, steps: list[tuple[float, float, float]], size: tuple[int, int] = (320, 240),
             rotation: int = 0) -> list[np.ndarray]:
    """An H.264 clip of windows onto the bundled photo: window i has its top-left corner at
    (x, y) and shows `zoom` times the frame size; returns each frame's true motion matrix."""
    photo = Image.open(ASTRONAUT).convert("RGB")
    width, height = size
    truth = []
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "18"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        if rotation:
            v.set_display_rotation(rotation)
        previous = None
        for x, y, zoom in steps:
            box = (x, y, x + width * zoom, y + height * zoom)
            img = photo.transform(size, Image.Transform.EXTENT, box, Image.Resampling.BILINEAR)
            # frame pixel p shows photo point box0 + p * zoom, so p = (q - box0) / zoom
            to_frame = np.array([[1 / zoom, 0, -x / zoom], [0, 1 / zoom, -y / zoom], [0, 0, 1]])
            if previous is not None:
                truth.append(to_frame @ np.linalg.inv(previous))
            previous = to_frame
            c.mux(v.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")))
        c.mux(v.encode(None))
    return truth


def _centre_error(estimated: np.ndarray, truth: np.ndarray, size: tuple[int, int]) -> float:
    """Largest distance between where the two matrices send the frame's corners and centre."""
    w, h = size
    points = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1], [w / 2, h / 2, 1]], float).T
    return float(np.abs((estimated @ points)[:2] - (truth @ points)[:2]).max())


def test_a_fast_pan_and_a_zoom_are_estimated_to_a_pixel(tmp_path: Path) -> None:
    # 12 px/frame right and 4 down (a fast pan at this size), then a 3%/frame zoom out.
    steps = [(40 + 12 * i, 60 + 4 * i, 1.0) for i in range(8)]
    steps += [(124 - 2 * i, 88 - 2 * i, 1.0 + 0.03 * (i + 1)) for i in range(6)]
    truth = pan_clip(tmp_path / "pan.mp4", steps)
    with VideoReader(tmp_path / "pan.mp4") as reader:
        motions = [m for _, m in with_motion(reader.frames())]
    assert motions[0] is IDENTITY and len(motions) == len(steps)
    errors = [_centre_error(m, t, (320, 240)) for m, t in zip(motions[1:], truth)]
    assert max(errors) < 1.0, errors
    still = max(_centre_error(IDENTITY, t, (320, 240)) for t in truth)
    assert still > 10  # the motion was real: assuming a still camera is off by this much


def test_motion_is_in_upright_pixels_for_rotated_video(tmp_path: Path) -> None:
    # Stored panning right, displayed turned 90 degrees: upright, the picture moves vertically.
    steps = [(40 + 10 * i, 60, 1.0) for i in range(5)]
    pan_clip(tmp_path / "r.mp4", steps, rotation=90)
    with VideoReader(tmp_path / "r.mp4") as reader:
        motions = [m for _, m in with_motion(reader.frames())]
    shifts = np.array([m[:2, 2] for m in motions[1:]])
    assert np.all(np.abs(shifts[:, 0]) < 1.0) and np.all(np.abs(np.abs(shifts[:, 1]) - 10) < 1.0), shifts


def test_a_blank_picture_keeps_the_last_motion() -> None:
    rng = np.random.default_rng(0)
    texture = (rng.random((120, 160)) * 255).astype(np.uint8)
    import cv2

    texture = cv2.GaussianBlur(texture, (0, 0), 2)
    estimator = MotionEstimator()
    assert estimator(texture, 0.5) is IDENTITY
    shifted = np.roll(texture, 3, axis=1)
    moved = estimator(shifted, 0.5)
    assert moved[0, 2] == pytest.approx(6.0, abs=0.5)  # 3 small pixels at scale 0.5
    kept = estimator(np.zeros_like(texture), 0.5)  # nothing to track: assume the same motion
    np.testing.assert_array_equal(kept, moved)


def test_transform_boxes_encloses_rotated_corners() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_array_equal(transform_boxes(boxes, IDENTITY), boxes)
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees
    np.testing.assert_allclose(transform_boxes(boxes, turn), [[-10, 0, 0, 10]])
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    diagonal = transform_boxes(boxes, np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]))
    assert diagonal[0, 2] - diagonal[0, 0] == pytest.approx(10 * np.sqrt(2))  # grows, never shrinks


@pytest.mark.parametrize("rotation", [0, 90])
def test_grey_copies_from_the_luma_plane_and_through_swscale_show_the_same_picture(
        tmp_path: Path, rotation: int) -> None:
    # yuv420p frames are shrunk from their luma plane, 10-bit ones through swscale: both must
    # give the same upright picture at the same scale (up to swscale's full-range stretch).
    pan_clip(tmp_path / "c.mp4", [(40, 60, 1.0)], rotation=rotation)
    with VideoReader(tmp_path / "c.mp4") as reader:
        frame = next(iter(reader.frames()))
    assert frame.image.format.name == "yuv420p"
    luma, scale = frame.grey(160)
    deep = type(frame)(frame.index, frame.pts, frame.time_base,
                       frame.image.reformat(format="yuv420p10le"), frame.rotation)
    swscaled, deep_scale = deep.grey(160)
    assert scale == deep_scale and luma.shape == swscaled.shape == ((120, 160) if not rotation else (213, 160))
    assert np.corrcoef(luma.ravel(), swscaled.ravel())[0, 1] > 0.99
