"""benchmarks/thorough_replay.py: its replay of cached passes plans exactly what `scan_image` plans.

The benchmark's figures for every rule rest on that: a pass cached at a score floor of 0.02 and
cut at the preset's thresholds must give the same boxes as the detector run at those thresholds,
through veil's own `Rotated` and `scan_image`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from veil._types import Config, DetectPreset
from veil.evaluate import FrameTruth
from veil.media.image import read_image
from veil.pipeline import scan_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "thorough_replay.py"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("thorough_replay", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_replayed_thorough_plan_equals_a_fresh_scan(wider_dir: Path, wider_gt: list[FrameTruth]) -> None:
    replay = _load()
    # A crowd (hundreds of boxes, many under the thresholds) and a photo with two faces.
    truths = [wider_gt[0], wider_gt[3]]
    cache: dict = {}
    pixels: dict[str, np.ndarray] = {}
    now = replay.RULES[0]
    assert now.label == "as now"
    replayed = [plan for _, _, plan in replay.replay_plans(now, truths, wider_dir, cache, pixels)]
    assert len(cache) >= 2 * 3 * 3  # at least three passes in each of the three views, per photo
    config = Config(detect=DetectPreset.THOROUGH)
    for truth, plan in zip(truths, replayed):
        _, fresh = scan_image(read_image(wider_dir / truth.image).pixels, config)
        assert len(fresh.boxes) > 0
        assert np.array_equal(np.sort(plan.boxes, axis=0), np.sort(fresh.boxes, axis=0))
    # A stricter rule replays from the same cache, without running the network again.
    before = len(cache)
    stricter = [plan for _, _, plan in replay.replay_plans(replay.Rule("test", rotated_min=0.5), truths,
                                                            wider_dir, cache, pixels)]
    assert len(cache) == before
    assert sum(len(p.boxes) for p in stricter) < sum(len(p.boxes) for p in replayed)
