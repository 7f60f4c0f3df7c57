"""Runs decode -> detect -> track -> plan -> redact -> encode for one video, threaded, failing closed.

Three threads hand frames on through bounded queues, so memory stays constant however long the
file is: a decoder thread (demux, decode, estimate the camera's motion), the calling thread
(detect, track, plan) and an encoder thread (mask, encode, mux, copy audio packets). The tracker holds a
fixed look-ahead of frames back (see `track.Tracker.lookahead`) because a mask must start a few
frames before a face is first detected and bridge gaps between detections.

The detector runs on every `detect_every`-th frame and on the last frame; the tracker interpolates
masks in between. Its padding is at least `detect_every` frames, so a face first detected on one
detector frame is covered since the previous one.
"""

from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._atomic import atomic_output
from ._errors import RedactionError, VeilError
from ._types import (
    Config,
    DetectPreset,
    Detections,
    FaceRecord,
    FileReport,
    FrameScan,
    MaskPlan,
    RegionSource,
)
from .detect.base import Detector
from .detect.faces import DetectorSettings, FaceDetector, preset_settings
from .media.video import Frame, VideoReader, VideoWriter
from .motion import with_motion
from .plan import plan_rows
from .track import TrackedFrame, Tracker, TrackerSettings

ProgressCallback = Callable[[int, "int | None"], None]

# Frames queued between threads: enough to smooth out a slow detector frame, small enough that a
# 4K stream holds well under a gigabyte.
QUEUE_FRAMES = 8


class PlanHook(Protocol):
    """The review app's plan file: edited regions per frame (see `veil redact --plan`)."""

    def regions_for(self, frame_index: int, computed: MaskPlan, width: int, height: int) -> MaskPlan: ...


@dataclass(frozen=True)
class VideoDetectSettings:
    """How the detector is run over a video: its passes, at what scale, and how often."""

    detector: DetectorSettings
    detect_every: int  # 1: every frame; k: every k-th frame, tracking carries masks in between
    scale: float = 1.0  # frames are scaled by this (one swscale pass) before the detector sees them
    camera_motion: bool = True  # carried masks follow the camera (motion.py); off: a still camera


# Per preset: (frame scale, large-face pass side, detector stride). Scaling is relative to the
# frame, so a face of 32 px in the frame reaches the network at >= 16 px whatever the
# resolution. The 384 px pass (taken when the scaled frame is over 480 px) finds close-ups too
# large for the network at the main scale, at a sixth to a third of the main pass's cost (a 640
# px pass doubled the cost at 1080p for no measured recall gain). "thorough" keeps the
# still-image passes (full resolution and up-scaled) on every frame: use it where
# faces under 32 px matter. Recall and speed of each: benchmarks/bench_video.py. On the 720p
# bench clip, scale 0.75 cost 2.4x the time of 0.5 with no gain in recall (0.9988 vs 1.0).
# fast is balanced on every 5th frame instead of every 3rd: on 61 rendered clips (seeds 7-10
# and 13-16, and the fast-pan set; benchmarks/video_recall.py) the only faces it left over the
# 2-frame bar were ones balanced left over it too, all labelled heavily occluded by WIDER, with
# longer runs (12-13 frames against 3-6). Its earlier form, one fp32 pass without the 384 px
# pass, left 8 of 21 held-out clips over the bar (runs up to 166 frames) and was slower.
_VIDEO_PRESETS: dict[DetectPreset, tuple[float, int, int]] = {
    DetectPreset.FAST: (0.5, 384, 5),
    DetectPreset.BALANCED: (0.5, 384, 3),
    DetectPreset.THOROUGH: (1.0, 640, 1),
}

# balanced runs the INT8 detector (detect/quantize.py), at about 0.6x fp32's time a call. INT8
# scores faces a little lower, so it gets lower thresholds than the still preset's. On the 12
# rendered clips (default and fast-pan sets) every face >= 32 px was then >= 80% masked in every
# frame, where fp32 balanced left runs of 15 and 8 frames (partial masks) on the pair pans. On the
# WIDER dev photos (balanced's still passes, scored as eval_recall.py does) every size bucket
# matched or beat fp32 at the still thresholds.
# fast runs it too (with the 384 px pass; see above); thorough stays fp32.
_INT8_PRESETS = frozenset({DetectPreset.FAST, DetectPreset.BALANCED})
_INT8_THRESHOLDS = (0.05, 0.06, 0.1, 0.15)

