"""One `veil live` run: source -> delay line -> pacer -> sink, finalised however it ends.

Threads: the source reads and decodes; the pipeline thread runs the stages (detect, track,
regions, paint) segment by segment; the calling thread is the output clock and encoder. A
Ctrl-C or SIGTERM arrives in the calling thread: the encoders are flushed, the recording's
trailer written and the report saved before the exception goes on to the command.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import VeilError
from .._types import Config
from ..detect.base import Detector
from ..media.video import Frame
from ..presets import LIVE_BUDGET_S, LIVE_REPEAT_S, LIVE_SCALE_STEPS
from .degrade import Governor, Policy
from .delay import fit, live_stages, masked_frames
from .pacer import Checked, Clock, Ready, pace
from .sink import LiveSink
from .source import Finished, InputSpec, Picture, SegmentEnd, SegmentStart, Source
from .stats import LiveReport, LiveStats


@dataclass(frozen=True)
class LiveOptions:
    """Everything `veil live` takes; the Python API's entry point too (tests inject a detector)."""

    input: str
    output: str
    delay_s: float = 0.5
    record: str | None = None
    report: str | None = None  # write the JSON report here at the end
    listen: bool = False
    realtime: bool = False
    timeout_s: float = 10.0
    config: Config = field(default_factory=lambda: Config(quality=23))
    detector: Detector | None = None  # None: veil's, at presets.LIVE_VIDEO; given: full frames
    budget_s: float = LIVE_BUDGET_S
    repeat_s: float = LIVE_REPEAT_S
    progress: Callable[[str], None] | None = None  # called about once a second with the line
    degrade: bool = True  # when behind, a smaller detector input before curtains (live/degrade.py)

    def __post_init__(self) -> None:
        if not 0 <= self.delay_s <= 10:
            raise ValueError("delay must be between 0 and 10 seconds")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be positive")


def _stop_reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C"
    if type(exc).__name__ == "Terminated":
        return "SIGTERM"
    if isinstance(exc, VeilError):
        return f"error: {exc.message}"
    return f"error: {type(exc).__name__}"


class _Pipeline:
    """The stages over each segment, in a thread; checked frames go to `ready`."""

    def __init__(self, options: LiveOptions, clock: Clock, stats: LiveStats,
                 events: queue.Queue[Any], ready: Ready) -> None:
        self.options, self.clock, self.stats, self.events, self.ready = options, clock, stats, events, ready
        self.finished: Finished | None = None
        self.error: BaseException | None = None
        self.governor = Governor(Policy(LIVE_SCALE_STEPS if options.degrade else (1.0,)))
        self._segment_over = False
        self._thread = threading.Thread(target=self._run, name="veil-live-stages", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while self.finished is None:
                item = self.events.get()
                if isinstance(item, Finished):
                    self.finished = item
                elif isinstance(item, SegmentStart):
                    self._segment(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the pacer's thread
            self.error = exc
        finally:
            self.ready.close()

    def _segment(self, start: SegmentStart) -> None:
        """Run the stages over one segment; a change of the detector's scale (the governor)
        ends one run of the stages, flushing the frames they hold, and starts the next."""
        self._segment_over = False
        governor = self.governor
        while not self._segment_over:
            stages, _ = live_stages(self.options.config, start.rate, self.options.delay_s,
                                    self.options.detector, scale=governor.factor)
            reduced = governor.level > 0
            stamps: dict[int, tuple[int, float]] = {}
            for frame, image in masked_frames(self._frames(stamps), stages, self.options.config):
                slot, arrival = stamps.pop(frame.index)
                if time.monotonic() < self.clock.due(slot):
                    self.ready.put(Checked(fit(image, self.clock.size), slot, arrival))
                    governor.on_time()
                    if reduced:
                        self.stats.add(reduced=1)
                else:
                    self.stats.add(dropped=1)  # too late for its slot: the pacer has filled it
                    governor.late()
            if not self._segment_over:
                self.stats.add(scale_changes=1, segments=1)

    def _frames(self, stamps: dict[int, tuple[int, float]]) -> Iterator[Frame]:
        """The segment's pictures as the stages' frames (indices without gaps); a picture whose
        slot has already gone is skipped here, so a pipeline that fell behind catches up. Ends
        early, between pictures, when the governor changes the detector's scale."""
        index = 0
        while True:
            if index and self.governor.change() is not None:
                return
            waited = time.monotonic()
            item = self.events.get()
            now = time.monotonic()
            self.governor.idle(now - waited)
            if isinstance(item, SegmentEnd):
                self._segment_over = True
                return
            if isinstance(item, Finished):  # the source always ends a segment first; be safe
                self.finished = item
                self._segment_over = True
                return
            assert isinstance(item, Picture)
            if now >= self.clock.due(item.slot):
                self.stats.add(dropped=1)
                self.governor.late()
                continue
            stamps[index] = (item.slot, item.arrival)
            yield Frame(index, item.pts, item.time_base, item.image, item.rotation)
            index += 1


def _warm_up(detector: Detector) -> None:
    """Load the model and run it once before reading: its first call is several times slower,
    and the first frames would miss their slots."""
    import cv2  # noqa: F401, PLC0415 - camera motion's first frame would import it

    detector(np.zeros((360, 640, 3), np.uint8))


def run_live(options: LiveOptions) -> LiveReport:
    """Run until the input ends, times out or fails, or a signal stops it; return the report.

    Raises VeilError for a bad input or output (after finalising what was written); the report
    is written in every case when asked for.
    """
    config = options.config
    stats = LiveStats()
    clock = Clock(options.delay_s, options.budget_s)
    sink = LiveSink(options.output, options.record, config.quality, not config.drop_audio,
                    options.timeout_s)
    held = round((options.delay_s + options.budget_s) * 60) + 8  # pictures, at up to 60 fps
    events: queue.Queue[Any] = queue.Queue(held)
    ready = Ready()
    source = Source(InputSpec(options.input, options.listen, options.realtime, options.timeout_s),
                    clock, stats, events, sink.audio.add if sink.audio is not None else None)
    pipeline = _Pipeline(options, clock, stats, events, ready)
    stopped = threading.Event()
    stopped_by = "end of input"
    try:
        source.open()
        _warm_up(live_stages(config, 30.0, options.delay_s, options.detector)[0].detector)
        source.start()
        pipeline.start()
        while not clock.wait_started(0.1):
            if pipeline.error is not None or (pipeline.finished and not clock.started):
                break
        if pipeline.error is not None:
            raise pipeline.error
        if pipeline.finished is not None and pipeline.finished.error is not None:
            raise pipeline.finished.error
        if clock.started:
            sink.open(clock.size, clock.fps)
            show = (lambda: options.progress(stats.line())) if options.progress else None
            pace(clock, ready, sink.write, stats, options.repeat_s, stopped, show)
        if pipeline.error is not None:
            raise pipeline.error
        finished = pipeline.finished
        if finished is not None:
            if finished.error is not None:
                raise finished.error
            stopped_by = finished.reason
    except BaseException as exc:
        stopped_by = _stop_reason(exc)
        raise
    finally:
        stopped.set()
        source.stop()
        pipeline.join(timeout=5)
        with contextlib.suppress(Exception):
            sink.finish()
        report = stats.report(options.input, options.output, options.record, options.delay_s,
                              stopped_by)
        if options.report is not None:
            with contextlib.suppress(OSError):
                with open(options.report, "w", encoding="utf-8") as handle:
                    json.dump(report.as_dict(), handle, indent=2)
    return report
