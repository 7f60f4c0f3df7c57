"""Which executor and which ledger a `veil redact` batch uses, from its options and its jobs."""

from __future__ import annotations

from pathlib import Path

from .._errors import MissingExtra
from ..batch import Job
from .driver import is_video
from .ledger import LEDGER_NAME
from .pool import Executor, InlineExecutor, LocalPool, machine_slots
from .worker import VIDEO_SLOTS

# Below this many files, --jobs auto runs inline: starting a worker process and loading the model
# in it costs about as much as redacting a couple of photos (benchmarks/bench_batch.py).
MIN_POOL_FILES = 4


def auto_slots(jobs: list[Job]) -> int:
    """--jobs when not given: every CPU, but no more slots than the batch can fill, and no pool
    when it could never run two files at once (videos on two CPUs: each takes both slots). Such a
    pool only adds a worker's start-up: six short clips ran at 0.77x the in-process speed on two
    CPUs (benchmarks/bench_batch.py)."""
    if len(jobs) < MIN_POOL_FILES:
        return 1
    wanted = sum(VIDEO_SLOTS if is_video(job.source) else 1 for job in jobs)
    slots = max(1, min(machine_slots(), wanted))
    sizes = sorted(min(VIDEO_SLOTS, slots) if is_video(job.source) else 1 for job in jobs)
    if sizes[0] + sizes[1] > slots:
        return 1
    return slots


def default_ledger(output: Path | None, jobs: list[Job]) -> Path | None:
    """OUT/.veil-ledger.sqlite when the outputs go into a folder; no ledger otherwise (outputs
    beside their inputs have no one folder to hold it, and one output file needs no resuming)."""
    if output is None:
        return None
    if output.is_dir() or any(job.target != output for job in jobs):
        return output / LEDGER_NAME
    return None


def executor_for(slots: int, ray: str | None) -> Executor:
    if ray is not None:
        try:
            from .ray_runner import RayExecutor
        except ImportError as exc:
            raise MissingExtra(f"--ray needs the ray extra: pip install 'veil[ray]' ({exc})") from None
        return RayExecutor(ray)
    return InlineExecutor() if slots <= 1 else LocalPool(slots)


__all__ = ["auto_slots", "default_ledger", "executor_for", "MIN_POOL_FILES"]
