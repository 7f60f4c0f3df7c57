"""The delay line: the file pipeline's stages over a live stream, with a look-ahead of --delay.

A frame leaves the stages only once the tracker has seen the frames after it that the delay
allows (`TrackerSettings.lookahead`), so a face first detected at frame t is also masked on the
frames before t still held (the tracker pads a track backwards from its first detection: backward
fill) and a short miss between detections is bridged by interpolation, not extrapolation.

The line is the stages' own hold: the detect stage keeps one frame (to know the last), the
tracker `lookahead` more. `--delay` sets their total; the detector stride is lowered where the
line is too short to bridge it (a stride k needs gaps of 2k-1 frames).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import av
import numpy as np

from .._types import Config
from ..detect.base import Detector
from ..paint import paint_frame
from ..pipeline import StageSettings, cached_detector, planned_frames, with_camera
from ..presets import live_settings, sure_margins, tracker_settings


@dataclass(frozen=True)
class DelayLine:
    """How many frames the stages hold, and the stride that fits in them."""

    frames: int  # total frames held: the detect stage's one plus the tracker's look-ahead
    every: int  # detector stride
    gap: int  # tracker: longest miss bridged
    pad: int  # tracker: frames masked before a first (and after a last) detection


def delay_line(delay_s: float, fps: float, preset_every: int) -> DelayLine:
    """The line for `delay_s` at `fps`: pad is the whole look-ahead (backward fill over every
    frame still held); the stride drops to what the gap can bridge."""
    frames = max(2, round(delay_s * fps))  # the detect stage and tracker hold 2 at the least
    lookahead = frames - 1
    every = max(1, min(preset_every, lookahead // 2))
    gap = max(0, lookahead - 1)
    return DelayLine(frames, every, gap, gap)


def live_stages(config: Config, fps: float, delay_s: float, detector: Detector | None = None,
                scale: float = 1.0) -> tuple[StageSettings, DelayLine]:
    """The stages for a stream at `fps`: the live preset (presets.LIVE_VIDEO), its tracker's
    timing set by the delay line. A caller's detector gets full frames (as for files). `scale`
    shrinks the detector's input further while veil is behind (live/degrade.py)."""
    settings = live_settings(config)
    line = delay_line(delay_s, fps, settings.detect_every)
    base = tracker_settings(config, fps, line.every, settings.tracker)
    tracker = replace(base, gap_frames=min(base.gap_frames, line.gap), pad_frames=line.pad)
    assert tracker.lookahead + 1 <= line.frames
    prescale = (1.0 if detector is not None else settings.scale) * scale
    detector = detector or cached_detector(settings.detector, config.threads)
    return StageSettings(detector, every=line.every, prescale=prescale, tracker=tracker,
                         camera_motion=settings.camera_motion, sure=sure_margins(config)), line


def masked_frames(frames: Iterable[Any], stages: StageSettings, config: Config
                  ) -> Iterator[tuple[Any, Any]]:
    """(frame, painted picture) for each frame, through the stages; `fit` scales it after, so
    a scaled picture never shows a pixel the masks did not cover at full size."""
    for planned in planned_frames(with_camera(frames, stages), stages, config):
        yield planned.frame, paint_frame(planned.frame, planned.regions, config.mask)


def fit(image: Any, size: tuple[int, int]) -> Any:
    """The picture as yuv420p at `size` (the output's, fixed when it opened)."""
    width, height = size
    if (image.width, image.height, image.format.name) == (width, height, "yuv420p"):
        return image
    return image.reformat(width=width, height=height, format="yuv420p")


def curtain(size: tuple[int, int]) -> Any:
    """A fully masked picture: black (limited range) at the output's size."""
    width, height = size
    frame = av.VideoFrame(width, height, "yuv420p")
    for index, value in ((0, 16), (1, 128), (2, 128)):
        np.frombuffer(frame.planes[index], np.uint8)[:] = value
    return frame
