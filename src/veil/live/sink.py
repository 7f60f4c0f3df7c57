"""The live output: x264 (zerolatency, 2 s keyframes) and AAC, muxed as the target expects.

Targets: rtmp(s):// gets FLV (H.264 + AAC, what platforms take); udp://, srt:// and `-` get
MPEG-TS; a path ending in .m3u8 or / is an HLS playlist and its segments; a .ts, .flv, .mkv or
.mp4 path is a file. Files are written so that a file cut off at any moment still plays: MPEG-TS
and FLV by nature, MP4 fragmented (a fragment per keyframe), Matroska in clusters.

Each target has its own encoders (the recording's is a second x264 at the same settings), so a
recording never depends on a network peer. Nothing but the video and the one audio stream is
written: no tags, no data or subtitle streams, no encoder version (bitexact).
"""

from __future__ import annotations

import contextlib
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from .._errors import OutputError
from .source import AUDIO_RATE

# ultrafast: x264's cheapest preset, so the detector keeps the CPU (the issue allows veryfast or
# faster); zerolatency: no frame look-ahead and no B-frames, so a frame is sent as it is encoded.
X264_PRESET = "ultrafast"
KEYFRAME_S = 2.0
AAC_FRAME = 1024
_NETWORK_TS = ("udp://", "srt://", "tcp://")


def target_format(target: str, *, network: bool = True) -> tuple[str, str, dict[str, str]]:
    """(what to open, FFmpeg format, muxer options) for an output or recording target."""
    lower = target.lower()
    if network and target == "-":
        return "pipe:1", "mpegts", {}
    if network and lower.startswith(("rtmp://", "rtmps://")):
        return target, "flv", {"flvflags": "no_duration_filesize"}
    if network and lower.startswith(_NETWORK_TS):
        return target, "mpegts", {}
    if "://" in target:
        raise OutputError(f"cannot write to {target.split('://')[0]}:// (rtmp://, udp://, srt://, "
                          "a file or a folder for HLS)" if network else
                          "the recording must be a file (.ts, .mkv, .mp4 or .flv)", target)
    path = Path(target)
    if network and (lower.endswith("/") or path.is_dir() or lower.endswith(".m3u8")):
        playlist = path if lower.endswith(".m3u8") else path / "index.m3u8"
        if not playlist.parent.is_dir():
            raise OutputError("the folder for the HLS playlist does not exist", target)
        return str(playlist), "hls", {"hls_time": str(int(KEYFRAME_S)), "hls_list_size": "6",
                                      "hls_flags": "delete_segments+independent_segments"}
    suffix = path.suffix.lower()
    if suffix in (".ts", ".m2ts", ".mts"):
        return target, "mpegts", {}
    if suffix == ".flv":
        return target, "flv", {}
    if suffix == ".mkv":
        return target, "matroska", {"live": "1"}
    if suffix in (".mp4", ".m4v", ".mov"):
        return target, "mp4", {"movflags": "+frag_keyframe+empty_moov+default_base_moof"}
    raise OutputError(f"cannot write a live stream to a '{suffix or path.name}' file; use .ts, "
                      ".mkv, .mp4 or .flv", target)


