"""When veil cannot keep up: a smaller detector input, not an output of curtains.

The pacer never shows an unchecked frame. So when the stages run slower than the input (a 1080p
stream on two cores, a CPU spike that lasts), every frame reaches its slot late and the output
turns into curtains: safe, but a stream nobody can watch. The detector is most of the stages' work,
and its cost grows with the pixels it sees. So while frames keep missing their slots, the stages
restart with the detector at the next smaller scale of `presets.LIVE_SCALE_STEPS`, and once veil
has had room to spare for a while they step back up. Room is judged two ways: the pipeline
thread's busy share, grown by the larger scale's cost, fits; or, failing that measure (load from
other programs comes and goes), a probe: after a calm stretch veil simply tries the larger scale,
and if that falls behind again at once, it waits twice as long before the next try.

Every frame still goes through the same stages and the same delay line; only the detector's
resolution changes, which costs recall of the smallest faces first. The report counts the frames
checked at a reduced scale. A restart is a new segment: a fresh tracker, as after a cut.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """When to step down and up; the defaults are `presets`' (see there for why)."""

    steps: tuple[float, ...]  # detector scale factors, largest first; steps[0] is the preset's own
    window: int = 30  # frames judged for lateness (one second at 30 fps)
    late_limit: int = 3  # late frames in the window that step down
    settle_s: float = 1.0  # after a change, the backlog drains before lateness counts again
    calm_s: float = 5.0  # this long with no late frame and room to spare before stepping up
    room: float = 0.8  # step up only if the busy share, grown by the next step's cost, stays under
    probe_s: float = 10.0  # or try the larger scale after this long calm; doubled after each failure
    probe_max_s: float = 160.0
    failed_s: float = 5.0  # a step down this soon after a step up: the probe failed


class Governor:
    """Chooses the detector's scale factor from how the pipeline keeps up.

    Called from the pipeline thread only: `late()`/`on_time()` for each frame's outcome, `idle()`
    for time spent waiting for input, and `change()` between frames.
    """

    def __init__(self, policy: Policy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self._clock = policy, clock
        self.level = 0
        self._outcomes: collections.deque[bool] = collections.deque(maxlen=policy.window)
        self._since = clock()
        self._idle = 0.0
        self._probe_s = policy.probe_s
        self._stepped_up = False

    @property
    def factor(self) -> float:
        return self.policy.steps[self.level]

    def late(self) -> None:
        if self._clock() - self._since >= self.policy.settle_s:
            self._outcomes.append(True)

    def on_time(self) -> None:
        self._outcomes.append(False)

    def idle(self, seconds: float) -> None:
        self._idle += seconds

    def change(self) -> int | None:
        """The new level when the scale should change now, else None."""
        now = self._clock()
        elapsed = now - self._since
        lates = sum(self._outcomes)
        if lates >= self.policy.late_limit and self.level + 1 < len(self.policy.steps):
            if self._stepped_up and elapsed < self.policy.failed_s:
                self._probe_s = min(2 * self._probe_s, self.policy.probe_max_s)
            return self._move(self.level + 1, now, up=False)
        if self._stepped_up and elapsed >= self.policy.failed_s:
            self._stepped_up = False  # the last step up held
            self._probe_s = self.policy.probe_s
        if self.level > 0 and elapsed >= self.policy.calm_s and lates == 0:
            busy = max(0.0, 1.0 - self._idle / elapsed)
            growth = (self.policy.steps[self.level - 1] / self.factor) ** 2
            if busy * growth < self.policy.room or elapsed >= self._probe_s:
                return self._move(self.level - 1, now, up=True)
        return None

    def _move(self, level: int, now: float, up: bool) -> int:
        self.level = level
        self._outcomes.clear()
        self._since, self._idle = now, 0.0
        self._stepped_up = up
        return level


__all__ = ["Policy", "Governor"]
