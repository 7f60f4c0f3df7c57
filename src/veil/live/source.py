"""The live input: opened through PyAV, decoded in a thread, re-opened with backoff when it drops.

Inputs are whatever FFmpeg's protocols in this PyAV build read as a stream: rtmp:// (pulled, or
listened on with `listen`), rtsp://, http(s):// HLS playlists, udp:// and srt:// MPEG-TS, `-` for
MPEG-TS on stdin, and local files, played at their own frame rate (`realtime`).

Every decoded picture is stamped with its output slot (pacer.Clock) and its arrival time, and put
on a bounded queue for the pipeline; when that queue is full the read waits, but only until the
picture's slot has gone: then it is dropped and counted. A change of picture size ends
the segment, as does a jump in the input's timestamps (a cut): the pipeline starts again with a
fresh tracker, which never carries masks across the change, and nothing after it is shown before
it has been through the stages.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av
import av.error

from .._errors import InputError, VeilError
from ..media.video import main_video_stream
from .pacer import Clock
from .stats import LiveStats

AUDIO_RATE = 48000  # audio is resampled to this (stereo, float planar) for the AAC encoder
_NETWORK = ("rtmp://", "rtmps://", "rtsp://", "rtsps://", "http://", "https://", "udp://",
            "srt://", "tcp://")
# A read that waits this long for data counts as a stall: the input is re-opened.
STALL_S = 2.0


@dataclass(frozen=True)
class InputSpec:
    """What to read and how."""

    url: str  # a URL, a path, or "-" for stdin
    listen: bool = False  # wait for a publisher on this rtmp:// address
    realtime: bool = False  # play at the stream's own rate (always for files)
    timeout_s: float = 10.0  # opening, and the longest stall or reconnect before giving up

    @property
    def is_network(self) -> bool:
        return self.url.lower().startswith(_NETWORK)

    @property
    def paced(self) -> bool:
        """Files (and --realtime inputs) are read at their own rate, as a camera would send them."""
        return self.realtime or not (self.is_network or self.url == "-")

    @property
    def reconnects(self) -> bool:
        return self.is_network

    @property
    def ends(self) -> bool:
        """An HTTP(S) input read to its end has ended: an HLS playlist says so with ENDLIST (a
        recording, or a live event that is over), and fetching it again would replay it from the
        start. A live playlist that stops growing stalls instead, and is re-opened. RTMP, RTSP,
        UDP and SRT streams that end may come back (a publisher reconnecting)."""
        return self.url.lower().startswith(("http://", "https://"))


def open_input(spec: InputSpec, wait_s: float) -> Any:
    """Open the input (raise InputError in one line; `wait_s` bounds the wait for it)."""
    url, fmt = spec.url, None
    # Probe a second of stream at most (FFmpeg's default is 5 s): the delay line starts only
    # once the input is open.
    options: dict[str, str] = {"analyzeduration": "1000000", "probesize": "2000000"}
    if url == "-":
        url, fmt = "pipe:0", "mpegts"
    elif spec.listen:
        options["listen"] = "1"
    elif url.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    elif not spec.is_network and not Path(url).is_file():
        raise InputError(f"no such file: {url}")
    stall = min(STALL_S, spec.timeout_s)
    try:
        return av.open(url, format=fmt, options=options, timeout=(wait_s, stall),
                       metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot open {spec.url}: {_message(exc)}") from None


def _message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


@dataclass(frozen=True, eq=False)
class Picture:
    """One decoded picture, stamped for the output clock."""

    image: Any  # av.VideoFrame as decoded
    pts: int
    time_base: Fraction
    rotation: int
    slot: int
    arrival: float


@dataclass(frozen=True)
class SegmentStart:
    size: tuple[int, int]  # upright (width, height)
    rate: float


@dataclass(frozen=True)
class SegmentEnd:
    pass


@dataclass(frozen=True)
class Finished:
    reason: str  # "end of input", "timeout", "stopped", "error"
    error: VeilError | None = None


class _Timeline:
    """Input time -> output slot for one segment, re-anchored when the input's clock jumps (a
    server resuming a stream from zero, a camera's clock reset) or its frames come late."""

    def __init__(self, clock: Clock, base: int, t0: float) -> None:
        self.clock, self.base, self.t0 = clock, base, t0
        self.last_t = t0
        self.last_slot = base - 1

    def slot(self, t: float, arrival: float) -> int:
        if t < self.last_t or t > self.last_t + 1.0:  # a jump: this frame is now
            self.base = max(self.clock.slot_at(arrival), self.last_slot + 1)
            self.t0 = t
        self.last_t = t
        slot = self.base + round((t - self.t0) * self.clock.fps)
        late = arrival - self.clock.nominal(slot)
        if late > self.clock.budget_s / 2:  # the input fell behind the wall clock: shift
            self.base += math.ceil(late * self.clock.fps)
            slot = self.base + round((t - self.t0) * self.clock.fps)
        self.last_slot = max(self.last_slot, slot)
        return slot


