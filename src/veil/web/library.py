"""The review app's state: the media files it may show (by index only), their scans and uploaded plans.

Files are fixed when the server starts and are referred to by their index in that list; no name
from a request ever becomes a filesystem path, and every read checks the file is still the one
listed (files.py). The page's edits become an Edits in edits.py; exports run in export.py.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .._errors import InputError, VeilError
from .._types import Config, Detections, MaskRegions, MaskStyle, RegionSource
from ..batch import collect_jobs
from ..detect.base import Detector
from ..media.image import read_image
from ..media.kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..pipeline import scan_image
from ..edits import Edits, FaceAction, parse_plan
from .edits import still_plan, video_plan
from .errors import RequestError
from .export import ExportJob, ExportOptions, Exports
from .files import MediaItem, check_unchanged, opened
from .video import VideoAnalysis, analyse

# Regions whose detection score is under this are drawn as "check this one".
LOW_CONFIDENCE = 0.5
MAX_PLAN_UPLOADS = 200  # per server run


@dataclass
class _Scan:
    detections: Detections
    computed: MaskRegions
    width: int
    height: int


@dataclass
class Library:
    """Everything the server knows; methods are safe to call from several request threads."""

    root: Path
    items: list[MediaItem]
    config: Config = Config()
    output_dir: Path | None = None
    detector: Detector | None = None
    exports: Exports = field(default_factory=Exports)
    _scans: dict[int, _Scan] = field(default_factory=dict)
    _plans: dict[int, Edits] = field(default_factory=dict)
    _pictures: dict[int, bytes] = field(default_factory=dict)
    _uploads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scan_locks: dict[int, threading.Lock] = field(default_factory=dict)
    _videos: dict[int, VideoAnalysis] = field(default_factory=dict)

    @classmethod
    def open(cls, target: Path, config: Config = Config(), output_dir: Path | None = None,
             detector: Detector | None = None) -> Library:
        """Serve one file (its folder is the root) or every picture and video under a folder."""
        target = target.resolve()
        if target.is_dir():
            root, files = target, [j.source for j in collect_jobs([target], None)]
        elif target.is_file():
            root, files = target.parent, [target]
        else:
            raise InputError("no such file or folder", target)
        media = [f.resolve() for f in files if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
        # Only files really under the root, even through symbolic links.
        media = [f for f in media if f.is_relative_to(root)]
        items = []
        for f in media:
            kind = "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image"
            item = MediaItem.pinned(len(items), f, f.relative_to(root).as_posix(), kind)
            if item is not None:
                items.append(item)
        return cls(root, items, config, output_dir.resolve() if output_dir else None, detector)

    def item(self, item_id: int, kind: str | None = None) -> MediaItem:
        if not 0 <= item_id < len(self.items):
            raise RequestError("no such file", 404)
        item = self.items[item_id]
        if kind is not None and item.kind != kind:
            raise RequestError(f"file {item_id} is not a {kind}", 404)
        return item

    def listing(self) -> dict[str, Any]:
        return {"folder": str(self.root), "files": [{"id": i.id, "name": i.name, "kind": i.kind} for i in self.items],
                "output_folder": str(self.output_dir) if self.output_dir else None,
                "low_confidence": LOW_CONFIDENCE,
                "mask_styles": [{"value": m.value, "reversible": m.reversible} for m in MaskStyle]}

    # -- videos ----------------------------------------------------------------------------------

    def video(self, item_id: int) -> dict[str, Any]:
        """The video's review pass: started on first request, then its progress and results."""
        item = self.item(item_id, "video")
        with self._lock:
            analysis = self._videos.get(item_id)
        if analysis is None:
            check_unchanged(item)  # the review pass reads it by path, right after this
            with self._lock:
                analysis = self._videos.get(item_id)
                if analysis is None:
                    analysis = self._videos[item_id] = VideoAnalysis()
                    threading.Thread(target=analyse, args=(item.path, self.config, self.detector, analysis),
                                     name=f"veil-review-video-{item_id}", daemon=True).start()
        return {"file": item_id, **analysis.status()}

    def video_frame(self, item_id: int, frame: int) -> bytes:
        self.item(item_id, "video")
        with self._lock:
            analysis = self._videos.get(item_id)
        data = analysis.preview(frame) if analysis is not None else None
        if data is None:
            raise RequestError("no such frame (yet)", 404)
        return data

    def _ready_video(self, item_id: int) -> VideoAnalysis:
        with self._lock:
            analysis = self._videos.get(item_id)
        if analysis is None or analysis.status()["state"] != "ready":
            raise RequestError("the video has not been analysed yet", 409)
        return analysis

    # -- pictures and scans ----------------------------------------------------------------------

    def picture(self, item_id: int) -> bytes:
        """The upright picture as a metadata-free JPEG, in the coordinates the regions use."""
        item = self.item(item_id, "image")
        with opened(item) as readable:  # checked on every request, cached copy or not
            with self._lock:
                cached = self._pictures.get(item_id)
            if cached is not None:
                return cached
            still = read_image(readable, self.config.max_pixels)
        buffer = io.BytesIO()
        Image.fromarray(still.pixels, "RGB").save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        with self._lock:
            if len(self._pictures) > 16:
                self._pictures.pop(next(iter(self._pictures)))
            self._pictures[item_id] = data
        return data

    def _scan(self, item_id: int) -> _Scan:
        item = self.item(item_id, "image")
        with self._lock:
            lock = self._scan_locks.setdefault(item_id, threading.Lock())
        with lock, opened(item) as readable:  # one detection per file, however many requests ask at once
            with self._lock:
                cached = self._scans.get(item_id)
            if cached is not None:
                return cached
            still = read_image(readable, self.config.max_pixels)
            detections, computed = scan_image(still.pixels, self.config, self.detector)
            scan = _Scan(detections, computed, still.width, still.height)
            with self._lock:
                self._scans[item_id] = scan
            return scan

    def regions(self, item_id: int) -> dict[str, Any]:
        """veil's regions for a file with any uploaded plan applied, as the page draws them."""
        scan = self._scan(item_id)
        with self._lock:
            plan = self._plans.get(item_id, Edits.empty())
        reviewed = plan.review(0, scan.computed, scan.width, scan.height)
        regions = []
        for r in reviewed:
            x0, y0, x1, y1 = r.box
            score = float(scan.detections.scores[r.origin]) if 0 <= r.origin < len(scan.detections) else None
            regions.append({"mask": [x0, y0, x1 - x0, y1 - y0], "score": score, "action": r.action.value,
                            "added": r.source is RegionSource.MANUAL, "track": r.track})
        return {"file": item_id, "width": scan.width, "height": scan.height, "regions": regions}

    def load_plan(self, item_id: int, text: str) -> dict[str, Any]:
        """Apply an uploaded plan file to one picture; its paths are matched against that file only."""
        item = self.item(item_id, "image")
        with self._lock:
            if self._uploads >= MAX_PLAN_UPLOADS:
                raise RequestError(f"at most {MAX_PLAN_UPLOADS} plan uploads per run", 413)
            self._uploads += 1
        try:
            plan_file = parse_plan(text.splitlines(), "uploaded plan", [self.root])
            plan = plan_file.for_input(item.path)
            scan = self._scan(item_id)
            plan.review(0, scan.computed, scan.width, scan.height)  # size and region checks
        except VeilError as exc:
            raise RequestError(exc.message) from None
        if not plan:
            raise RequestError(f"the plan says nothing about {item.name} (its \"path\" values must "
                               "name this file)")
        with self._lock:
            self._plans[item_id] = plan
        return self.regions(item_id)

    # -- export ----------------------------------------------------------------------------------

    def start_export(self, item_id: int, request: Any) -> ExportJob:
        """Check the page's edits and choices, then start the export (see export.py)."""
        item = self.item(item_id)
        if not isinstance(request, dict):
            raise RequestError("expected a JSON object")
        options = ExportOptions.from_request(request)
        if item.kind == "video":
            analysis = self._ready_video(item_id)
            plan, kept, removed = video_plan(analysis, request)
        else:
            scan = self._scan(item.id)
            plan = still_plan(request.get("regions", []), scan.width, scan.height)
            try:
                actions = [r.action for r in plan.review(0, scan.computed, scan.width, scan.height)]
            except VeilError as exc:
                raise RequestError(exc.message) from None
            kept, removed = actions.count(FaceAction.KEEP), actions.count(FaceAction.REMOVE)
        target = options.target(item, self.output_dir)
        # The caller's detector or none, so the pipeline picks the settings the review pass used
        # for this kind of file (video track ids must match the page's; a dithered still gets its
        # smoothed view and lowered thresholds, as `veil redact` gives it).
        return self.exports.start(item, options, target, self.config, plan, self.detector, kept,
                                  removed)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.exports.job(job_id)


__all__ = ["Library", "MediaItem", "ExportJob", "RequestError", "LOW_CONFIDENCE"]
