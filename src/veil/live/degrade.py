"""When veil cannot keep up: a smaller detector input, not an output of curtains.

The pacer never shows an unchecked frame. So when the stages run slower than the input (a 1080p
stream on two cores, a CPU spike that lasts), every frame reaches its slot late and the output
turns into curtains: safe, but a stream nobody can watch. The detector is most of the stages' work,
and its cost grows with the pixels it sees. So while frames keep missing their slots, the stages
restart with the detector at the next smaller scale of `presets.LIVE_SCALE_STEPS`, and once veil
has had room to spare for a while they step back up.

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
            return self._move(self.level + 1, now)
        if self.level > 0 and elapsed >= self.policy.calm_s and lates == 0:
            busy = max(0.0, 1.0 - self._idle / elapsed)
            growth = (self.policy.steps[self.level - 1] / self.factor) ** 2
            if busy * growth < self.policy.room:
                return self._move(self.level - 1, now)
            self._since, self._idle = now, 0.0  # judge the next calm stretch afresh
        return None

    def _move(self, level: int, now: float) -> int:
        self.level = level
        self._outcomes.clear()
        self._since, self._idle = now, 0.0
        return level


__all__ = ["Policy", "Governor"]
