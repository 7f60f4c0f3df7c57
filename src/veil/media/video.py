"""PyAV video reading and writing: exact timestamps, upright pixels, audio copied, nothing else kept.

Rotation: a display matrix (phones filming upright) is *applied to the pixels* when reading,
and the output carries no display matrix. Every coordinate veil reports (scan boxes, masks,
plan files) is therefore in the upright picture a viewer sees, and the output file shows the
same picture in every player, including ones that ignore display matrices.

Timing: each output frame carries the pts and time base of the input frame it came from, so
variable frame rates and NTSC rates (30000/1001) survive exactly where the container's time
base allows it (Matroska/WebM store milliseconds, as the input did if it was Matroska).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import av.video.frame
import numpy as np

from .._errors import InputError, RedactionError
from .._types import Config, Salvaged
from .ffmpeg_log import decoder_errors


# Output container for each target suffix: the same container type as the input.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
            ".avi": "avi"}
# "veryfast" encodes about twice as fast as x264's default "medium" (measured on the 720p bench
# clip: 16.5 vs 7.8 fps) for files about 1.4x larger; at CRF 18 the picture stays visually
# lossless either way, and for hours of footage the time matters more than the bytes.
X264_PRESET = "veryfast"
# VP9 for WebM (which cannot hold H.264). libvpx's CRF scale runs 0..63 against x264's 0..51;
# scaling keeps "--quality 18" visually lossless in both. cpu-used 4 + row-mt is libvpx's
# recommended speed for file encoding.
VP9_OPTIONS = {"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}

# Container tags copied only with --keep-metadata; location ones only with --keep-gps too.
_KEEP_TAGS = ("creation_time", "make", "model", "com.apple.quicktime.make",
              "com.apple.quicktime.model", "com.apple.quicktime.creationdate")
_GPS_TAGS = ("location", "location-eng", "com.apple.quicktime.location.ISO6709")


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about the input's video stream."""

    width: int  # upright width, after rotation
    height: int
    rotation: int  # degrees counterclockwise applied to the stored pixels (0, 90, 180, 270)
    time_base: Fraction
    rate: Fraction | None  # average frame rate, for the encoder's rate control and progress
    frames: int | None  # frame count from the container, when it states one
    codec: str
    pix_fmt: str
    audio_streams: int


