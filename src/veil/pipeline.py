"""One file end to end, stills and video alike: decode -> stages -> paint -> encode, failing closed.

Both kinds of media go through the same chain (`stages.chain`). What differs is only at the two
ends and in the settings:

- a still is read whole (media/image.py), is one frame, runs the still detector passes, is not
  tracked, and is encoded in its own format and written in one go;
- a video is decoded in a thread of its own (with the camera's motion), runs the video detector
  settings with a tracker, and is painted and encoded in another thread (runner.py), with its
  audio packets copied along.

Either way the output is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_output, check_target, staged_output
from ._errors import InputError, OutputError, RedactionError, VeilError
from ._types import Config, Detections, FileReport, FrameScan, MaskRegions
from .detect.base import Detector
from .detect.dequantise import Dequantised, is_quantised
from .detect.faces import DetectorSettings, FaceDetector
from .detect.rotate import MEMORY, Rotated
from .media.image import StillImage, encode_image, read_image
from .media.kinds import MediaKind, media_kind
from .media.join import PART_FORMAT
from .media.video import VideoReader, VideoWriter, Window
from .motion import with_motion
from .paint import apply_masks, paint_frame
from .presets import (
    VideoDetectSettings,
    ROLL_MIN_SCORE,
    ROTATED_LARGE_MIN_SCORE,
    ROTATED_MIN_SCORE,
    UPSIDE_DOWN_MIN_SCORES,
    rotations,
    still_settings,
    sure_margins,
    tracker_settings,
    video_settings,
)
from .regions import SureMargins
from .report import Tally
from .runner import Consumer, Producer
from .edits import Edits
from .segments import Segment
from .stages import PlannedFrame, StillFrame, chain
from .track import TrackerSettings

# Called with (frames done, frames total or None) as a file is processed.
ProgressCallback = Callable[[int, "int | None"], None]


@lru_cache(maxsize=8)
def cached_detector(settings: DetectorSettings, threads: int) -> FaceDetector:
    """One shared detector per setting: building the ONNX session is the slow part."""
    return FaceDetector(settings, threads)


def detector_for(config: Config) -> Detector:
    """The detector stills run with this config."""
    return cached_detector(still_settings(config), config.threads)


@dataclass(frozen=True)
class StageSettings:
    """How the stages run over one file's frames."""

    detector: Detector
    every: int = 1  # detect on every k-th frame (and the last); tracking carries masks between
    prescale: float = 1.0  # < 1: the detector sees frames scaled down by this
    tracker: TrackerSettings | None = None  # None: no tracking (a still)
    camera_motion: bool = False  # estimate the camera's motion for the tracker (in the decoder)
    sure: SureMargins = None  # smaller margins for boxes the detector is sure of (presets)


def still_stages(config: Config, pixels: np.ndarray, detector: Detector | None = None
                 ) -> StageSettings:
    """One pass of the still detector. A quantised still (1-bit, dithered, few colours) is
    searched on a smoothed copy, and with veil's own detector at lowered thresholds: faces
    rebuilt from dots score lower (detect/dequantise.py)."""
    sure = sure_margins(config)
    if not is_quantised(pixels):
        return StageSettings(detector or _turned(detector_for(config), config), sure=sure)
    detector = detector or _turned(cached_detector(still_settings(config, quantised=True),
                                                   config.threads), config)
    return StageSettings(Dequantised(detector), sure=sure)


def _turned(detector: Detector, config: Config, video: bool = False) -> Detector:
    """veil's own detector, also run on the frame turned sideways where the preset (stills) or
    Config.roll (video) asks for it (detect/rotate.py). A caller's detector is used as given."""
    turns = rotations(config, video)
    if not turns:
        return detector
    return (Rotated(detector, turns, ROLL_MIN_SCORE, memory=MEMORY) if video
            else Rotated(detector, turns, ROTATED_MIN_SCORE, large_min_score=ROTATED_LARGE_MIN_SCORE,
                         upside_down=UPSIDE_DOWN_MIN_SCORES))


