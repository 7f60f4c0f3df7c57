"""The per-file tally: which frames a person should look at first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from veil._types import MaskRegions, MaskShape, RegionSource
from veil.report import LOW_SCORE, Tally


def _regions(sources: list[RegionSource]) -> MaskRegions:
    n = len(sources)
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1))
    return MaskRegions(boxes, MaskShape.BOX, np.arange(n, dtype=np.int64),
                       np.array([int(s) for s in sources], np.int8))


def test_frames_with_a_low_confidence_mask_are_counted_and_reported() -> None:
    tally = Tally()
    tally.add(_regions([RegionSource.DETECTED]), 0.9)
    tally.add(_regions([RegionSource.DETECTED, RegionSource.DETECTED]), LOW_SCORE / 2)
    tally.add(_regions([RegionSource.TRACKED]), None)  # carried only: no score, not low-confidence
    tally.add(_regions([]), None)
    tally.add(_regions([RegionSource.DETECTED]), LOW_SCORE)  # at the line: not low
    report = tally.report(Path("in.mp4"), Path("out.mp4"), "video", 1.0)
    assert report.low_score_frames == 1
    assert report.tracked_frames == 1
    assert report.to_json()["frames_with_low_confidence_masks"] == 1
    assert report.lowest_score == LOW_SCORE / 2