@dataclass(frozen=True)
class Window:
    """The frames one segment of a long video decodes: from the keyframe at pts `lead_in` (the
    video's frame `first_index`) to before pts `lead_out` (None: to the end)."""

    lead_in: int
    lead_out: int | None
    first_index: int


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame and its exact presentation time; RGB pixels are made only when asked.

    Most frames are never converted to RGB: the detector skips them and a solid or noise mask is
    painted straight into the YUV planes, which also leaves unmasked pixels bit-exact.
    """

    index: int
    pts: int
    time_base: Fraction
    image: Any  # the decoded av.VideoFrame, as stored (not rotated)
    rotation: int = 0  # degrees counterclockwise to turn the stored picture upright

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright picture."""
        w, h = self.image.width, self.image.height
        return (h, w) if self.rotation in (90, 270) else (w, h)

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the upright picture."""
        return _turn(self.image.to_ndarray(format="rgb24"), self.rotation)

    def scaled_pixels(self, max_side: int) -> tuple[np.ndarray, float, float]:
        """Upright RGB with its longer side at most `max_side`, and the (sx, sy) back to full size.

        Scaling and colour conversion happen in one swscale pass, far cheaper than converting
        the whole frame and resizing afterwards.
        """
        width, height = self.image.width, self.image.height
        longest = max(width, height)
        if not max_side or longest <= max_side:
            return self.pixels, 1.0, 1.0
        scale = max_side / longest
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        small = self.image.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
        pixels = _turn(small.to_ndarray(), self.rotation)
        if self.rotation in (90, 270):
            return pixels, height / h, width / w
        return pixels, width / w, height / h

    def grey(self, width: int) -> tuple[np.ndarray, float]:
        """A small upright greyscale copy `width` px wide, and its scale.

        8-bit frames whose first plane is luma are shrunk from that plane directly (OpenCV's area
        resize, half the cost of an swscale pass); other formats go through swscale. The values
        are luma in either case, which is all that motion estimation needs.
        """
        upright_width = self.size[0]
        scale = min(1.0, width / upright_width)
        w = max(1, round(self.image.width * scale))
        h = max(1, round(self.image.height * scale))
        if self.image.format.name in _LUMA_FIRST:
            import cv2

            luma = plane(self.image, 0, self.image.height, self.image.width)
            small = cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA)
        else:
            small = self.image.reformat(width=w, height=h, format="gray",
                                        interpolation="AREA").to_ndarray()
        return _turn(small, self.rotation), scale


# 8-bit pixel formats whose first plane is the luma (or grey) picture.
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                         "nv12", "nv21", "gray"})


def _turn(pixels: np.ndarray, rotation: int) -> np.ndarray:
    if not rotation:
        return pixels
    return np.ascontiguousarray(np.rot90(pixels, k=rotation // 90))


def _ffmpeg_message(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return str(exc)


def _missing_moov(path: Path) -> bool:
    """An MP4/MOV whose header is there but whose index never got written (a cut-off recording)."""
    try:
        with open(path, "rb") as f:
            if f.read(12)[4:8] != b"ftyp":
                return False
            f.seek(0)
            tail = b""
            while chunk := f.read(1 << 20):
                if b"moov" in tail + chunk:
                    return False
                tail = chunk[-3:]
    except OSError:
        return False
    return True


def _rotation(degrees: float) -> int:
    """Display-matrix angle (counterclockwise) rounded to a quarter turn in 0..270."""
    return int(round(degrees / 90.0)) % 4 * 90


def main_video_stream(container: Any) -> Any | None:
    """The stream veil redacts: the largest video stream that is not an attached picture.

    Cover art (an attached picture) is a one-frame video stream, listed first in some files; the
    footage is the largest moving picture. The other video streams are never written out.
    """
    videos = [s for s in container.streams.video
              if not s.disposition & av.stream.Disposition.attached_pic]
    return max(videos, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0),
               default=None)


def _clock_seconds(text: str) -> float | None:
    """'HH:MM:SS.nnnnnnnnn' (Matroska's per-track DURATION tag) in seconds; None if malformed."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError:
        return None
    total = hours * 3600 + minutes * 60 + seconds
    return total if total > 0 and total == total and total < float("inf") else None


@dataclass(frozen=True)
class StatedLength:
    """How long the container says the video is, where it states no frame count (Matroska, WebM).

    `video_only`: the figure is the video track's own (Matroska's DURATION tag), so only the
    video's end is compared with it; otherwise it is the whole file's, which audio or subtitles
    may make longer than the video, so the end of every stream counts.
    """

    seconds: float
    video_only: bool
    start: float  # the container's start time: a whole-file duration counts from there


def stated_length(container: Any, stream: Any) -> StatedLength | None:
    """The length to hold a decode against, or None when the container states none."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    seconds = _clock_seconds(tag) if isinstance(tag, str) else None
    if seconds is not None:
        return StatedLength(seconds, True, 0.0)
    if stream.duration and stream.time_base:
        return StatedLength(float(stream.duration * stream.time_base), True, 0.0)
    if container.duration and container.duration > 0:
        start = (container.start_time or 0) / av.time_base
        return StatedLength(container.duration / av.time_base, False, start)
    return None


# How far short of the stated length the decode may end: one frame (the last frame's duration is
# not always counted the same way by muxers, nor known for variable frame rates) and Matroska's
# rounding to milliseconds. A sound track may end one audio packet (at most ~0.05 s) short.
_SLACK_FRAMES = 1
_SLACK_S = 0.005
_SLACK_NO_RATE_S = 0.1
_AUDIO_SLACK_S = 0.05


class VideoReader:
    """Demuxes and decodes one file's main video stream; audio packets go to a callback.

    A file that decodes to fewer frames, or a shorter time, than its container states was cut
    off (a copy that stopped, a camera that died). By default that fails the file: a redacted
    copy silently shorter than the original is a loss nobody notices. With `salvage`, the part
    that decodes is what the file holds, and `salvaged` says how much of it there was.
    """

    def __init__(self, path: Path, salvage: bool = False) -> None:
        self.path = path
        self.salvage = salvage
        self.salvaged: Salvaged | None = None
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            hint = " (the file looks truncated: its index, the 'moov' atom, is missing)" \
                if _missing_moov(path) else ""
            raise InputError(f"cannot open as video: {_ffmpeg_message(exc)}{hint}", path) from None
        try:
            self._setup()
        except BaseException:
            self._container.close()
            raise

    def _setup(self) -> None:
        container = self._container
        stream = main_video_stream(container)
        if stream is None:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            if container.streams.video:
                raise InputError("has no video stream, only an attached picture such as cover art "
                                 f"(found: {', '.join(kinds)})", self.path)
            raise InputError(f"has no video stream (found: {', '.join(kinds)})", self.path)
        if stream.codec_context is None or stream.codec_context.width <= 0:
            raise InputError("the video stream has no decodable picture (unknown codec or size)",
                             self.path)
        rotation = self._probe_rotation(stream)  # reopens the container
        stream = self.video_stream
        container = self._container
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            w, h = h, w
        rate = stream.average_rate or stream.guessed_rate
        frames = stream.frames or None
        if frames is None and stream.duration and rate:
            frames = int(round(float(stream.duration * stream.time_base * rate)))
        elif frames is None and container.duration and rate:
            frames = int(round(container.duration / av.time_base * float(rate)))
        self.info = VideoInfo(
            width=w, height=h, rotation=rotation, time_base=stream.time_base or Fraction(1, 90000),
            rate=Fraction(rate) if rate else None, frames=frames or None,
            codec=stream.codec_context.name, pix_fmt=stream.codec_context.pix_fmt or "unknown",
            audio_streams=len(self.audio_streams),
        )
        self._declared_frames = stream.frames or 0
        self._stated = None if self._declared_frames else stated_length(container, stream)

    def _probe_rotation(self, stream: Any) -> int:
        """Read the display matrix by decoding the first frame (FFmpeg attaches it per frame)."""
        try:
            for frame in self._container.decode(stream):
                rotation = _rotation(frame.rotation)
                break
            else:
                stated = stated_length(self._container, stream)
                if stated is not None:  # a file cut before its first whole frame
                    raise InputError(f"ends early: no frame decodes of the {stated.seconds:.1f} s "
                                     "it states; the file is truncated", self.path)
                raise InputError("the video stream holds no frames", self.path)
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode the video: {_ffmpeg_message(exc)}", self.path) from None
        # Start again from the beginning for the real pass.
        self._container.close()
        self._container = av.open(str(self.path), metadata_errors="ignore")
        self.video_stream = main_video_stream(self._container)
        self.audio_streams = list(self._container.streams.audio)
        return rotation

    @property
    def container_metadata(self) -> dict[str, str]:
        return dict(self._container.metadata)

    def frames(self, on_audio: Callable[[Any], None] | None = None,
               window: Window | None = None) -> Iterator[Frame]:
        """Yield every frame in presentation order; raise RedactionError on any decode error.

        FFmpeg's H.264 decoder conceals damaged macroblocks and carries on; veil instead fails
        the file, because a concealed frame may show a face the detector never saw whole.
        A file that ends before its container says it should fails too, unless `salvage`.

        With a `window` (one segment of a long video, veil/segments.py), decoding starts at its
        keyframe and stops before its end; frames keep their index in the whole video, and only
        a window that runs to the end is held against the stated length. Audio is not read.
        """
        stream = self.video_stream
        stream.thread_type = "AUTO"
        # Against a whole-file duration, the other streams' ends count: demux them too.
        whole_file = self._stated is not None and not self._stated.video_only and window is None
        streams = [stream] + (self.audio_streams if (on_audio or whole_file) and window is None else [])
        if whole_file:
            streams += [s for s in self._container.streams.subtitles]
        index = 0
        if window is not None:
            index = window.first_index
            try:
                self._container.seek(window.lead_in, stream=stream, backward=True)
            except av.error.FFmpegError as exc:
                raise RedactionError(f"cannot seek to frame {index}: {_ffmpeg_message(exc)}",
                                     self.path) from None
        last_pts: int | None = None
        step = _pts_step(self.info)
        video_end = 0.0  # seconds: the end of the last frame decoded
        ends: dict[int, float] = {}  # seconds: the end of each other stream's last packet
        damage: list[str] = []
        cut_short = False  # salvaging: the data stopped inside the last video packet
        decoder_errors.watch(id(self), self.info.codec, damage)
        packets = iter(self._container.demux(streams))
        try:
            for packet in packets:
                if packet.stream.index != stream.index:
                    if packet.pts is not None and packet.time_base:
                        end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                        ends[packet.stream.index] = max(ends.get(packet.stream.index, 0.0), end)
                    if packet.stream.type == "audio" and packet.size and on_audio is not None:
                        on_audio(packet)
                    continue
                try:
                    if packet.is_corrupt:
                        raise RedactionError(f"damaged video data near frame {index}", self.path)
                    decoded = stream.decode(packet)
                    for offset, frame in enumerate(decoded):
                        self._check(frame, index + offset, damage)
                except (RedactionError, av.error.FFmpegError) as exc:
                    # A file cut inside a packet ends in damage; with nothing after it, salvaging
                    # keeps what came before. Damage with more video after it is never salvaged.
                    at_end = _no_more_video(packets, stream)
                    if self.salvage and at_end:
                        cut_short = True
                        # Refused by the parser, the packet never reached the decoder: the frames
                        # it still holds are whole. Damage it logged instead may belong to any
                        # frame in its threads, so those frames are dropped with it.
                        decoded = _drain(stream, damage) if isinstance(exc, av.error.FFmpegError) \
                            else []
                    else:
                        message = exc.message if isinstance(exc, RedactionError) else \
                            f"decoding failed at frame {index}: {_ffmpeg_message(exc)}"
                        if at_end:
                            message += ("; the file ends there (cut off?): --salvage writes the "
                                        "part before it")
                        raise RedactionError(message, self.path) from None
                for frame in decoded:
                    pts = frame.pts
                    if pts is None:
                        pts = 0 if last_pts is None else last_pts + step
                    elif last_pts is not None and pts <= last_pts:
                        # Duplicate or backwards timestamps (broken muxers): keep order and count.
                        pts = last_pts + 1
                    last_pts = pts
                    if window is not None and pts < window.lead_in:
                        continue  # the seek landed on an earlier keyframe
                    if window is not None and window.lead_out is not None and pts >= window.lead_out:
                        return
                    duration = frame.duration if frame.duration and frame.duration > 0 else step
                    video_end = max(video_end, float((pts + duration) * self.info.time_base))
                    yield Frame(index, pts, self.info.time_base, frame, self.info.rotation)
                    index += 1
                if cut_short:
                    break
        except av.error.FFmpegError as exc:  # from the demuxer
            raise RedactionError(f"decoding failed at frame {index}: {_ffmpeg_message(exc)}",
                                 self.path) from None
        finally:
            decoder_errors.unwatch(id(self))
        if not (self.salvage and damage):  # damage found only after the last frame: at the end
            self._check(None, index, damage)
        cut_short = cut_short or bool(damage)
        if index == 0:
            raise InputError("the video stream holds no decodable frames", self.path)
        self._check_length(index, video_end, ends, audio_read=on_audio is not None,
                           cut_short=cut_short)

    def _check_length(self, decoded: int, video_end: float, ends: dict[int, float],
                      audio_read: bool, cut_short: bool = False) -> None:
        """Fail a file that ends before its container says it does, or note it when salvaging.

        The video is held against its frame count or stated length; each sound track that is
        copied against its own stated length (a cut can take sound the video had no frames in).
        """
        rate = self.info.rate
        slack = _SLACK_FRAMES / float(rate) + _SLACK_S if rate else _SLACK_NO_RATE_S
        short: tuple[str, float, float] | None = None  # (problem, decoded_s, stated_s)
        if self._declared_frames:
            if decoded < self._declared_frames:
                stated_s = self._declared_frames / float(rate) if rate else video_end
                short = (f"only {decoded} of {self._declared_frames} frames could be decoded; "
                         "the file is truncated or damaged", video_end, stated_s)
        elif self._stated is not None:
            stated = self._stated
            reached = video_end if stated.video_only else \
                max([video_end, *ends.values()]) - stated.start
            if reached + slack < stated.seconds:
                short = (f"ends early: {reached:.1f} s of {stated.seconds:.1f} s ({decoded} "
                         "frames decoded); the file is truncated", reached, stated.seconds)
        for track in self.audio_streams if audio_read and short is None else []:
            tag = track.metadata.get("DURATION")
            stated_s = _clock_seconds(tag) if isinstance(tag, str) else None
            reached = ends.get(track.index, 0.0)
            if stated_s is not None and reached + _AUDIO_SLACK_S < stated_s:
                short = (f"ends early: its sound stops at {reached:.1f} s of the {stated_s:.1f} s "
                         "its track states; the file is truncated", reached, stated_s)
                break
        if short is None and cut_short:  # only when salvaging: the last packet was cut
            stated_s = (self._declared_frames / float(rate) if self._declared_frames and rate
                        else self._stated.seconds if self._stated is not None else video_end)
            short = ("its last video packet is cut off", video_end, stated_s)
        if short is None:
            return
        problem, decoded_s, stated_s = short
        if not self.salvage:
            raise RedactionError(f"{problem}; --salvage writes the part that decodes", self.path)
        self.salvaged = Salvaged(decoded_s=round(decoded_s, 3), stated_s=round(stated_s, 3),
                                 frames=decoded)

    def _check(self, frame: Any, index: int, damage: list[str]) -> None:
        if damage or (frame is not None and frame.is_corrupt):
            detail = f": {damage[0]}" if damage else ""
            raise RedactionError(f"damaged video data near frame {index} (the decoder could only "
                                 f"conceal it){detail}", self.path)

    def audio_packets(self) -> Iterator[Any]:
        """Every packet of the audio streams, demuxed from the start, in file order (the join
        copies them beside the segments' video)."""
        if not self.audio_streams:
            return
        try:
            for packet in self._container.demux(self.audio_streams):
                if packet.size:
                    yield packet
        except av.error.FFmpegError as exc:
            raise RedactionError(f"cannot read the audio: {_ffmpeg_message(exc)}", self.path) from None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drain(stream: Any, damage: list[str]) -> list[Any]:
    """The frames a decoder still holds after refusing a cut-off packet (frame threads and
    reordering keep several): they came from whole packets. None if draining shows damage."""
    damage.clear()  # what was logged belongs to the refused packet
    try:
        frames = stream.decode(None)
    except av.error.FFmpegError:
        return []
    if damage or any(frame.is_corrupt for frame in frames):
        return []
    return list(frames)


def _no_more_video(packets: Iterator[Any], stream: Any) -> bool:
    """Whether the demuxer holds no more of `stream`'s data (it reads, and drops, what is left)."""
    try:
        return not any(p.stream.index == stream.index and p.size for p in packets)
    except av.error.FFmpegError:
        return True


def _pts_step(info: VideoInfo) -> int:
    if info.rate:
        return max(1, int(round(1 / (info.rate * info.time_base))))
    return 1


def plane(image: Any, index: int, height: int, width: int) -> np.ndarray:
    """A writable view of one plane of an 8-bit planar frame, without the line padding."""
    plane = image.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :width]


def _even(image: Any) -> Any:
    """A painted yuv420p frame cut to an even width and height (4:2:0 H.264 needs them).

    Only a frame of odd size is copied; the cut column or row is the last, after painting.
    """
    width, height = image.width // 2 * 2, image.height // 2 * 2
    if (width, height) == (image.width, image.height):
        return image
    out = av.VideoFrame(width, height, "yuv420p")
    for index, (w, h) in enumerate([(width, height), (width // 2, height // 2), (width // 2, height // 2)]):
        plane(out, index, h, w)[:] = plane(image, index, h, w)
    return out


def output_format(target: Path) -> str:
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise RedactionError(f"cannot write video to a '{target.suffix}' file; use one of "
                             + ", ".join(sorted(_FORMATS)), target)
    return fmt


class VideoWriter:
    """Encodes painted pictures (yuv420p, or RGB where painting needed it) with their original
    timestamps; copies audio packets as is. It never looks at regions: painting is paint.py's."""

    def __init__(self, path: Path, target: Path, info: VideoInfo, audio_streams: list[Any],
                 config: Config, source_metadata: dict[str, str] | None = None, *,
                 container: str | None = None, template: Any | None = None) -> None:
        """`container`: write this container format instead of the target's, with the target's
        codec (a segment's part, joined later). `template`: copy the packets of this encoded
        video stream (`write_packet`) instead of encoding pictures (the join)."""
        self.path = path
        self.target = target
        fmt = output_format(target)
        # No "encoder: Lavf<version>" tag. Matroska and WebM must name a writing application in
        # their header: bitexact makes it plain "Lavf", with no version.
        options: dict[str, str] = {"fflags": "+bitexact"}
        if (container or fmt) in ("mp4", "mov"):
            # faststart moves the index to the front for playback while downloading.
            options["movflags"] = "+faststart"
            if config.keep_metadata:
                options["movflags"] += "+use_metadata_tags"
        try:
            self._container = av.open(str(path), "w", format=container or fmt, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise RedactionError(f"cannot create the output: {_ffmpeg_message(exc)}", target) from None
        self._encoding = template is None
        try:
            self._video = self._add_video(fmt, info, config) if template is None else \
                self._copy_video(template, info)
            self._audio = {}
            for stream in audio_streams:
                try:
                    out = self._container.add_stream_from_template(stream)
                except ValueError as exc:  # e.g. AAC into WebM
                    raise RedactionError(f"cannot copy the sound: {exc} (try --drop-audio)",
                                         target) from None
                out.metadata.clear()
                self._audio[stream.index] = out
            self._container.metadata.clear()
            if config.keep_metadata and source_metadata:
                allowed = _KEEP_TAGS + (_GPS_TAGS if config.keep_gps else ())
                for key, value in source_metadata.items():
                    if key in allowed:
                        self._container.metadata[key] = value
        except BaseException:
            self._container.close()
            raise
        self._started = False

    def _add_video(self, fmt: str, info: VideoInfo, config: Config) -> Any:
        rate = info.rate or Fraction(30)
        if fmt == "webm":
            options = dict(VP9_OPTIONS, crf=str(min(63, round(config.quality * 63 / 51))))
            stream = self._container.add_stream("libvpx-vp9", rate=rate, options=options)
        else:
            # a53cc=0: never pass closed captions from the source's frames into the output.
            options = {"crf": str(config.quality), "preset": X264_PRESET, "a53cc": "0"}
            if fmt == "avi":
                options["bf"] = "0"  # AVI stores no presentation times: B-frames would come out reordered
            stream = self._container.add_stream("libx264", rate=rate, options=options)
        # 4:2:0 needs an even width and height: an odd last column or row is cut off (`_even`).
        stream.width, stream.height, stream.pix_fmt = info.width // 2 * 2, info.height // 2 * 2, "yuv420p"
        # The input's time base on both the codec and the stream: pts pass through unrounded.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        stream.thread_count = 0
        stream.metadata.clear()
        try:  # opened here, so that a size or setting the encoder refuses is named as such
            stream.codec_context.open()
        except av.error.FFmpegError as exc:
            raise RedactionError(f"cannot encode this video ({info.width}x{info.height}): "
                                 f"{_ffmpeg_message(exc)}", self.target) from None
        return stream

    def _copy_video(self, template: Any, info: VideoInfo) -> Any:
        stream = self._container.add_stream_from_template(template)
        stream.time_base = info.time_base
        stream.metadata.clear()
        return stream

    def write_packet(self, packet: Any) -> None:
        """Copy one packet of the template's video stream (its timestamps are rescaled)."""
        packet.stream = self._video
        self._mux([packet])

    def write(self, image: Any, pts: int, time_base: Fraction) -> None:
        """Encode one painted picture (see `paint.paint_frame`) with its original timestamp.

        4:2:0 H.264 needs an even width and height: an odd last column or row is cut off here.
        """
        if image.format.name == "yuv420p":
            image = _even(image)
        elif image.width % 2 or image.height % 2:
            pixels = image.to_ndarray()
            image = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(pixels[:image.height // 2 * 2, :image.width // 2 * 2]),
                format=image.format.name)
        image.pts = pts
        image.time_base = time_base
        image.pict_type = av.video.frame.PictureType.NONE  # let x264 choose; don't copy the source's
        try:
            packets = self._video.encode(image)
        except (av.error.FFmpegError, ValueError) as exc:
            raise RedactionError(f"encoding failed: {_ffmpeg_message(exc)}", self.target) from None
        self._mux(packets)

    def write_audio(self, packet: Any) -> None:
        out = self._audio.get(packet.stream.index)
        if out is None:
            return
        packet.stream = out
        self._mux([packet])

    def _mux(self, packets: list[Any]) -> None:
        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, ValueError) as exc:
            message = _ffmpeg_message(exc)
            if not self._started and self._audio:
                message += " (the audio may not fit this container; try --drop-audio)"
            raise RedactionError(f"encoding failed: {message}", self.target) from None
        self._started = True

    def finish(self) -> None:
        """Flush the encoder and finalise the container (index, trailer)."""
        try:
            if self._encoding:
                self._mux(self._video.encode(None))
            self._container.close()
        except av.error.FFmpegError as exc:
            raise RedactionError(f"could not finalise the output: {_ffmpeg_message(exc)}",
                                 self.target) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
