"""Video review: one background pass decodes, detects and tracks, keeping previews and each frame's regions.

Regions come from the video pipeline's public `scan_video_file` (detector every k-th frame,
tracker in between), so the regions shown are the ones export computes again before the plan. Previews are JPEGs kept in
memory only (never on disk: they show people's faces); long videos keep every n-th frame.
"""

from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .._errors import VeilError
from .._types import Config
from ..detect.base import Detector

PREVIEW_FRAMES = 2000  # at most this many previews per video
PREVIEW_WIDTH = 960  # previews are scaled down to this; the page stretches them over the frame's
PREVIEW_QUALITY = 80  # coordinates, so boxes still line up. 2000 x ~70 kB keeps memory near 150 MB
MAX_EDITS = 20_000  # keep tracks, removed boxes and key frames in one export request


class VideoRequestError(ValueError):
    """The page sent video edits that make no sense; the message says which."""


@dataclass
class VideoAnalysis:
    """Progress and results of one video's review pass; read by request threads under `lock`."""

    state: str = "analysing"  # analysing | ready | failed
    phase: str = "reading"  # reading (decoding previews) | scanning (detect and track)
    read: int = 0
    done: int = 0
    total: int | None = None
    width: int = 0
    height: int = 0
    rate: float | None = None
    step: int = 1  # a preview is kept for every step-th frame
    regions: list[list[list[float]]] = field(default_factory=list)  # per frame: [x, y, w, h, track, score, source]
    times: list[float] = field(default_factory=list)
    previews: dict[int, bytes] = field(default_factory=dict)
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {"state": self.state, "phase": self.phase, "read": self.read,
                                   "done": self.done, "total": self.total,
                                   "width": self.width, "height": self.height, "rate": self.rate,
                                   "error": self.error}
            if self.state == "ready":
                out.update(frames=len(self.regions), regions=self.regions, times=self.times,
                           preview_step=self.step)
            return out

    def preview(self, frame: int) -> bytes | None:
        with self.lock:
            if frame < 0:
                return None
            return self.previews.get(frame - frame % self.step)


def _jpeg(pixels: Any) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels, "RGB")
    if image.width > PREVIEW_WIDTH:
        image = image.resize((PREVIEW_WIDTH, max(1, round(image.height * PREVIEW_WIDTH / image.width))),
                             Image.Resampling.BILINEAR)
    image.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def analyse(path: Path, config: Config, detector: Detector | None, analysis: VideoAnalysis) -> None:
    """Read the video once for previews, then scan it as export will (run in a thread)."""
    from ..media.video import VideoReader
    from ..pipeline import scan_file

    try:
        with VideoReader(path) as reader:
            info = reader.info
            step = max(1, math.ceil((info.frames or 0) / PREVIEW_FRAMES))
            with analysis.lock:
                analysis.width, analysis.height = info.width, info.height
                analysis.total = info.frames
                analysis.rate = float(info.rate) if info.rate else None
                analysis.step = step
            for frame in reader.frames():
                if frame.index % step == 0:
                    data = _jpeg(frame.pixels)
                    with analysis.lock:
                        analysis.previews[frame.index] = data
                        analysis.read = frame.index + 1
        with analysis.lock:
            analysis.phase = "scanning"
        # The public scan is exactly what export computes before applying the plan.
        for scan in scan_file(path, config, detector):
            row = [[*f.mask, f.track, round(f.score, 4), int(f.source)] for f in scan.faces]
            with analysis.lock:
                analysis.regions.append(row)  # type: ignore[arg-type]
                analysis.times.append(round(scan.time or 0.0, 6))
                analysis.done = len(analysis.regions)
        with analysis.lock:
            analysis.state = "ready"
    except VeilError as exc:
        with analysis.lock:
            analysis.state, analysis.error = "failed", exc.message
    except Exception as exc:  # noqa: BLE001 - shown on the page; nothing is written by a review
        with analysis.lock:
            analysis.state, analysis.error = "failed", f"{type(exc).__name__}: {exc}"


def _int(value: Any, name: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise VideoRequestError(f"{name} must be a whole number from {low}"
                                + (f" to {high}" if high is not None else ""))
    return value


def _box(value: Any, name: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise VideoRequestError(f"{name} must be [x, y, w, h]")
    return [float(v) for v in value]


def video_plan_lines(path: Path, analysis: VideoAnalysis, request: dict[str, Any]) -> tuple[list[str], int, int]:
    """Plan lines for the page's video edits; returns (lines, tracks kept, boxes removed).

    The page sends {"keep_tracks": [N, ...], "removed": [{"frame": f, "mask": [x, y, w, h]}],
    "added": [{"keys": [{"frame": f, "box": [x, y, w, h]}, ...]}]}.
    """
    with analysis.lock:
        frames, width, height = len(analysis.regions), analysis.width, analysis.height
        regions = analysis.regions
    keep = request.get("keep_tracks", [])
    removed = request.get("removed", [])
    added = request.get("added", [])
    for name, value in (("keep_tracks", keep), ("removed", removed), ("added", added)):
        if not isinstance(value, list):
            raise VideoRequestError(f"{name} must be a list")
    if len(keep) + len(removed) + sum(len(a.get("keys", [])) if isinstance(a, dict) else 1
                                      for a in added) > MAX_EDITS:
        raise VideoRequestError(f"at most {MAX_EDITS} edits per export")
    where = str(path)
    kept = sorted({_int(t, "keep_tracks") for t in keep})
    lines = [json.dumps({"keep_track": t, "path": where}) for t in kept]
    by_frame: dict[int, dict[tuple[int, ...], dict[str, Any]]] = {}  # frame -> mask -> face
    # List where each kept track was in every frame: the plan then releases those regions by
    # position, so a track numbered differently on export cannot unmask someone else.
    for frame, row in enumerate(regions):
        for x, y, w, h, track, _score, _source in row:
            if int(track) in kept:
                mask = (int(x), int(y), int(w), int(h))
                by_frame.setdefault(frame, {})[mask] = {"mask": list(mask), "track": int(track)}
    for item in removed:
        if not isinstance(item, dict):
            raise VideoRequestError("each removed box must be an object")
        frame = _int(item.get("frame"), "frame", 0, frames - 1)
        mask = [_int(v, "mask") for v in item.get("mask", [])] if isinstance(item.get("mask"), list) else None
        if mask is None or len(mask) != 4:
            raise VideoRequestError("a removed box needs mask [x, y, w, h]")
        # One listed face per region: a kept person's box marked "not a face" here is released
        # either way, and two entries for one region would pair only one of them.
        by_frame.setdefault(frame, {}).setdefault(tuple(mask), {"mask": mask})["remove"] = True
    for frame, faces in sorted(by_frame.items()):
        lines.append(json.dumps({"path": where, "frame": frame, "width": width, "height": height,
                                 "faces": list(faces.values())}))
    for item in added:
        if not isinstance(item, dict) or not isinstance(item.get("keys"), list) or not item["keys"]:
            raise VideoRequestError("each added box needs key frames")
        keys = []
        for key in item["keys"]:
            if not isinstance(key, dict):
                raise VideoRequestError("each key frame must be an object")
            keys.append({"frame": _int(key.get("frame"), "frame", 0, frames - 1),
                         "box": _box(key.get("box"), "box")})
        lines.append(json.dumps({"add_track": keys, "path": where}))
    return lines, len(kept), len(removed)


__all__ = ["VideoAnalysis", "VideoRequestError", "analyse", "video_plan_lines"]
