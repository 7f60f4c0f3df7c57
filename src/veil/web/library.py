"""The review app's state: the media files it may show (by index only), their scans, plans and exports.

Files are fixed when the server starts and are referred to by their index in that list; no name
from a request ever becomes a filesystem path. Exports run the real pipeline (`redact_file` with
an EditPlan built from the page's edits) in a background thread.
"""

from __future__ import annotations

import enum
import io
import json
import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from .._errors import InputError, VeilError
from .._types import Config, Detections, MaskPlan, MaskStyle, RegionSource
from ..batch import collect_jobs
from ..detect.base import Detector
from ..media.image import read_image
from ..media.kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..pipeline import default_output, detector_for, redact_file, scan_image
from ..planfile import EditPlan, FaceAction, parse_plan
from .video import VideoAnalysis, VideoRequestError, analyse, video_plan_lines

# Regions whose detection score is under this are drawn as "check this one".
LOW_CONFIDENCE = 0.5
MAX_REGIONS = 5000  # per export request; more is not a real photo
MAX_PLAN_UPLOADS = 200  # per server run


class Destination(str, enum.Enum):
    """Where an export is written."""

    BESIDE = "beside"  # <name>.redacted.<ext> beside the original
    FOLDER = "folder"  # the output folder given when the server started


class RequestError(Exception):
    """A request the page should not have sent; becomes a 4xx with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class MediaItem:
    id: int
    path: Path
    name: str  # relative to the served folder, for display only
    kind: str = "image"  # image | video


@dataclass
class _Scan:
    detections: Detections
    computed: MaskPlan
    width: int
    height: int


@dataclass
class ExportJob:
    """One export's progress and outcome, as the page polls it."""

    id: str
    item: MediaItem
    state: str = "running"  # running | done | failed
    phase: str = "redacting"  # redacting | auditing
    done: int = 0
    total: int | None = None
    output: str | None = None
    faces: int = 0
    kept: int = 0
    removed: int = 0
    error: str | None = None
    audit: dict[str, Any] | None = None
    audit_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.item.id, "state": self.state, "phase": self.phase, "done": self.done,
                "total": self.total, "output": self.output, "faces": self.faces, "kept": self.kept, "removed": self.removed,
                "error": self.error, "audit": self.audit, "audit_note": self.audit_note}