def video_stages(config: Config, rate: float | None, detector: Detector | None = None,
                 settings: VideoDetectSettings | None = None) -> StageSettings:
    """The video settings of the config's preset (or `settings`, which benchmarks compare).

    A caller's own detector gets full frames; veil's gets them scaled by the preset.
    """
    settings = settings or video_settings(config)
    prescale = 1.0 if detector is not None else settings.scale
    detector = detector or _turned(cached_detector(settings.detector, config.threads), config, True)
    return StageSettings(detector, settings.detect_every, prescale,
                         tracker_settings(config, rate, settings.detect_every, settings.tracker),
                         settings.camera_motion, sure_margins(config))


def with_camera(frames: Iterable[Any], stages: StageSettings) -> Iterator[tuple[Any, np.ndarray | None]]:
    """The frames with the camera's motion, if the stages follow it (the decode side's work)."""
    if stages.camera_motion:
        return with_motion(frames)
    return ((frame, None) for frame in frames)


def planned_frames(frames: Iterable[tuple[Any, np.ndarray | None]], stages: StageSettings,
                   config: Config, edits: Edits | None = None) -> Iterator[PlannedFrame]:
    """The detect -> track -> regions -> edits chain with these settings."""
    return chain(frames, stages.detector, config, every=stages.every, prescale=stages.prescale,
                 tracker=stages.tracker, sure=stages.sure, user_edits=edits)


# -- the two kinds of source ---------------------------------------------------------------------