class _Output:
    """One target: its container, an x264 encoder and, with audio, an AAC one."""

    def __init__(self, target: str, network: bool, size: tuple[int, int], fps: float,
                 quality: int, audio: bool, wait_s: float) -> None:
        self.target = target
        url, fmt, options = target_format(target, network=network)
        options["fflags"] = "+bitexact"
        try:
            self.container = av.open(url, "w", format=fmt, options=options, timeout=wait_s)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"cannot open the output: {_message(exc)}", target) from None
        try:
            self.rate = Fraction(fps).limit_denominator(1001)
            keyint = max(1, round(KEYFRAME_S * fps))
            video = self.container.add_stream("libx264", rate=self.rate, options={
                "preset": X264_PRESET, "tune": "zerolatency", "crf": str(quality), "a53cc": "0",
                "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"})
            video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
            video.time_base = video.codec_context.time_base = 1 / self.rate
            video.metadata.clear()
            self.video = video
            self.audio = None
            if audio:
                sound = self.container.add_stream("aac", rate=AUDIO_RATE)
                sound.layout = "stereo"
                sound.time_base = sound.codec_context.time_base = Fraction(1, AUDIO_RATE)
                sound.metadata.clear()
                self.audio = sound
            self.container.metadata.clear()
        except BaseException:
            self.close()
            raise
        self._samples = 0
        self._pending = np.zeros((2, 0), np.float32)

    def write_video(self, image: Any, slot: int) -> None:
        image.pts = slot
        image.time_base = 1 / self.rate  # the codec's; the muxer may change the stream's
        image.pict_type = av.video.frame.PictureType.NONE
        self._mux(self.video.encode(image))

    def write_audio(self, samples: np.ndarray) -> None:
        if self.audio is None:
            return
        self._pending = np.concatenate([self._pending, samples], axis=1)
        while self._pending.shape[1] >= AAC_FRAME:
            chunk = np.ascontiguousarray(self._pending[:, :AAC_FRAME])
            self._pending = self._pending[:, AAC_FRAME:]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self._samples
            frame.time_base = Fraction(1, AUDIO_RATE)
            self._samples += AAC_FRAME
            self._mux(self.audio.encode(frame))

    def _mux(self, packets: list[Any]) -> None:
        try:
            self.container.mux(packets)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise OutputError(f"writing failed: {_message(exc)}", self.target) from None

    def finish(self) -> None:
        """Flush the encoders and write the trailer; a dead peer only loses its trailer."""
        with contextlib.suppress(OutputError):
            self._mux(self.video.encode(None))
            if self.audio is not None:
                self._mux(self.audio.encode(None))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


def _message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


class AudioLine:
    """Decoded audio placed on the output's sample clock, taken out in step with the video.

    Audio is put where its input time falls on the output timeline, so it stays in sync across
    delays, repeats and reconnects; any span with no audio (a stall, a curtain) is silence.
    """

    def __init__(self) -> None:
        self._pieces: list[tuple[int, np.ndarray]] = []
        self._lock = threading.Lock()
        self.position = 0  # samples already taken

    def add(self, start: int, samples: np.ndarray) -> None:
        with self._lock:
            if start + samples.shape[1] > self.position and len(self._pieces) < 10_000:
                self._pieces.append((start, samples.astype(np.float32, copy=False)))

    def take(self, end: int) -> np.ndarray:
        """Samples from the current position up to `end`, silence where none came."""
        out = np.zeros((2, max(0, end - self.position)), np.float32)
        with self._lock:
            keep = []
            for start, samples in self._pieces:
                stop = start + samples.shape[1]
                lo, hi = max(start, self.position), min(stop, end)
                if hi > lo:
                    out[:, lo - self.position:hi - self.position] = samples[:2, lo - start:hi - start]
                if stop > end:
                    keep.append((start, samples))
            self._pieces = keep
            self.position = max(self.position, end)
        return out


class LiveSink:
    """The output and the optional recording, opened at the first frame (its size and rate)."""

    def __init__(self, output: str, record: str | None, quality: int, audio: bool,
                 wait_s: float) -> None:
        # Checked before anything is read, so a bad target is a usage error at once.
        target_format(output)
        if record is not None:
            target_format(record, network=False)
        self.output, self.record, self.quality, self.wait_s = output, record, quality, wait_s
        self.audio = AudioLine() if audio else None
        self._outputs: list[_Output] = []
        self._fps = 30.0

    def open(self, size: tuple[int, int], fps: float) -> None:
        self._fps = fps
        if self.record is not None:
            self._outputs.append(_Output(self.record, False, size, fps, self.quality,
                                         self.audio is not None, self.wait_s))
        self._outputs.append(_Output(self.output, True, size, fps, self.quality,
                                     self.audio is not None, self.wait_s))

    def write(self, image: Any, slot: int) -> None:
        """One output slot; the audio up to the end of this slot goes with it."""
        samples = None
        if self.audio is not None:
            samples = self.audio.take(round((slot + 1) * AUDIO_RATE / self._fps))
        for output in self._outputs:
            output.write_video(image, slot)
            if samples is not None:
                output.write_audio(samples)

    def finish(self) -> None:
        for output in self._outputs:
            output.finish()
