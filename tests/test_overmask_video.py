"""benchmarks/overmask_video.py: its split of what is masked, and its score cuts, on a clip whose
every figure can be worked out by hand."""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from veil._types import Detections, DetectPreset

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overmask_video.py"
WIDTH, HEIGHT, FRAMES = 640, 360, 12
FACE = (100.0, 100.0, 140.0, 140.0)  # annotated, and found at 0.5: a sure box (0.6x margins)
TEXTURE = (300.0, 50.0, 320.0, 70.0)  # touches no face, found at 0.12: full margins


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("overmask_video", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Fixed:
    """The face and the texture on every frame the detector sees."""

    def __call__(self, frame: np.ndarray) -> Detections:
        assert frame.shape[:2] == (HEIGHT, WIDTH)  # a caller's detector gets full frames
        return Detections(np.array([FACE, TEXTURE], np.float32), np.array([0.5, 0.12], np.float32))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "still.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10), options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(FRAMES):
            pixels = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
            pixels[:, :, 1] = np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, :]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    x0, y0, x1, y1 = FACE
    row = {"boxes": [[x0, y0, x1 - x0, y1 - y0]], "ignore": [], "ids": [0]}
    path.with_name("still.gt.jsonl").write_text(
        "".join(json.dumps({"frame": i, **row}) + "\n" for i in range(FRAMES)))
    return path


def test_figures_of_a_clip_worked_out_by_hand(clip: Path) -> None:
    figures = _load().run(clip, DetectPreset.BALANCED, detector=_Fixed())
    # Face region: margins x 0.25 * 0.6 * 40 = 6, top 0.4 * 0.6 * 40 = 9.6, bottom 4.8, rounded
    # outwards: x 94..146, y 90..145. Texture: x 5, top 8, bottom 4: x 295..325, y 42..74.
    face_region, texture_region = 52 * 55, 30 * 32
    frame = WIDTH * HEIGHT
    assert figures["detector frames: masked"] == pytest.approx((face_region + texture_region) / frame)
    # Every track is detected on every detector frame: nothing carried there.
    assert figures["by its boxes"] == pytest.approx(figures["detector frames: masked"])
    assert figures["off faces"] < figures["masked"]
    assert figures["off boxes/frame"] == 1 and figures["on boxes/frame"] == 1
    # The texture (0.12) goes at a cut of 0.15 and above, never at 0.1; the face (0.5) never.
    assert figures["cut 0.1: off removed"] == 0.0
    for cut in (0.15, 0.2, 0.3):
        assert figures[f"cut {cut}: off removed"] == 1.0
    for cut in (0.1, 0.15, 0.2, 0.3):
        assert figures[f"cut {cut}: faces lost"] == 0.0