# Faces cut off by the frame's edge (entering, leaving, or just below it) score lower, half of
# them missing: with the INT8 thresholds, boxes touching the edge are kept at this fraction of
# their tier's threshold.
_EDGE_SCALE = 0.5


def video_detect_settings(config: Config) -> VideoDetectSettings:
    """The video settings of the config's preset (measured in benchmarks/bench_video.py)."""
    settings = preset_settings(config.detect, config.threshold)
    scale, large_face_side, every = _VIDEO_PRESETS[config.detect]
    if config.detect is not DetectPreset.THOROUGH:
        # One pass at the video scale (not the still preset's up-scaling), so the frame scale
        # alone sets the cost.
        settings = replace(settings, scales=(1.0,), max_side=0, large_face_side=large_face_side,
                           flip=False)
    if config.detect in _INT8_PRESETS:
        settings = replace(settings, int8=True)
        if config.threshold is None:  # a user's threshold stands as given, at the edge too
            settings = replace(settings, thresholds=_INT8_THRESHOLDS, edge_scale=_EDGE_SCALE)
    return VideoDetectSettings(settings, every, scale)


@lru_cache(maxsize=4)
def _video_detector(settings: DetectorSettings, threads: int) -> FaceDetector:
    return FaceDetector(settings, threads)


def tracker_settings(config: Config, rate: float | None, detect_every: int) -> TrackerSettings:
    """Frame counts from the config's seconds; gaps and padding always span a detector stride."""
    fps = rate if rate and rate > 0 else 30.0
    gap = max(int(round(config.track_gap_s * fps)), 2 * detect_every - 1)
    pad = max(config.track_pad_frames, detect_every)
    hold = max(int(round(config.track_hold_s * fps)), gap)
    return TrackerSettings(gap_frames=gap, pad_frames=pad, hold_frames=hold)


@dataclass(frozen=True, eq=False)
class PlannedFrame:
    """A frame ready to be masked: its final regions, and the records `veil scan` prints."""

    frame: Frame
    plan: MaskPlan  # the final regions (after the review app's edits, if any)
    rows: Detections  # the tracked rows the computed regions came from, aligned with `computed`
    computed: MaskPlan

    @functools.cached_property
    def faces(self) -> tuple[FaceRecord, ...]:
        """One record per final region; made only when asked (redaction needs none of them)."""
        return _records(self.rows, self.computed, self.plan)

    @property
    def lowest_score(self) -> float | None:
        """The lowest detector score among the regions masked in this frame."""
        if self.plan is not self.computed:
            scores = [f.score for f in self.faces if f.source is RegionSource.DETECTED]
            return min(scores) if scores else None
        detected = self.rows.scores[self.rows.sources == int(RegionSource.DETECTED)]
        return float(detected.min()) if len(detected) else None


# -- threads -------------------------------------------------------------------------------------

