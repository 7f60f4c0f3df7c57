"""The output clock: one frame per slot at a constant rate, and never a frame nobody checked.

Slot k is due at the first frame's arrival + k/fps + --delay + presets.LIVE_BUDGET_S. At that
moment it gets the checked (painted) frame the pipeline made for it; if there is none, because
veil is behind or the input stalled, it repeats the last checked frame for up to
presets.LIVE_REPEAT_S, and after that writes a curtain (a fully masked frame). A checked frame
that comes after its slot has gone is dropped. Nothing else reaches the encoder.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .delay import curtain
from .stats import LiveStats


class Clock:
    """Maps output slots to wall-clock times (monotonic), once the first frame has arrived."""

    def __init__(self, delay_s: float, budget_s: float) -> None:
        self.delay_s, self.budget_s = delay_s, budget_s
        self.t0 = 0.0
        self.fps = 30.0
        self.size: tuple[int, int] = (0, 0)
        self._started = threading.Event()

    def start(self, t0: float, fps: float, size: tuple[int, int]) -> None:
        self.t0, self.fps, self.size = t0, fps, (size[0] // 2 * 2, size[1] // 2 * 2)
        self._started.set()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def nominal(self, slot: int) -> float:
        """When slot's input frame was (or should have been) received."""
        return self.t0 + slot / self.fps

    def due(self, slot: int) -> float:
        return self.nominal(slot) + self.delay_s + self.budget_s

    def slot_at(self, wall: float) -> int:
        return max(0, math.ceil((wall - self.t0) * self.fps - 0.5))


@dataclass(frozen=True, eq=False)
class Checked:
    """A painted frame, ready for its slot."""

    image: Any
    slot: int
    arrival: float


class Ready:
    """Checked frames by slot, from the pipeline thread to the pacer; closed when no more come."""

    def __init__(self) -> None:
        self._frames: dict[int, Checked] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.newest = -1

    def put(self, checked: Checked) -> None:
        with self._lock:
            self._frames[checked.slot] = checked
            self.newest = max(self.newest, checked.slot)

    def take(self, slot: int) -> tuple[Checked | None, int]:
        """The frame for `slot`, and how many frames for earlier slots were dropped (late)."""
        with self._lock:
            late = [s for s in self._frames if s < slot]
            for s in late:
                del self._frames[s]
            return self._frames.pop(slot, None), len(late)

    def close(self) -> None:
        self._closed.set()

    def done_after(self, slot: int) -> bool:
        """True when no frame will come for `slot` or later."""
        with self._lock:
            return self._closed.is_set() and self.newest < slot and not self._frames


def pace(clock: Clock, ready: Ready, write: Callable[[Any, int], None], stats: LiveStats,
         repeat_s: float, stopped: threading.Event, progress: Callable[[], None] | None = None,
         ) -> None:
    """Write one frame per slot until the pipeline is done (or `stopped` is set)."""
    repeat_slots = math.floor(repeat_s * clock.fps)
    blank = curtain(clock.size)
    last: Checked | None = None
    slot = 0
    next_progress = 0.0
    while not stopped.is_set():
        if ready.done_after(slot):
            return
        due = clock.due(slot)
        while (wait := due - time.monotonic()) > 0 and not stopped.is_set():
            time.sleep(min(wait, 0.05))
        checked, late = ready.take(slot)
        now = time.monotonic()
        if late:
            stats.add(dropped=late)
        if checked is not None:
            write(checked.image, slot)
            stats.frame_out(now, "masked")
            stats.latency(now - clock.nominal(slot) - clock.delay_s)
            last = checked
        elif last is not None and slot - last.slot <= repeat_slots:
            write(last.image, slot)
            stats.frame_out(now, "repeated")
        else:
            write(blank, slot)
            stats.frame_out(now, "curtain")
        slot += 1
        if progress is not None and now >= next_progress:
            progress()
            next_progress = now + 1.0
