"""One file's work as a picklable task, run the same way inline, in a local worker process or as a
Ray task: the worker only redacts and reports; the driver alone decides, retries and records.

A worker leaves its finished output under a temporary name beside the target and says which
(`Outcome.staged`); the driver records the file as done in the ledger, then moves that file into
place. So an output at a final path always has a ledger row that says done, and a kill between
the two steps leaves a row the next run completes by a rename, not by redoing the file."""

from __future__ import annotations

import contextlib
import ctypes
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from .._atomic import TEMP_MARK
from .._errors import ModelError, VeilError
from .._types import Config, FileReport
from ..edits import Edits
from ..pipeline import ProgressCallback, failed_report, redact_file, redact_segment
from ..segments import Segment

# A video job already runs decode, detect and encode in threads of their own, so it is counted as
# this many slots of --jobs (and given that many detector threads); a still counts as one.
VIDEO_SLOTS = 2


@dataclass(frozen=True)
class Task:
    """Everything a worker needs for one file; frozen and picklable (it crosses processes and Ray)."""

    source: Path
    target: Path
    config: Config
    overwrite: bool
    plan: Edits | None = None
    slots: int = 1
    attempt: int = 1
    segment: Segment | None = None  # one segment of a long video (archive/segmented.py) ...
    part: Path | None = None  # ... written to this file, not to `target`


@dataclass(frozen=True)
class Outcome:
    """What came back for a task.

    `fatal` carries a ModelError's message: the installation is broken and every other file would
    fail the same way, so the driver stops. `lost` says the worker died before answering (killed,
    out of memory, a crash in native code); `report.error` then says how. `staged` is the finished
    output's temporary name, which the driver publishes to `report.output` (the task's target).
    """

    report: FileReport
    fatal: str | None = None
    lost: bool = False
    staged: Path | None = None


def run_task(task: Task, progress: ProgressCallback | None = None) -> Outcome:
    """Redact one file, leaving the output staged for the driver to publish; every error becomes a
    failed report, never an exception."""
    if task.segment is not None and task.part is not None:
        return _run_segment(task, task.segment, task.part, progress)
    try:
        report = redact_file(task.source, task.target, task.config, overwrite=task.overwrite,
                             progress=progress, plan=task.plan, publish=False)
    except ModelError as exc:
        return Outcome(failed_report(task.source, exc), fatal=exc.message)
    except VeilError as exc:
        return Outcome(failed_report(task.source, exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        return Outcome(failed_report(task.source, exc))
    return Outcome(replace(report, output=task.target), staged=report.output)


def _run_segment(task: Task, segment: Segment, part: Path,
                 progress: ProgressCallback | None) -> Outcome:
    """One segment of a long video, written to its part (complete or absent; no staging: a part
    is no output anybody sees, and the driver joins it)."""
    try:
        report = redact_segment(task.source, task.target, segment, part, task.config, progress)
    except ModelError as exc:
        return Outcome(failed_report(task.source, exc), fatal=exc.message)
    except Exception as exc:  # noqa: BLE001 - VeilError or not: the segment fails, the batch goes on
        return Outcome(failed_report(task.source, exc))
    return Outcome(report)


def lost(task: Task, reason: str) -> Outcome:
    remove_partials(task.part or task.target)
    return Outcome(FileReport(path=task.source, output=None, ok=False, error=reason), lost=True)


def remove_partials(target: Path) -> None:
    """Delete the temporary files a killed worker left beside `target` (see _atomic.staged_output):
    a SIGKILL gives the worker no chance to remove its own. Never called for a target whose ledger
    row is done with a staged file still to publish: the driver publishes those first."""
    with contextlib.suppress(OSError):
        for partial in target.parent.glob(f".{target.stem}{TEMP_MARK}*{target.suffix}"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


class WorkerStopped(BaseException):
    """SIGTERM in a worker: unwinds like Ctrl-C so the partial output is deleted on the way out."""


def _stop(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise WorkerStopped()


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the driver dies (even by SIGKILL), so no orphan keeps
    writing outputs that a resumed batch is redoing. Elsewhere a closed pipe ends the worker."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def worker_main(conn: Connection) -> None:
    """A local worker process: tasks in, outcomes out, until told to stop or the driver goes.

    The detector is cached per process (pipeline.cached_detector), so it loads once per worker.
    Ctrl-C is the driver's to handle: it stops the workers with SIGTERM.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    _die_with_parent()
    with contextlib.suppress(WorkerStopped, EOFError, BrokenPipeError, KeyboardInterrupt):
        for task in _tasks(conn):
            conn.send(run_task(task))


def _tasks(conn: Connection) -> Iterator[Task]:
    while (task := conn.recv()) is not None:
        yield task


__all__ = ["Task", "Outcome", "run_task", "lost", "remove_partials", "worker_main", "VIDEO_SLOTS"]
