"""The chain every mode runs: decode -> detect -> track -> regions -> edits -> paint -> encode.

This module holds the middle of the chain as generator functions over a stream of frames, each
taking the previous stage's output and yielding its own, in frame order:

- `detect` runs the detector on every k-th frame and on the last one;
- `track` links detections over time and adds masks between and around them;
- `regions` turns the tracked boxes into whole-pixel mask regions;
- `apply_edits` applies the user's edits (plan files, the review app; `edits.Edits`).

Reading and writing frames are `media/`'s job, masking them `paint.py`'s; `pipeline.py` joins
the whole chain for one file, and `runner.py` puts the decoder and the encoder in threads of
their own. A still is a one-frame stream through the same functions: the detector runs once and
the track stage passes its detections through, since one frame has no time to track over.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from ._types import Config, Detections, FaceRecord, MaskRegions
from .detect.base import Detector
from .edits import Edits
from .regions import SureMargins, rows_and_regions
from .report import face_records, lowest_score
from .track import TrackedFrame, Tracker, TrackerSettings


class Picture(Protocol):
    """What the stages need of a frame: its place in the stream, its size and its pixels."""

    @property
    def index(self) -> int: ...

    @property
    def size(self) -> tuple[int, int]: ...  # (width, height) of the upright picture

    @property
    def pixels(self) -> np.ndarray: ...  # (H, W, 3) uint8 RGB, upright


@dataclass(frozen=True, eq=False)
class StillFrame:
    """A still as the one frame of its stream."""

    pixels: np.ndarray
    index: int = 0
    time: float | None = None  # stills have no timeline

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass(frozen=True, eq=False)
class Sighting:
    """A frame after the detect stage: what the detector found, or None where it did not run."""

    frame: Any
    motion: np.ndarray | None  # the camera's motion since the previous frame (motion.py), if followed
    found: Detections | None


@dataclass(frozen=True, eq=False)
class PlannedFrame:
    """A frame ready to be painted: its regions, and the rows and computed regions behind them."""

    frame: Any
    regions: MaskRegions  # what is painted: the computed regions after the user's edits
    rows: Detections  # the tracked detections the computed regions came from, row for row
    computed: MaskRegions  # the regions veil computed
    origin: np.ndarray | None = None  # per region, its row of `computed` (-1: added); None: unedited

    @functools.cached_property
    def faces(self) -> tuple[FaceRecord, ...]:
        """One record per region; made only when asked (redaction needs none of them)."""
        return face_records(self.rows, self.regions, self.origin)

    @property
    def lowest_score(self) -> float | None:
        """The lowest detector score among the regions masked in this frame."""
        return lowest_score(self.rows, self.origin)


def detect(frames: Iterable[tuple[Any, np.ndarray | None]], detector: Detector, every: int = 1,
           prescale: float = 1.0) -> Iterator[Sighting]:
    """Run the detector on every `every`-th frame and on the last.

    `frames` pairs each frame with the camera's motion since the previous one, or None. With
    `prescale` < 1 the detector sees frames already scaled by it (one swscale pass, see
    `media.video.Frame.scaled_pixels`) and its boxes are mapped back. Each frame is held until
    the next arrives, so the last one is known.
    """
    def sight(frame: Any, motion: np.ndarray | None, last: bool) -> Sighting:
        if not (last or frame.index % every == 0):
            return Sighting(frame, motion, None)
        if prescale < 1.0:
            pixels, sx, sy = frame.scaled_pixels(round(max(frame.size) * prescale))
        else:
            pixels, sx, sy = frame.pixels, 1.0, 1.0
        found = detector(pixels)
        if (sx, sy) != (1.0, 1.0):
            found = found.scaled(sx, sy)
        return Sighting(frame, motion, found)

    waiting: tuple[Any, np.ndarray | None] | None = None
    for item in frames:
        if waiting is not None:
            yield sight(*waiting, last=False)
        waiting = item
    if waiting is not None:
        yield sight(*waiting, last=True)


def track(sightings: Iterable[Sighting], settings: TrackerSettings | None
          ) -> Iterator[tuple[Any, TrackedFrame]]:
    """Link detections over time; with no settings (a still), pass them through.

    The tracker holds a fixed look-ahead of frames back (`TrackerSettings.lookahead`), because a
    mask must start a few frames before a face is first detected and bridge gaps between
    detections.
    """
    if settings is None:
        for sighting in sightings:
            found = sighting.found if sighting.found is not None else Detections.empty()
            yield sighting.frame, TrackedFrame(sighting.frame.index, found,
                                               np.zeros(len(found), np.float32),
                                               sighting.found is not None)
        return
    tracker: Tracker | None = None  # made at the first frame, which gives the frame size
    held: collections.deque[Any] = collections.deque()
    for sighting in sightings:
        if tracker is None:
            tracker = Tracker(replace(settings, frame_size=sighting.frame.size))
        held.append(sighting.frame)
        for tracked in tracker.push(sighting.frame.index, sighting.found, sighting.motion):
            yield _paired(held.popleft(), tracked)
    for tracked in tracker.flush() if tracker is not None else []:
        yield _paired(held.popleft(), tracked)


def _paired(frame: Any, tracked: TrackedFrame) -> tuple[Any, TrackedFrame]:
    assert frame.index == tracked.index
    return frame, tracked


def regions(tracked: Iterable[tuple[Any, TrackedFrame]], config: Config,
            sure: SureMargins = None) -> Iterator[PlannedFrame]:
    """Mask regions for the tracked rows (margins, exact edge clipping); see regions.py."""
    for frame, rows in tracked:
        width, height = frame.size
        computed, kept = rows_and_regions(rows.detections, width, height, config, rows.grow, sure)
        yield PlannedFrame(frame, computed, kept, computed)


def apply_edits(planned: Iterable[PlannedFrame], edits: Edits | None) -> Iterator[PlannedFrame]:
    """The user's edits applied to each frame's computed regions (none: unchanged)."""
    if edits is None:
        yield from planned
        return
    for frame in planned:
        width, height = frame.frame.size
        final, origin = edits.apply(frame.frame.index, frame.computed, width, height)
        yield replace(frame, regions=final, origin=origin)


def chain(frames: Iterable[tuple[Any, np.ndarray | None]], detector: Detector, config: Config, *,
          every: int = 1, prescale: float = 1.0, tracker: TrackerSettings | None = None,
          sure: SureMargins = None, user_edits: Edits | None = None) -> Iterator[PlannedFrame]:
    """detect -> track -> regions -> edits over a stream of (frame, motion) pairs."""
    sightings = detect(frames, detector, every, prescale)
    return apply_edits(regions(track(sightings, tracker), config, sure), user_edits)


__all__ = ["Picture", "StillFrame", "Sighting", "PlannedFrame", "detect", "track", "regions",
           "apply_edits", "chain"]
