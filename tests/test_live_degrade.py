"""When veil cannot keep up with a live stream, it shrinks the detector's input instead of
turning the output into curtains (live/degrade.py), and never shows an unchecked frame."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from veil._types import Detections
from veil.live import LiveOptions, run_live
from veil.live.degrade import Governor, Policy

from live_support import Clip, judge_file, stamped_clip
from test_live import TruthDetector


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_governor_steps_down_on_late_frames_but_not_while_a_change_settles() -> None:
    clock = FakeClock()
    governor = Governor(Policy((1.0, 0.75, 0.5), window=10, late_limit=3, settle_s=1.0), clock)
    clock.now = 2.0
    for _ in range(2):
        governor.late()
    assert governor.change() is None  # two late frames are jitter
    governor.late()
    assert governor.change() == 1 and governor.factor == 0.75
    clock.now = 2.5  # the backlog of the old scale drains: its late frames do not count
    for _ in range(5):
        governor.late()
    assert governor.change() is None
    clock.now = 3.1
    for _ in range(3):
        governor.late()
    assert governor.change() == 2 and governor.factor == 0.5
    clock.now = 4.5
    for _ in range(3):
        governor.late()
    assert governor.change() is None  # no smaller step: curtains are the pacer's answer
    assert governor.level == 2


def _behind(governor: Governor) -> int | None:
    for _ in range(3):
        governor.late()
    return governor.change()


def test_the_governor_steps_back_up_when_the_larger_scale_fits() -> None:
    clock = FakeClock()
    policy = Policy((1.0, 0.5), window=10, late_limit=3, settle_s=0.0, calm_s=5.0, room=0.8,
                    probe_s=10.0)
    governor = Governor(policy, clock)
    assert _behind(governor) == 1
    # Busy 8 % of the time at half scale: four times the pixels need ~32 %. Step up.
    clock.now = 4.9
    governor.idle(4.6)
    assert governor.change() is None  # not calm for long enough yet
    clock.now = 5.0
    for _ in range(30):
        governor.on_time()
    assert governor.change() == 0 and governor.factor == 1.0


def test_without_room_it_probes_and_backs_off_after_each_failed_probe() -> None:
    clock = FakeClock()
    policy = Policy((1.0, 0.5), window=10, late_limit=3, settle_s=1.0, calm_s=5.0, room=0.8,
                    probe_s=10.0, probe_max_s=160.0, failed_s=5.0)
    governor = Governor(policy, clock)
    clock.now = 1.0
    assert _behind(governor) == 1
    # Busy 80 % at half scale (other programs' load, say): no room by the measure.
    clock.now = 6.0
    governor.idle(1.0)
    assert governor.change() is None
    clock.now = 10.9
    assert governor.change() is None
    clock.now = 11.0  # 10 s calm: try the full scale
    assert governor.change() == 0
    clock.now = 12.5  # behind again at once: the probe failed, wait twice as long next time
    assert _behind(governor) == 1
    clock.now = 22.5
    assert governor.change() is None
    clock.now = 32.5
    assert governor.change() == 0
    clock.now = 38.0  # this time the full scale held past failed_s: the wait is reset
    assert governor.change() is None
    clock.now = 40.0
    assert _behind(governor) == 1
    clock.now = 50.0
    assert governor.change() == 0


def test_no_change_while_on_time_and_a_single_step_never_moves() -> None:
    clock = FakeClock()
    governor = Governor(Policy((1.0,)), clock)
    for t in range(100):
        clock.now = t / 10
        governor.late()
        assert governor.change() is None


class PixelCostDetector(TruthDetector):
    """The truth detector, taking time in proportion to the pixels it is given, as a network
    does: `seconds` for the full frame."""

    def __init__(self, clip: Clip, seconds: float) -> None:
        super().__init__(clip)
        self.seconds = seconds
        self.sizes: list[int] = []

    def __call__(self, pixels: np.ndarray) -> Detections:
        full = self.clip.size[0] * self.clip.size[1] if self.clip else pixels.size
        share = pixels.shape[0] * pixels.shape[1] / full
        self.sizes.append(pixels.shape[1])
        time.sleep(self.seconds * share)
        return super().__call__(pixels)


@pytest.fixture(scope="module")
def long_clip(make_clips_module, tmp_path_factory: pytest.TempPathFactory) -> Clip:  # type: ignore[no-untyped-def]
    return stamped_clip(make_clips_module, tmp_path_factory.mktemp("degrade-clip"), seconds=7.0)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_detector_too_slow_for_the_stream_shows_masked_frames_not_curtains(
        long_clip: Clip, tmp_path: Path) -> None:
    # At full size the detector takes 0.33 s for a frame every 1/6 s (stride 5 at 30 fps): twice
    # too slow. At half the width it takes a quarter of that, and keeps up.
    runs = {}
    for degrade in (False, True):
        out = tmp_path / f"out-{degrade}.ts"
        detector = PixelCostDetector(long_clip, seconds=0.33)
        report = run_live(LiveOptions(str(long_clip.path), str(out), detector=detector,
                                      degrade=degrade))
        verdict = judge_file(out, long_clip)
        assert report.unchecked_frames == 0
        assert verdict.bare == [], verdict.bare
        runs[degrade] = (report, verdict, detector)
    (plain, plain_seen, plain_detector), (adapted, seen, detector) = runs[False], runs[True]
    assert set(plain_detector.sizes) == {long_clip.size[0]}
    assert plain.scale_changes == 0 and plain.reduced_scale_frames == 0
    assert min(detector.sizes) < long_clip.size[0]
    assert adapted.scale_changes >= 1 and adapted.reduced_scale_frames > 0
    # Without it, most of the run is curtains; with it, most of the run is checked frames.
    total = len(long_clip.truth)
    assert plain.curtain_frames > 0.5 * plain.frames_out, plain
    # (On this machine, idle: 0 of 222 frames checked without, 126 of 210 with; the first
    # ~2.5 s go on finding the scale that keeps up.)
    assert adapted.frames_masked > 0.35 * total, adapted
    assert adapted.curtain_frames + adapted.repeated_frames < 0.7 * plain.frames_out, adapted
    assert seen.checked > max(30, 2 * plain_seen.checked)