@dataclass
class _Still:
    """A still: one frame, read whole."""

    path: Path
    still: StillImage
    stages: StageSettings
    kind: str = "image"
    total: int | None = 1

    def frames(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        yield StillFrame(self.still.pixels), None

    def writer(self, tmp: Path, target: Path, config: Config) -> _StillWriter:
        return _StillWriter(self.path, self.still, tmp, config)

    def close(self) -> None:
        pass


@dataclass
class _Video:
    """A video: decoded in a thread of its own, audio packets queued for the writer."""

    path: Path
    reader: VideoReader
    stages: StageSettings
    audio: bool
    kind: str = "video"
    window: Window | None = None  # one segment of a long video (redact_segment)
    _decoder: Producer | None = None
    _packets: collections.deque[Any] = field(default_factory=collections.deque)

    @property
    def total(self) -> int | None:
        return self.reader.info.frames

    def frames(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        on_audio = self._packets.append if self.audio else None
        self._decoder = Producer(lambda: with_camera(self.reader.frames(on_audio, self.window),
                                                     self.stages),
                                 "veil-decode")
        return iter(self._decoder)

    def writer(self, tmp: Path, target: Path, config: Config) -> _VideoWriter:
        streams = self.reader.audio_streams if self.audio else []
        return _VideoWriter(VideoWriter(tmp, target, self.reader.info, streams, config,
                                        self.reader.container_metadata), self._packets, config)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
        self.reader.close()


@contextlib.contextmanager
def _open(path: Path, config: Config, detector: Detector | None,
          settings: VideoDetectSettings | None = None) -> Iterator[_Still | _Video]:
    if media_kind(path) is MediaKind.VIDEO:
        reader = VideoReader(path, salvage=config.salvage)
        rate = float(reader.info.rate) if reader.info.rate else None
        source: _Still | _Video = _Video(path, reader, video_stages(config, rate, detector, settings),
                                         not config.drop_audio)
    else:
        still = read_image(path, config.max_pixels)
        source = _Still(path, still, still_stages(config, still.pixels, detector))
    try:
        yield source
    finally:
        source.close()


# -- the two kinds of sink -------------------------------------------------------------------------

class _StillWriter:
    """Paints the one frame and encodes it in the source's format."""

    def __init__(self, path: Path, still: StillImage, tmp: Path, config: Config) -> None:
        self._path, self._still, self._tmp, self._config = path, still, tmp, config

    def put(self, planned: PlannedFrame) -> None:
        masked = apply_masks(self._still.pixels, planned.regions, self._config.mask)
        try:
            data = encode_image(masked, self._still, self._config)
        except (OSError, ValueError) as exc:
            raise RedactionError(f"could not encode the output: {exc}", self._path) from exc
        self._tmp.write_bytes(data)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


class _VideoWriter:
    """Paints and encodes in a thread of its own; copies the audio decoded so far before each frame."""

    def __init__(self, writer: VideoWriter, audio: collections.deque[Any], config: Config,
                 shift: int = 0) -> None:
        """`shift`: subtracted from every pts (a segment's part starts at 0; media/join.py)."""
        self._writer, self._audio, self._style, self._shift = writer, audio, config.mask, shift
        self._encoder = Consumer(self._encode, "veil-encode")

    def _encode(self, planned: PlannedFrame) -> None:
        self._copy_audio()
        frame = planned.frame
        self._writer.write(paint_frame(frame, planned.regions, self._style), frame.pts - self._shift,
                           frame.time_base)

    def _copy_audio(self) -> None:
        while self._audio:
            self._writer.write_audio(self._audio.popleft())

    def put(self, planned: PlannedFrame) -> None:
        self._encoder.put(planned)

    def finish(self) -> None:
        self._encoder.finish()
        self._copy_audio()
        self._writer.finish()

    def close(self) -> None:
        self._encoder.close()
        self._writer.close()


# -- public entry points ---------------------------------------------------------------------------

def scan_image(pixels: np.ndarray, config: Config = Config(),
               detector: Detector | None = None) -> tuple[Detections, MaskRegions]:
    """Detect faces in an upright RGB frame and plan their masks (rows aligned with regions)."""
    planned = _plan_still(pixels, config, detector)
    return planned.rows, planned.regions


def redact_image(pixels: np.ndarray, config: Config = Config(),
                 detector: Detector | None = None) -> tuple[np.ndarray, Detections]:
    """Return a masked copy of an upright RGB uint8 frame, and the faces found in it."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 pixels of shape (H, W, 3), got {pixels.dtype} {pixels.shape}")
    planned = _plan_still(pixels, config, detector)
    return apply_masks(pixels, planned.regions, config.mask), planned.rows


def _plan_still(pixels: np.ndarray, config: Config, detector: Detector | None) -> PlannedFrame:
    return next(iter(planned_frames([(StillFrame(pixels), None)],
                                    still_stages(config, pixels, detector), config)))


def planned_file(path: str | Path, config: Config = Config(), detector: Detector | None = None,
                 plan: Edits | None = None) -> Iterator[PlannedFrame]:
    """Every frame of a file through the stages, with its regions and the rows behind them (one
    frame for a still); writes nothing. The audit and the review app read these typed frames."""
    with _open(Path(path), config, detector) as source:
        if plan is not None and source.kind == "image":
            plan.check_frame_count(1)
        yield from planned_frames(source.frames(), source.stages, config, plan)


def scan_file(path: str | Path, config: Config = Config(),
              detector: Detector | None = None, plan: Edits | None = None) -> Iterator[FrameScan]:
    """Yield what veil finds and would mask in each frame of a file (one frame for a still).

    With an edit plan (veil.edits), the regions reported are the edited ones. Video frames
    carry their time and each face's track.
    """
    path = Path(path)
    for planned in planned_file(path, config, detector, plan):
        frame = planned.frame
        width, height = frame.size
        yield FrameScan(path, frame.index, width, height, planned.faces, frame.time)


def redact_file(path: str | Path, out: str | Path | None = None, config: Config = Config(), *,
                overwrite: bool = False, detector: Detector | None = None,
                progress: ProgressCallback | None = None, plan: Edits | None = None,
                detect_settings: VideoDetectSettings | None = None, publish: bool = True) -> FileReport:
    """Redact one file to `out` (default `<stem>.redacted<suffix>` beside it).

    `plan` (veil.edits.Edits) edits veil's regions: keep a face visible, drop a false mask,
    add a missed face. Faces it does not release are masked as usual. `detect_settings` replaces
    a video preset's settings (benchmarks compare them).

    Raises a VeilError subclass on failure; the target path is then left as it was. A video's
    audio streams are copied packet for packet unless `config.drop_audio`.

    With `publish=False` the finished output stays under a temporary name beside `out`, and the
    report's `output` names that file: the caller moves it into place (`_atomic.publish`). A batch
    does so only once its ledger records the file as done (veil.archive.driver).
    """
    path = Path(path)
    target = Path(out) if out is not None else default_output(path)
    check_target(path, target, overwrite)
    started = time.perf_counter()
    tally = Tally()
    with _open(path, config, detector, detect_settings) as source:
        if isinstance(source, _Still):
            check_still_suffix(path, target, source.still.format)
            if plan is not None:
                plan.check_frame_count(1)
        with _named_errors(path, target), \
                atomic_output(target, overwrite) if publish else staged_output(target) as tmp:
            writer = source.writer(tmp, target, config)
            try:
                for planned in planned_frames(source.frames(), source.stages, config, plan):
                    writer.put(planned)
                    tally.add(planned.regions, planned.lowest_score)
                    if progress is not None:
                        progress(tally.frames, max(source.total or 0, tally.frames) or None)
                writer.finish()
            finally:
                writer.close()
    if progress is not None:
        progress(tally.frames, tally.frames)
    report = tally.report(path, target if publish else tmp, source.kind, time.perf_counter() - started)
    if isinstance(source, _Video) and source.reader.salvaged is not None:
        report = replace(report, salvaged=source.reader.salvaged)
    return report


def redact_segment(path: str | Path, target: Path, segment: Segment, part: Path,
                   config: Config = Config(), progress: ProgressCallback | None = None) -> FileReport:
    """Redact one segment of a long video (veil/segments.py) to `part`, for media/join.py.

    The frames from the segment's lead-in to its lead-out go through the same stages as a whole
    video, so the tracker sees what comes before and after the core; only the core's frames are
    painted and written, with `target`'s codec and settings, in an intermediate MP4
    (media/join.PART_FORMAT). Audio is left to the join. The report counts the core's frames only.
    """
    path = Path(path)
    started = time.perf_counter()
    tally = Tally()
    with _open(path, config, None) as source:
        if not isinstance(source, _Video):
            raise InputError("only a video is redacted in segments", path)
        source.audio = False
        source.window = Window(segment.lead_in, segment.lead_out, segment.first_index)
        with _named_errors(path, part), atomic_output(part, overwrite=True) as tmp:
            # The part starts at time 0: MP4 states a later start in milliseconds (its edit list),
            # which would move the part's frames by up to half a millisecond; the join adds the
            # exact start back.
            writer = _VideoWriter(VideoWriter(tmp, target, source.reader.info, [], config,
                                              container=PART_FORMAT), collections.deque(), config,
                                  shift=segment.start)
            try:
                for planned in planned_frames(source.frames(), source.stages, config):
                    pts = planned.frame.pts
                    if pts < segment.start or (segment.end is not None and pts >= segment.end):
                        continue
                    writer.put(planned)
                    tally.add(planned.regions, planned.lowest_score)
                    if progress is not None:
                        progress(tally.frames, segment.frames)
                writer.finish()
            finally:
                writer.close()
            if tally.frames != segment.frames:  # a part short of frames is never kept
                raise RedactionError(f"{segment.name} decoded {tally.frames} of the "
                                     f"{segment.frames} frames its packets hold", path)
    return tally.report(path, part, "video", time.perf_counter() - started)


@contextlib.contextmanager
def _named_errors(path: Path, written: Path) -> Iterator[None]:
    """Every error below names the input (`path`); an OSError is one writing `written`."""
    try:
        yield
    except VeilError as exc:
        if exc.path is None:
            raise type(exc)(exc.message, path) from None
        raise
    except OSError as exc:
        raise RedactionError(f"could not write {written}: {exc.strerror or exc}", path) from exc


# A still is written in its own format, so the output name must say that format.
_STILL_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "MPO": (".jpg", ".jpeg"), "PNG": (".png",),
                   "WEBP": (".webp",), "TIFF": (".tif", ".tiff"), "HEIF": (".heic", ".heif")}


def check_still_suffix(source: Path, target: Path, image_format: str) -> None:
    allowed = _STILL_SUFFIXES.get(image_format, ())
    if allowed and target.suffix.lower() not in allowed:
        raise OutputError(f"output {target.name} does not end in {' or '.join(allowed)}: veil writes "
                          f"stills in their own format ({image_format})", source)


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.redacted{path.suffix}")


def failed_report(path: Path, error: Exception) -> FileReport:
    message = error.message if isinstance(error, VeilError) else f"{type(error).__name__}: {error}"
    return FileReport(path=path, output=None, ok=False, error=message)


__all__ = ["redact_image", "redact_file", "redact_segment", "scan_image", "scan_file", "planned_file", "default_output",
           "detector_for",
           "cached_detector", "planned_frames", "still_stages", "video_stages", "with_camera",
           "StageSettings", "ProgressCallback"]
