"""The detector's own rules: size-tiered thresholds, flip fusion, pass planning, presets on a real photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from veil._types import Config, DetectPreset, Detections
from veil.detect.faces import DetectorSettings, FaceDetector, fuse_views, preset_settings
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

    assert passes("fast", 1024, 768) == [pytest.approx(0.625)]
    assert passes("balanced", 1024, 768) == [pytest.approx(0.625), 1.5]
    assert passes("thorough", 1024, 768) == [pytest.approx(0.625), 1.0, 1.5]
    assert passes("balanced", 640, 480) == [1.5]  # small frames need no down-scaled pass


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
