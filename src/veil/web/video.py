"""Video review: one background pass decodes, detects and tracks, keeping previews and each frame's regions.

Regions come from the pipeline's public `scan_file` (detector every k-th frame,
tracker in between), so the regions shown are the ones export computes again before the plan. Previews are JPEGs kept in
memory only (never on disk: they show people's faces); long videos keep every n-th frame.
"""

from __future__ import annotations

import io
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


__all__ = ["VideoAnalysis", "analyse"]
