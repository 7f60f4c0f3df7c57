"""Export jobs: one at a time, each running the real pipeline and then the audit in its own thread.

A job redacts with `redact_file` and the Edits built from the page's edits, then re-checks the
copy with veil's audit where that feature is installed. The page polls the job for progress.
"""

from __future__ import annotations

import enum
import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import VeilError
from .._types import Config, MaskStyle
from ..detect.base import Detector
from ..pipeline import default_output, redact_file
from ..edits import Edits
from .errors import RequestError
from .files import MediaItem, check_unchanged


class Destination(str, enum.Enum):
    """Where an export is written."""

    BESIDE = "beside"  # <name>.redacted.<ext> beside the original
    FOLDER = "folder"  # the output folder given when the server started


@dataclass(frozen=True)
class ExportOptions:
    """The page's export choices, checked: mask style, where to write, whether to replace."""

    mask: MaskStyle = MaskStyle.SOLID
    destination: Destination = Destination.BESIDE
    overwrite: bool = False

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> ExportOptions:
        try:
            mask = MaskStyle(request.get("mask", MaskStyle.SOLID.value))
            destination = Destination(request.get("destination", Destination.BESIDE.value))
        except (ValueError, TypeError):
            raise RequestError("unknown mask style or destination") from None
        overwrite = request.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise RequestError("overwrite must be true or false")
        return cls(mask, destination, overwrite)

    def target(self, item: MediaItem, output_dir: Path | None) -> Path:
        if self.destination is Destination.FOLDER:
            if output_dir is None:
                raise RequestError("no output folder was given when veil review started (--output)")
            return output_dir / item.name
        return default_output(item.path)


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
class Exports:
    """The export jobs of one server run; safe to call from several request threads."""

    _jobs: dict[str, ExportJob] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Lock = field(default_factory=threading.Lock)

    def start(self, item: MediaItem, options: ExportOptions, target: Path, config: Config, plan: Edits,
              detector: Detector | None, kept: int, removed: int) -> ExportJob:
        """Start one export in a thread, or refuse (409) while another is still running."""
        if not self._running.acquire(blocking=False):
            raise RequestError("another export is still running; wait for it to finish", 409)
        try:
            check_unchanged(item)
        except RequestError:
            self._running.release()
            raise
        job = ExportJob(secrets.token_hex(8), item, kept=kept, removed=removed)
        with self._lock:
            self._jobs[job.id] = job
        thread = threading.Thread(target=self._run, args=(job, target, replace(config, mask=options.mask),
                                                          options.overwrite, plan, detector),
                                  name=f"veil-export-{job.id}", daemon=True)
        thread.start()
        return job

    def _run(self, job: ExportJob, target: Path, config: Config, overwrite: bool, plan: Edits,
             detector: Detector | None) -> None:
        try:
            self._redact_and_audit(job, target, config, overwrite, plan, detector)
        finally:
            self._running.release()

    def _fail(self, job: ExportJob, message: str) -> None:
        with self._lock:
            job.state, job.error = "failed", message

    def _redact_and_audit(self, job: ExportJob, target: Path, config: Config, overwrite: bool, plan: Edits,
                          detector: Detector | None) -> None:
        def progress(done: int, total: int | None) -> None:
            with self._lock:
                job.done, job.total = done, total

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # The pipeline opens the file by its path: check it is still the file listed at
            # start-up right before, and again after (a copy of some other file is deleted).
            check_unchanged(job.item)
            report = redact_file(job.item.path, target, config, overwrite=overwrite,
                                 detector=detector, progress=progress, plan=plan)
        except (RequestError, VeilError) as exc:
            self._fail(job, exc.message)
            return
        except Exception as exc:  # noqa: BLE001 - report it on the page; nothing was written
            self._fail(job, f"{type(exc).__name__}: {exc}")
            return
        try:
            check_unchanged(job.item)
        except RequestError as exc:
            target.unlink(missing_ok=True)
            self._fail(job, exc.message)
            return
        with self._lock:
            job.output, job.faces = str(target), report.faces
            job.phase = "auditing"
        audit, note = run_audit(job.item.path, target, config, detector)
        with self._lock:
            job.audit, job.audit_note = audit, note
            job.state = "done"

    def job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise RequestError("no such export", 404)
            return job.to_json()


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


__all__ = ["Destination", "ExportJob", "ExportOptions", "Exports", "run_audit"]