def _rate(stream: Any) -> float:
    """The stream's frame rate: the first plausible one FFmpeg states (a probe cut short can
    leave the average unset and "guess" the time base's 90000), else 30."""
    for rate in (stream.average_rate, stream.codec_context.framerate, stream.guessed_rate):
        if rate and 1 <= float(rate) <= 120:
            return float(rate)
    return 30.0


def _rotation(image: Any) -> int:
    return int(round(getattr(image, "rotation", 0) or 0)) % 360 // 90 * 90


class Source:
    """Reads the input in a thread of its own; events go to `events` (see module docstring)."""

    def __init__(self, spec: InputSpec, clock: Clock, stats: LiveStats, events: queue.Queue[Any],
                 on_audio: Callable[[int, Any], None] | None) -> None:
        self.spec, self.clock, self.stats, self.events = spec, clock, stats, events
        self._on_audio = on_audio
        self._stop = threading.Event()
        self._container: Any = None
        self._timeline: _Timeline | None = None
        self._size: tuple[int, int] | None = None
        self._last_slot = -1
        self._last_frame = time.monotonic()
        self._resampler: Any = None
        self._pace: tuple[float, float] | None = None  # (wall, input time) of the segment's start
        self._thread = threading.Thread(target=self._run, name="veil-live-source", daemon=True)

    def open(self) -> None:
        """Open the input in the calling thread, so that a bad input fails at once."""
        self._container = open_input(self.spec, self.spec.timeout_s)

    def start(self) -> None:
        self._last_frame = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STALL_S + 3)

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._finish(self._loop())
        except VeilError as exc:
            self._finish("error", exc)
        except Exception as exc:  # noqa: BLE001 - the run must end cleanly, with a reason
            self._finish("error", InputError(f"reading the input failed: {_message(exc)}",
                                             self.spec.url))

    def _loop(self) -> str:
        container = self._container
        backoff = 0.5
        while True:
            error = self._read(container)
            with contextlib.suppress(Exception):
                container.close()
            self._end_segment()
            if self._stop.is_set():
                return "stopped"
            if self.stats.frames_in == 0 and error is not None and not self.spec.reconnects:
                raise InputError(f"no video from the input: {error}", self.spec.url)
            if error is None and self.spec.ends and self.stats.frames_in > 0:
                return "end of input"
            if not self.spec.reconnects:
                if error is not None and self.spec.url != "-":
                    raise InputError(f"reading the input failed: {error}", self.spec.url)
                return "end of input"
            container = None
            while container is None:
                left = self.spec.timeout_s - (time.monotonic() - self._last_frame)
                if left <= 0:
                    if self.stats.frames_in == 0:  # a stream that never started is an error
                        raise InputError(f"no video from the input within {self.spec.timeout_s:g} s"
                                         + (f": {error}" if error else ""), self.spec.url)
                    return "timeout"
                if self._stop.wait(min(backoff, left)):
                    return "stopped"
                backoff = min(backoff * 2, 4.0)
                with contextlib.suppress(InputError):
                    container = open_input(self.spec, max(0.5, min(left, STALL_S * 2)))
            self.stats.add(reconnects=1)
            backoff = 0.5

    def _read(self, container: Any) -> str | None:
        """Demux and decode until the input ends or fails; the failure's text, or None at its end."""
        stream = main_video_stream(container)
        if stream is None:
            return "it holds no video stream"
        audio = container.streams.audio[0] if (self._on_audio and container.streams.audio) else None
        rate = _rate(stream)
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE) \
            if audio is not None else None
        try:
            for packet in container.demux([stream] + ([audio] if audio is not None else [])):
                if self._stop.is_set():
                    return None
                if packet.stream is audio:
                    for frame in audio.decode(packet):
                        self._audio(frame)
                    continue
                for frame in stream.decode(packet):
                    self._video(frame, rate)
                    if self._stop.is_set():
                        return None
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            return _message(exc)
        return None

    def _video(self, image: Any, rate: float) -> None:
        rotation = _rotation(image)
        size = (image.height, image.width) if rotation in (90, 270) else (image.width, image.height)
        time_base = image.time_base or Fraction(1, 90000)
        t = float(image.pts * time_base) if image.pts is not None else None
        timeline = self._timeline
        if t is not None and timeline is not None and (t < timeline.last_t or t > timeline.last_t + 1.0):
            # A jump in the input's clock is a cut (a publisher gone and back, a camera reset):
            # the tracker must not carry masks across it, so the stages start again.
            self._end_segment()
        if size != self._size:
            self._end_segment()
            self._put(SegmentStart(size, rate), block=True)
            self._size = size
            self.stats.add(segments=1)
        if t is None:
            t = self._pace[1] + (time.monotonic() - self._pace[0]) if self._pace else 0.0
        if self.spec.paced:
            self._wait_for(t)
        arrival = time.monotonic()
        self._last_frame = arrival
        self.stats.frame_in(arrival)
        if not self.clock.started:
            self.clock.start(arrival, rate, size)
        if self._timeline is None:
            self._timeline = _Timeline(self.clock, max(self.clock.slot_at(arrival),
                                                        self._last_slot + 1), t)
        slot = self._timeline.slot(t, arrival)
        if slot <= self._last_slot:  # two pictures for one output slot (a faster input)
            self.stats.add(dropped=1)
            return
        self._last_slot = slot
        picture = Picture(image, image.pts if image.pts is not None else 0, time_base, rotation,
                          slot, arrival)
        # A burst (a server sending what it buffered) waits for room; a picture whose slot has
        # gone is dropped, so a slow pipeline never holds the network read back for long.
        while not self._put(picture, block=False):
            if self._stop.is_set() or time.monotonic() >= self.clock.due(slot):
                self.stats.add(dropped=1)
                return
            time.sleep(0.005)

    def _wait_for(self, t: float) -> None:
        now = time.monotonic()
        if self._pace is None:
            self._pace = (now, t)
            return
        wall = self._pace[0] + (t - self._pace[1])
        if wall - now > 1.0 or wall < now - 1.0:  # a jump in the timestamps: start again from here
            self._pace = (now, t)
            return
        if wall > now:
            self._stop.wait(wall - now)

    def _audio(self, frame: Any) -> None:
        if self._timeline is None or self._on_audio is None or frame.pts is None:
            return  # nothing to align it with yet
        t = float(frame.pts * frame.time_base)
        for out in self._resampler.resample(frame):
            seconds = self._timeline.base / self.clock.fps + (t - self._timeline.t0)
            self._on_audio(round(seconds * AUDIO_RATE), out.to_ndarray())
            t += out.samples / AUDIO_RATE

    def _end_segment(self) -> None:
        if self._size is not None:
            self._put(SegmentEnd(), block=True)
        self._size, self._timeline, self._pace = None, None, None

    def _put(self, item: Any, block: bool) -> bool:
        if not block:
            try:
                self.events.put_nowait(item)
                return True
            except queue.Full:
                return False
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self.events.put(item, timeout=0.1)
                return True
        return False

    def _finish(self, reason: str, error: VeilError | None = None) -> None:
        self._end_segment()
        # The pipeline must hear this, even when stopping.
        while True:
            try:
                self.events.put(Finished(reason, error), timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    with contextlib.suppress(queue.Empty):
                        self.events.get_nowait()