@dataclass
class Library:
    """Everything the server knows; methods are safe to call from several request threads."""

    root: Path
    items: list[MediaItem]
    config: Config = Config()
    output_dir: Path | None = None
    detector: Detector | None = None
    _scans: dict[int, _Scan] = field(default_factory=dict)
    _plans: dict[int, EditPlan] = field(default_factory=dict)
    _pictures: dict[int, bytes] = field(default_factory=dict)
    _jobs: dict[str, ExportJob] = field(default_factory=dict)
    _uploads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scan_locks: dict[int, threading.Lock] = field(default_factory=dict)
    _export_lock: threading.Lock = field(default_factory=threading.Lock)
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
        suffixes = IMAGE_SUFFIXES | (VIDEO_SUFFIXES if _video_support() else frozenset())
        media = [f.resolve() for f in files if f.suffix.lower() in suffixes]
        # Only files really under the root, even through symbolic links.
        media = [f for f in media if f.is_relative_to(root)]
        items = [MediaItem(i, f, f.relative_to(root).as_posix(),
                           "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image")
                 for i, f in enumerate(media)]
        return cls(root, items, config, output_dir.resolve() if output_dir else None, detector)

    def item(self, item_id: int, kind: str | None = None) -> MediaItem:
        if not 0 <= item_id < len(self.items):
            raise RequestError("no such file", 404)
        item = self.items[item_id]
        if kind is not None and item.kind != kind:
            raise RequestError(f"file {item_id} is not a {kind}", 404)
        return item

    # -- videos ----------------------------------------------------------------------------------

    def video(self, item_id: int) -> dict[str, Any]:
        """The video's review pass: started on first request, then its progress and results."""
        item = self.item(item_id, "video")
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

    def listing(self) -> dict[str, Any]:
        return {"folder": str(self.root), "files": [{"id": i.id, "name": i.name, "kind": i.kind} for i in self.items],
                "output_folder": str(self.output_dir) if self.output_dir else None,
                "low_confidence": LOW_CONFIDENCE,
                "mask_styles": [{"value": m.value, "reversible": m.reversible} for m in MaskStyle]}

    # -- pictures and scans ----------------------------------------------------------------------

    def picture(self, item_id: int) -> bytes:
        """The upright picture as a metadata-free JPEG, in the coordinates the regions use."""
        item = self.item(item_id, "image")
        with self._lock:
            cached = self._pictures.get(item_id)
        if cached is not None:
            return cached
        still = read_image(item.path, self.config.max_pixels)
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
        with lock:  # one detection per file, however many requests ask at once
            with self._lock:
                cached = self._scans.get(item_id)
            if cached is not None:
                return cached
            still = read_image(item.path, self.config.max_pixels)
            detections, computed = scan_image(still.pixels, self.config, self._detector())
            scan = _Scan(detections, computed, still.width, still.height)
            with self._lock:
                self._scans[item_id] = scan
            return scan

    def _detector(self) -> Detector:
        return self.detector or detector_for(self.config)

    def regions(self, item_id: int) -> dict[str, Any]:
        """veil's regions for a file with any uploaded plan applied, as the page draws them."""
        scan = self._scan(item_id)
        with self._lock:
            plan = self._plans.get(item_id, EditPlan.empty())
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

    def edit_plan(self, item: MediaItem, regions: Any) -> EditPlan:
        """Turn the page's regions into plan lines and validate them like any plan file."""
        if not isinstance(regions, list):
            raise RequestError("regions must be a list")
        if len(regions) > MAX_REGIONS:
            raise RequestError(f"at most {MAX_REGIONS} regions", 413)
        scan = self._scan(item.id)
        faces, lines = [], []
        for region in regions:
            if not isinstance(region, dict):
                raise RequestError("each region must be an object")
            action = region.get("action")
            if action not in {a.value for a in FaceAction}:
                raise RequestError(f"unknown action {action!r}")
            if region.get("added"):
                if action == FaceAction.MASK.value:
                    lines.append(json.dumps({"add": region.get("mask"), "path": str(item.path)}))
                continue
            face: dict[str, Any] = {"mask": region.get("mask")}
            if action != FaceAction.MASK.value:
                face[action] = True
            faces.append(face)
        lines.insert(0, json.dumps({"path": str(item.path), "frame": 0, "width": scan.width,
                                    "height": scan.height, "faces": faces}))
        try:
            plan = parse_plan(lines, "review app", [self.root]).for_input(item.path)
            plan.review(0, scan.computed, scan.width, scan.height)
        except VeilError as exc:
            raise RequestError(exc.message) from None
        return plan

    def start_export(self, item_id: int, request: Any) -> ExportJob:
        item = self.item(item_id)
        if not isinstance(request, dict):
            raise RequestError("expected a JSON object")
        try:
            mask = MaskStyle(request.get("mask", MaskStyle.SOLID.value))
            destination = Destination(request.get("destination", Destination.BESIDE.value))
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        overwrite = request.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise RequestError("overwrite must be true or false")
        if item.kind == "video":
            analysis = self._ready_video(item_id)
            try:
                lines, kept, removed = video_plan_lines(item.path, analysis, request)
                plan = parse_plan(lines, "review app", [self.root]).for_input(item.path)
                plan.check_frame_count(len(analysis.regions))
            except (VideoRequestError, VeilError) as exc:
                raise RequestError(getattr(exc, "message", str(exc))) from None
        else:
            plan = self.edit_plan(item, request.get("regions", []))
            scan = self._scan(item.id)
            actions = [r.action for r in plan.review(0, scan.computed, scan.width, scan.height)]
            kept, removed = actions.count(FaceAction.KEEP), actions.count(FaceAction.REMOVE)
        if destination is Destination.FOLDER:
            if self.output_dir is None:
                raise RequestError("no output folder was given when veil review started (--output)")
            target = self.output_dir / item.name
        else:
            target = default_output(item.path)
        if not self._export_lock.acquire(blocking=False):
            raise RequestError("another export is still running; wait for it to finish", 409)
        job = ExportJob(secrets.token_hex(8), item)
        with self._lock:
            self._jobs[job.id] = job
        config = replace(self.config, mask=mask)
        job.kept, job.removed = kept, removed
        thread = threading.Thread(target=self._export, args=(job, target, config, overwrite, plan),
                                  name=f"veil-export-{job.id}", daemon=True)
        thread.start()
        return job

    def _export(self, job: ExportJob, target: Path, config: Config, overwrite: bool, plan: EditPlan) -> None:
        try:
            def progress(done: int, total: int | None) -> None:
                with self._lock:
                    job.done, job.total = done, total

            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Videos: the caller's detector or none, so the video pipeline picks the same
                # detector settings the review pass used (track ids must match the page's).
                detector = self._detector() if job.item.kind == "image" else self.detector
                report = redact_file(job.item.path, target, config, overwrite=overwrite,
                                     detector=detector, progress=progress, plan=plan)
            except VeilError as exc:
                with self._lock:
                    job.state, job.error = "failed", exc.message
                return
            except Exception as exc:  # noqa: BLE001 - report it on the page; nothing was written
                with self._lock:
                    job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                return
            with self._lock:
                job.output, job.faces = str(target), report.faces
                job.phase = "auditing"
            audit, note = run_audit(job.item.path, target, config, detector)
            with self._lock:
                job.audit, job.audit_note = audit, note
                job.state = "done"
        finally:
            self._export_lock.release()

    def job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise RequestError("no such export", 404)
            return job.to_json()


def _video_support() -> bool:
    try:
        import veil.pipeline  # noqa: F401
    except ImportError:
        return False
    return True


def run_audit(source: Path, output: Path, config: Config,
              detector: Detector | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """veil's audit of the exported copy when that feature is installed, else a note saying why not."""
    try:
        from ..audit import audit_file
    except ImportError:
        return None, "The audit feature is not part of this copy of veil, so the copy was not re-checked."
    try:
        report = audit_file(source, output, config, detector=detector)
    except VeilError as exc:
        return None, f"The audit could not run: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - the export succeeded; say plainly the audit did not
        return None, f"The audit could not run: {type(exc).__name__}: {exc}"
    return {"clean": report.clean, "findings": len(report.findings),
            "summary": report.summary(max_lines=8)}, None


__all__ = ["Library", "MediaItem", "ExportJob", "RequestError", "LOW_CONFIDENCE"]
