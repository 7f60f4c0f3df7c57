"""Which executor and which ledger a `veil redact` batch uses, from its options and its jobs."""

from __future__ import annotations

from pathlib import Path

from .._errors import MissingExtra
from ..batch import Job
from ..pipeline import default_output
from ..segments import SEGMENT_S, stated_seconds
from .driver import is_video
from .ledger import LEDGER_NAME
from .pool import Executor, InlineExecutor, LocalPool, machine_slots
from .worker import VIDEO_SLOTS

# Below this many files, --jobs auto runs inline: starting a worker process and loading the model
# in it costs about as much as redacting a couple of photos (benchmarks/bench_batch.py).
MIN_POOL_FILES = 4


def auto_slots(jobs: list[Job], segment_s: float | None = SEGMENT_S) -> int:
    """--jobs when not given: every CPU, but no more slots than the batch can fill, and no pool
    when it could never run two tasks at once (videos on two CPUs: each takes both slots). Such a
    pool only adds a worker's start-up: six short clips ran at 0.77x the in-process speed on two
    CPUs (benchmarks/bench_batch.py). A long video counts once per segment it is cut into."""
    tasks = [VIDEO_SLOTS if is_video(job.source) else 1 for job in jobs]
    cpus = machine_slots()
    for job in jobs:  # more tasks change the answer only while there are few: probe until then
        if len(tasks) >= MIN_POOL_FILES and sum(tasks) >= cpus:
            break
        if is_video(job.source):
            tasks += [VIDEO_SLOTS] * (_pieces(job, segment_s) - 1)
    if len(tasks) < MIN_POOL_FILES:
        return 1
    slots = max(1, min(cpus, sum(tasks)))
    sizes = sorted(min(size, slots) for size in tasks)
    if sizes[0] + sizes[1] > slots:
        return 1
    return slots


def _pieces(job: Job, segment_s: float | None) -> int:
    """About how many tasks a file makes: a video as long as several segments makes one per
    segment (its header's duration is enough for an estimate)."""
    if not segment_s or not is_video(job.source):
        return 1
    seconds = stated_seconds(job.source)
    return int(seconds // segment_s) if seconds and seconds >= 2 * segment_s else 1


def default_ledger(output: Path | None, jobs: list[Job]) -> Path | None:
    """OUT/.veil-ledger.sqlite when the outputs go into a folder; no ledger otherwise (outputs
    beside their inputs have no one folder to hold it, and one output file needs no resuming)."""
    if output is None:
        return None
    if output.is_dir() or any(job.target != output for job in jobs):
        return output / LEDGER_NAME
    return None


def resume_ledger(jobs: list[Job], segment_s: float | None) -> Path | None:
    """A ledger for one long video written to one file, which no output folder holds: hidden
    beside the output (`.<name>.veil-ledger.sqlite`), so a stopped or killed run resumes its
    segments. The caller deletes it once the run ends with the file settled (done or failed:
    a rerun of one file starts afresh, as without a ledger); None for anything else."""
    if len(jobs) != 1 or _pieces(jobs[0], segment_s) < 2:
        return None
    target = jobs[0].target or default_output(jobs[0].source)
    return target.with_name(f".{target.name}{LEDGER_NAME}")


def executor_for(slots: int, ray: str | None) -> Executor:
    if ray is not None:
        try:
            from .ray_runner import RayExecutor
        except ImportError as exc:
            raise MissingExtra(f"--ray needs the ray extra: pip install 'veil[ray]' ({exc})") from None
        return RayExecutor(ray)
    return InlineExecutor() if slots <= 1 else LocalPool(slots)


__all__ = ["auto_slots", "default_ledger", "resume_ledger", "executor_for", "MIN_POOL_FILES"]
