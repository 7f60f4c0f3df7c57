"""What a live run did, counted as it happens: the progress line and the JSON report share it."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Latency samples kept for the percentiles: the last hour at 30 fps is ~108k floats; older ones
# are dropped so memory stays flat on a stream that runs for days.
_MAX_SAMPLES = 120_000


@dataclass(frozen=True)
class LiveReport:
    """The figures of one run, as written to `--report` (the progress line shows a few)."""

    input: str
    output: str
    record: str | None
    delay_s: float
    duration_s: float
    frames_in: int  # decoded from the input
    frames_out: int  # output slots written (constant frame rate)
    frames_masked: int  # output frames that are checked input frames, masks burned in
    repeated_frames: int  # slots filled with the last checked frame (veil behind, input gap)
    curtain_frames: int  # slots filled with a fully masked frame
    unchecked_frames: int  # frames written that no detector pass checked: 0 by construction
    dropped_frames: int  # input frames never shown: late for their slot or the queue was full
    input_fps: float
    output_fps: float
    latency_ms: dict[str, float]  # added by veil: output wall clock minus input time minus delay
    reduced_scale_frames: int  # checked with the detector at a reduced scale (veil was behind)
    scale_changes: int  # times the detector's scale stepped down or back up
    segments: int  # input (re)openings, picture-size changes and scale changes
    reconnects: int
    stopped_by: str  # "end of input", "timeout", "Ctrl-C", "SIGTERM", or an error

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LiveStats:
    """Thread-safe counters; the source, pipeline and pacer threads each add their own."""

    started: float = field(default_factory=time.monotonic)
    frames_in: int = 0
    frames_out: int = 0
    frames_masked: int = 0
    repeated: int = 0
    curtains: int = 0
    unchecked: int = 0
    dropped: int = 0
    segments: int = 0
    reconnects: int = 0
    reduced: int = 0
    scale_changes: int = 0
    _latency: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _window: list[tuple[float, int, int]] = field(default_factory=list)  # (t, in, out) for rates
    _first_in: float | None = None
    _last_in: float = 0.0
    _first_out: float | None = None
    _last_out: float = 0.0

    def frame_in(self, now: float) -> None:
        with self._lock:
            self.frames_in += 1
            self._first_in = now if self._first_in is None else self._first_in
            self._last_in = now

    def frame_out(self, now: float, kind: str) -> None:
        """One output slot written: "masked", "repeated" or "curtain"."""
        with self._lock:
            self.frames_out += 1
            if kind == "masked":
                self.frames_masked += 1
            elif kind == "repeated":
                self.repeated += 1
            else:
                self.curtains += 1
            self._first_out = now if self._first_out is None else self._first_out
            self._last_out = now

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency.append(seconds)
            if len(self._latency) > _MAX_SAMPLES:
                del self._latency[:_MAX_SAMPLES // 2]

    def rates(self) -> tuple[float, float]:
        """Input and output frames per second over the last few seconds."""
        now = time.monotonic()
        with self._lock:
            self._window.append((now, self.frames_in, self.frames_out))
            while len(self._window) > 2 and now - self._window[0][0] > 5.0:
                self._window.pop(0)
            t0, in0, out0 = self._window[0]
        span = now - t0
        if span <= 0:
            return 0.0, 0.0
        return (self.frames_in - in0) / span, (self.frames_out - out0) / span

    def latency_ms(self) -> dict[str, float]:
        with self._lock:
            samples = np.array(self._latency, float)
        if not len(samples):
            return {"p50": 0.0, "p95": 0.0, "max": 0.0}
        p50, p95 = np.percentile(samples, [50, 95])
        return {"p50": round(float(p50) * 1000, 1), "p95": round(float(p95) * 1000, 1),
                "max": round(float(samples.max()) * 1000, 1)}

    def line(self) -> str:
        """The progress line: input fps, output fps, added latency, curtain and repeated frames."""
        fps_in, fps_out = self.rates()
        latency = self.latency_ms()
        return (f"in {fps_in:5.1f} fps | out {fps_out:5.1f} fps | latency +{latency['p50']:.0f} ms "
                f"(p95 {latency['p95']:.0f}) | curtain {self.curtains} | repeated {self.repeated} "
                f"| dropped {self.dropped}" + (f" | reduced scale {self.reduced}" if self.reduced else ""))

    def report(self, source: str, output: str, record: str | None, delay_s: float,
               stopped_by: str) -> LiveReport:
        duration = max(time.monotonic() - self.started, 1e-9)
        return LiveReport(
            input=source, output=output, record=record, delay_s=delay_s,
            duration_s=round(duration, 3), frames_in=self.frames_in, frames_out=self.frames_out,
            frames_masked=self.frames_masked, repeated_frames=self.repeated,
            curtain_frames=self.curtains, unchecked_frames=self.unchecked,
            dropped_frames=self.dropped,
            input_fps=_rate(self.frames_in, self._first_in, self._last_in),
            output_fps=_rate(self.frames_out, self._first_out, self._last_out),
            latency_ms=self.latency_ms(),
            reduced_scale_frames=self.reduced, scale_changes=self.scale_changes,
            segments=self.segments, reconnects=self.reconnects, stopped_by=stopped_by)


def _rate(frames: int, first: float | None, last: float) -> float:
    """Frames per second between the first and the last frame (not counting the wait before)."""
    if first is None or frames < 2 or last <= first:
        return 0.0
    return round((frames - 1) / (last - first), 2)