_DONE = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Producer:
    """Runs an iterator in a thread and hands its items over through a bounded queue."""

    def __init__(self, source: Callable[[], Iterable[Any]], name: str, maxsize: int = QUEUE_FRAMES) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Callable[[], Iterable[Any]]) -> None:
        try:
            for item in source():
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(_Failure(exc))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _Consumer:
    """Runs `sink` on each item in a thread; errors surface on the next `put` or at `finish`."""

    def __init__(self, sink: Callable[[Any], None], name: str, maxsize: int = QUEUE_FRAMES) -> None:
        self._sink = sink
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            try:
                self._sink(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                self._error = exc
                return

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RedactionError("the encoder stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# -- detect, track, plan ---------------------------------------------------------------------------

def _plan_rows(tracked: TrackedFrame, width: int, height: int, config: Config) -> tuple[MaskPlan, Detections]:
    """Mask regions for the tracked rows, and the rows kept (regions wholly outside are dropped)."""
    return plan_rows(tracked.detections, width, height, config, tracked.grow)


def _records(rows: Detections, computed: MaskPlan, final: MaskPlan) -> tuple[FaceRecord, ...]:
    """One record per final region. Tracker-added regions have score 0 (no detection there)."""
    by_region: dict[tuple[int, ...], FaceRecord] = {}
    records = []
    masks = computed.xywh()
    boxes, scores = rows.boxes.tolist(), rows.scores.tolist()
    sources, tracks = rows.sources.tolist(), rows.track_ids.tolist()
    regions = computed.boxes.tolist()
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        source = RegionSource(sources[i])
        score = scores[i] if source is RegionSource.DETECTED else 0.0
        record = FaceRecord((x1, y1, x2 - x1, y2 - y1), score, tuple(masks[i]),  # type: ignore[arg-type]
                            tracks[i], source)
        records.append(record)
        by_region.setdefault((*regions[i], tracks[i]), record)
    if final is computed:
        return tuple(records)
    out = []
    final_regions, final_tracks = final.boxes.tolist(), final.track_ids.tolist()
    for i, (mx, my, mw, mh) in enumerate(final.xywh()):
        key = (*final_regions[i], final_tracks[i])
        found = by_region.get(key)
        out.append(found or FaceRecord((float(mx), float(my), float(mw), float(mh)), 0.0,
                                       (mx, my, mw, mh), final_tracks[i],
                                       RegionSource(int(final.sources[i]))))
    return tuple(out)


def planned_frames(frames: Iterable[tuple[Frame, np.ndarray | None]], detector: Detector,
                   config: Config, detect: VideoDetectSettings, rate: float | None,
                   plan: PlanHook | None = None, prescale: float = 1.0) -> Iterator[PlannedFrame]:
    """Detect on every k-th frame and the last, track, plan; yield frames in order with their masks.

    `frames` pairs each frame with the camera's motion since the previous one (`with_motion`), or
    None. `prescale` < 1 hands the detector frames already scaled by it (one swscale pass) and
    maps its boxes back. Holds back at most the tracker's look-ahead plus one frame.
    """
    settings = tracker_settings(config, rate, detect.detect_every)
    tracker: Tracker | None = None  # made at the first frame, which gives the frame size
    held: collections.deque[Frame] = collections.deque()
    waiting: tuple[Frame, np.ndarray | None] | None = None  # pushed one late: the last is known

    def push(frame: Frame, motion: np.ndarray | None, last: bool) -> Iterator[PlannedFrame]:
        nonlocal tracker
        if tracker is None:
            tracker = Tracker(replace(settings, frame_size=frame.size))
        run = last or frame.index % detect.detect_every == 0
        found = None
        if run:
            if prescale < 1.0:
                pixels, sx, sy = frame.scaled_pixels(round(max(frame.size) * prescale))
            else:
                pixels, sx, sy = frame.pixels, 1.0, 1.0
            found = detector(pixels)
            if (sx, sy) != (1.0, 1.0):
                found = found.scaled(sx, sy)
        held.append(frame)
        for tracked in tracker.push(frame.index, found, motion):
            yield _finish(held.popleft(), tracked)

    def _finish(frame: Frame, tracked: TrackedFrame) -> PlannedFrame:
        assert frame.index == tracked.index
        width, height = frame.size
        computed, rows = _plan_rows(tracked, width, height, config)
        final = plan.regions_for(frame.index, computed, width, height) if plan is not None else computed
        return PlannedFrame(frame, final, rows, computed)

    for item in frames:
        if waiting is not None:
            yield from push(*waiting, last=False)
        waiting = item
    if waiting is not None:
        yield from push(*waiting, last=True)
    for tracked in tracker.flush() if tracker is not None else []:
        yield _finish(held.popleft(), tracked)


def _frames(frames: Iterable[Frame], settings: VideoDetectSettings
            ) -> Iterator[tuple[Frame, np.ndarray | None]]:
    """The frames with the camera's motion, if the settings follow it."""
    if settings.camera_motion:
        return with_motion(frames)
    return ((frame, None) for frame in frames)


def _detector(config: Config, detector: Detector | None, settings: VideoDetectSettings | None = None
              ) -> tuple[Detector, VideoDetectSettings, float]:
    """The detector, its video settings, and the scale frames are reduced to for it."""
    settings = settings or video_detect_settings(config)
    if detector is not None:
        return detector, settings, 1.0  # a caller's detector gets full frames
    return _video_detector(settings.detector, config.threads), settings, settings.scale


# -- public entry points ---------------------------------------------------------------------------

def scan_video_file(path: Path, config: Config = Config(), detector: Detector | None = None,
                    plan: PlanHook | None = None) -> Iterator[FrameScan]:
    """Yield one FrameScan per frame (with its time and each face's track); writes nothing."""
    path = Path(path)
    detector, settings, prescale = _detector(config, detector)
    with VideoReader(path) as reader:
        decoder = _Producer(lambda: _frames(reader.frames(), settings), "veil-decode")
        try:
            for planned in planned_frames(decoder, detector, config, settings,
                                          float(reader.info.rate) if reader.info.rate else None, plan,
                                          prescale):
                f = planned.frame
                yield FrameScan(path, f.index, reader.info.width, reader.info.height, planned.faces, f.time)
        finally:
            decoder.close()


@dataclass
class _Tally:
    """Per-file counts for the report."""

    frames: int = 0
    faces_per_frame: list[int] | None = None
    tracked_frames: int = 0
    lowest: float | None = None
    tracks: set[int] | None = None
    untracked: int = 0

    def add(self, planned: PlannedFrame) -> None:
        if self.faces_per_frame is None:
            self.faces_per_frame, self.tracks = [], set()
        assert self.tracks is not None
        self.frames += 1
        self.faces_per_frame.append(len(planned.plan))
        if np.any(planned.plan.sources == int(RegionSource.TRACKED)):
            self.tracked_frames += 1
        lowest = planned.lowest_score
        if lowest is not None and (self.lowest is None or lowest < self.lowest):
            self.lowest = lowest
        for track in planned.plan.track_ids.tolist():
            if track >= 0:
                self.tracks.add(track)
            else:
                self.untracked += 1


def redact_video_file(path: Path, target: Path, config: Config, *, overwrite: bool = False,
                      detector: Detector | None = None, progress: ProgressCallback | None = None,
                      plan: object | None = None,
                      detect_settings: VideoDetectSettings | None = None) -> FileReport:
    """Redact one video to `target` through a temporary file renamed only when complete.

    Any decode, detect or encode error raises (RedactionError/InputError) and leaves nothing at
    `target`. Audio streams are copied packet for packet unless `config.drop_audio`.
    `detect_settings` overrides the preset's video settings (benchmarks compare them).
    """
    started = time.perf_counter()
    path, target = Path(path), Path(target)
    detector, settings, prescale = _detector(config, detector, detect_settings)
    tally = _Tally()
    with VideoReader(path) as reader:
        info = reader.info
        audio: collections.deque[Any] = collections.deque()
        on_audio = None if config.drop_audio else audio.append
        try:
            with atomic_output(target, overwrite) as tmp:
                writer = VideoWriter(tmp, target, info, [] if config.drop_audio else reader.audio_streams,
                                     config, reader.container_metadata)
                decoder = _Producer(lambda: _frames(reader.frames(on_audio), settings), "veil-decode")

                def encode(item: PlannedFrame) -> None:
                    while audio:
                        writer.write_audio(audio.popleft())
                    writer.write(item.frame, item.plan, config.mask)

                encoder = _Consumer(encode, "veil-encode")
                try:
                    for planned in planned_frames(decoder, detector, config, settings,
                                                  float(info.rate) if info.rate else None,
                                                  plan, prescale):  # type: ignore[arg-type]
                        encoder.put(planned)
                        tally.add(planned)
                        if progress is not None:
                            progress(tally.frames, max(info.frames or 0, tally.frames) or None)
                    encoder.finish()
                    while audio:
                        writer.write_audio(audio.popleft())
                    writer.finish()
                finally:
                    decoder.close()
                    encoder.close()
                    writer.close()
        except VeilError as exc:
            if exc.path is None:
                raise type(exc)(exc.message, path) from None
            raise
        except OSError as exc:
            raise RedactionError(f"could not write {target}: {exc.strerror or exc}", path) from exc
    if progress is not None:
        progress(tally.frames, tally.frames)
    return FileReport(
        path=path, output=target, ok=True, kind="video", frames=tally.frames,
        faces=len(tally.tracks or ()) + tally.untracked,
        faces_per_frame=tuple(tally.faces_per_frame or ()), tracked_frames=tally.tracked_frames,
        lowest_score=tally.lowest, seconds=time.perf_counter() - started,
    )


__all__ = ["redact_video_file", "scan_video_file", "planned_frames", "video_detect_settings",
           "tracker_settings", "VideoDetectSettings", "PlannedFrame"]
