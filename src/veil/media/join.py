"""Joining the parts of a long video redacted in segments (veil/segments.py) into one file.

Each part holds the painted, encoded frames of one segment's core, in an intermediate MP4 (it
keeps every packet's time exactly) with the target's codec and encoder settings, and starts with
a keyframe. The join copies their packets, in order, into
the target's container, with the source's audio streams copied from the source beside them;
nothing is decoded or encoded again. Packets of all streams are written in time order, so the
muxer never has to hold hours of one stream while waiting for another.
"""

from __future__ import annotations

import heapq
from fractions import Fraction
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import av.error

from .._errors import RedactionError
from .._types import Config
from .video import VideoReader, VideoWriter, main_video_stream

# Targets whose container stores each frame's time: their parts can be joined as they are.
# (AVI counts frames from 0 in every file, so a long AVI is redacted in one piece.)
JOINABLE = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm"})
# The parts' container, whatever the target's: MP4 keeps every packet's decoding time (Matroska
# leaves it unset on the first packets after a keyframe, which a muxer then refuses) and any time
# base exactly, and holds the targets' codecs (H.264, VP9).
PART_FORMAT = "mp4"
PART_SUFFIX = ".mp4"


def join_parts(source: Path, parts: Sequence[Path], starts: Sequence[int], tmp: Path, target: Path,
               config: Config) -> int:
    """Write `parts`' video and `source`'s audio to `tmp` (in `target`'s format); return the frames.

    Each part's timestamps start at 0 (pipeline.redact_segment); `starts` are the pts, in the
    source's time base, that its first frame had there, and are added back exactly. The caller
    decides where `tmp` goes (a staged output, published by the batch driver).
    """
    if not parts or len(parts) != len(starts):
        raise RedactionError("no segments to join", source)
    with VideoReader(source) as reader, av.open(str(parts[0])) as first:
        template = main_video_stream(first)
        if template is None:
            raise RedactionError(f"segment file {parts[0].name} holds no video", source)
        audio = reader.audio_streams if not config.drop_audio else []
        writer = VideoWriter(tmp, target, reader.info, audio, config, reader.container_metadata,
                             template=template)
        try:
            frames = 0
            video = _video_packets(parts, [Fraction(start) * reader.info.time_base for start in starts],
                                   source)
            sound = _timed(reader.audio_packets()) if audio else iter(())
            for _, kind, packet in heapq.merge(video, sound, key=lambda item: item[0]):
                if kind == 0:
                    writer.write_packet(packet)
                    frames += 1
                else:
                    writer.write_audio(packet)
            writer.finish()
        finally:
            writer.close()
    return frames


def _seconds(stamp: int | None, packet: Any) -> float | None:
    return float(stamp * packet.time_base) if stamp is not None and packet.time_base else None


def _timed(packets: Iterator[Any]) -> Iterator[tuple[float, int, Any]]:
    """Audio packets with their decoding time in seconds (the order the muxer wants)."""
    last = 0.0
    for packet in packets:
        last = _seconds(packet.dts if packet.dts is not None else packet.pts, packet) or last
        yield last, 1, packet


def _video_packets(parts: Sequence[Path], starts: Sequence[Fraction],
                   source: Path) -> Iterator[tuple[float, int, Any]]:
    """The parts' video packets in order, moved to their start (`starts`, in seconds), with their
    decoding time in seconds. A packet without a dts takes the time of the one before it (0 for
    the first)."""
    last: float | None = None
    for part, start in zip(parts, starts):
        try:
            with av.open(str(part)) as container:
                stream = main_video_stream(container)
                if stream is None:
                    raise RedactionError(f"segment file {part.name} holds no video", source)
                offset = start / stream.time_base
                if offset.denominator != 1:
                    raise RedactionError(f"segment file {part.name} cannot start at {float(start)} s "
                                         f"in its time base {stream.time_base}", source)
                for packet in container.demux(stream):
                    if not packet.size:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + int(offset)
                    packet.dts = None if packet.dts is None else packet.dts + int(offset)
                    dts = _seconds(packet.dts, packet)
                    if dts is not None and last is not None and dts <= last:
                        raise RedactionError(f"segment file {part.name} overlaps the one before "
                                             f"it ({dts:.3f} s <= {last:.3f} s)", source)
                    last = dts if dts is not None else last
                    yield (last or 0.0), 0, packet
        except av.error.FFmpegError as exc:
            raise RedactionError(f"cannot read segment file {part.name}: "
                                 f"{exc.strerror or exc}", source) from None


__all__ = ["join_parts", "JOINABLE", "PART_FORMAT", "PART_SUFFIX"]
