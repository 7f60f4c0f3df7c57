"""Long videos in segments: where to cut one video so that its parts can be redacted apart.

A 10-hour file as one task is one worker from start to end, and a kill loses all of it. Cut into
segments of about ten minutes, its parts run on every worker of a batch (or a Ray cluster) at
once, and a killed batch redoes only the segments it had not finished (archive/driver.py).

Every segment's *core* starts at a keyframe, so its frames can be decoded and encoded on their
own, and the cores tile the video: each frame is painted by exactly one segment. The frames
around a core are decoded too (the *lead-in* from an earlier keyframe, the *lead-out* after the
core), so the tracker sees a face coming into the core and leaving it as it would in one pass:
masks are carried at most `track_hold_s` past a detection and bridged over `track_gap_s`, so an
overlap of twice the longer of the two and a second more gives every core frame the detections a
whole-file pass would use. Frames of the overlaps are painted only by the segment whose core
holds them.

Cut points are found in the packet index alone (demuxing, no decoding), by presentation time,
never by frame count, so variable frame rates cut where they should.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ._errors import InputError
from ._types import Config
from .media.video import main_video_stream

# A segment's length, and the shortest video that is split at all: a video under twice the
# segment length is one task (a single segment would only add a join).
SEGMENT_S = 600.0
# Seconds decoded before and after a core beyond the tracker's reach (see overlap_s).
OVERLAP_EXTRA_S = 1.0


@dataclass(frozen=True)
class KeyframeIndex:
    """Where a video's frames are, from its packets: every frame's pts in presentation order, and
    the pts of the frames a decoder can start from."""

    time_base: Fraction
    frames: tuple[int, ...]  # pts of every frame, ascending
    keyframes: tuple[int, ...]  # pts of the keyframes, ascending

    def seconds(self, pts: int) -> float:
        return float((pts - self.frames[0]) * self.time_base)

    @property
    def duration(self) -> float:
        return self.seconds(self.frames[-1]) if self.frames else 0.0


@dataclass(frozen=True)
class Segment:
    """One part of a video: the frames it paints (its core, `start` <= pts < `end`) and the frames
    it decodes for the tracker (from `lead_in`, a keyframe, to before `lead_out`).

    `first_index` is the frame index of `lead_in` in the whole video, so frame numbers in reports
    and plans are the video's, not the segment's. `end` and `lead_out` are None for the last
    segment (to the end of the video)."""

    number: int
    count: int
    lead_in: int
    start: int
    end: int | None
    lead_out: int | None
    first_index: int
    frames: int  # frames in the core

    @property
    def name(self) -> str:
        return f"segment {self.number + 1} of {self.count}"


def index_video(path: Path) -> KeyframeIndex:
    """The packet index of `path`'s main video stream (no frame is decoded)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = main_video_stream(container)
            if stream is None:
                raise InputError("has no video stream", path)
            frames, keyframes = [], []
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size:
                    continue
                frames.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
            time_base = stream.time_base or Fraction(1, 90000)
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read the video's packets: {exc.strerror or exc}", path) from None
    return KeyframeIndex(time_base, tuple(sorted(frames)), tuple(sorted(keyframes)))


def stated_seconds(path: Path) -> float | None:
    """The duration a video's header states (None if unreadable): the cheap estimate for
    planning workers, before the packet index is read."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return container.duration / av.time_base if container.duration else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def overlap_s(config: Config) -> float:
    """Seconds decoded on each side of a core (see the module docstring)."""
    return 2 * max(config.track_hold_s, config.track_gap_s) + OVERLAP_EXTRA_S


def split(index: KeyframeIndex, segment_s: float, overlap: float) -> list[Segment]:
    """Cores of about `segment_s` seconds, each starting at a keyframe, with `overlap` seconds of
    frames decoded on each side. One segment (the whole video) when it is shorter than two
    segments or has no keyframe to cut at."""
    frames = index.frames
    if not frames:
        return []
    starts = [frames[0]]
    if segment_s > 0 and index.duration >= 2 * segment_s:
        step = segment_s
        wanted = step
        for key in index.keyframes:
            seconds = index.seconds(key)
            if seconds >= wanted and index.duration - seconds >= segment_s / 2:
                starts.append(key)
                wanted = seconds + step
    segments = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else None
        lead_in = _keyframe_at_or_before(index, _pts_after(index, start, -overlap)) if number else start
        lead_out = None if end is None else _pts_after(index, end, overlap)
        if lead_out is not None and lead_out > frames[-1]:
            lead_out = None
        first = bisect.bisect_left(frames, lead_in)
        core = (bisect.bisect_left(frames, end) if end is not None else len(frames)) \
            - bisect.bisect_left(frames, start)
        segments.append(Segment(number, len(starts), lead_in, start, end, lead_out, first, core))
    return segments


def _pts_after(index: KeyframeIndex, pts: int, seconds: float) -> int:
    return pts + int(round(seconds / index.time_base))


def _keyframe_at_or_before(index: KeyframeIndex, pts: int) -> int:
    position = bisect.bisect_right(index.keyframes, pts) - 1
    return index.keyframes[max(position, 0)]


__all__ = ["KeyframeIndex", "Segment", "index_video", "split", "overlap_s", "stated_seconds",
           "SEGMENT_S"]
