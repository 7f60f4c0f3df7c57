"""The batch's progress line: files done, failed and left, throughput and ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Counts:
    """Files of this run (skipped ones are not counted: they took no time)."""

    total: int
    done: int = 0
    failed: int = 0
    started_at: float = field(default_factory=time.perf_counter)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    def rate(self) -> float | None:
        """Files per second so far."""
        elapsed = time.perf_counter() - self.started_at
        return self.finished / elapsed if self.finished and elapsed > 0 else None

    def eta_s(self) -> float | None:
        rate = self.rate()
        return self.remaining / rate if rate else None

    def line(self) -> str:
        rate, eta = self.rate(), self.eta_s()
        text = f"{self.done} done, {self.failed} failed, {self.remaining} left"
        if rate:
            text += f", {rate * 60:.1f} files/min"
        if eta is not None and self.remaining:
            text += f", ETA {_clock(eta)}"
        return text


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


__all__ = ["Counts"]
