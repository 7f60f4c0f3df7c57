"""Tasks as Ray Core tasks, one per file, on a local or remote Ray cluster (`--ray ADDRESS|auto`).

Each task runs worker.run_task, the same code as a local worker process; Ray worker processes
are reused, so the detector loads once per Ray worker. Ray's own retries are off: when a worker
dies the driver sees which file it was on, records the try in the ledger, and resubmits it (up to
driver.MAX_TRIES), exactly as with the local pool. Inputs and outputs must be at the same paths on
every node (a shared filesystem); see docs/design.md.
"""

from __future__ import annotations

import contextlib

import ray
from ray.exceptions import RayError

from .._errors import VeilError
from .worker import Outcome, Task, lost, run_task

# Tasks in flight per CPU of the cluster: enough to keep every worker busy between two waits, few
# enough that the ledger's `running` means what it says.
_IN_FLIGHT_PER_CPU = 2


class RayExecutor:
    """Connects to `address` ("auto": RAY_ADDRESS or a cluster already running here, else a new
    local one); a cluster this executor started is shut down by close()."""

    def __init__(self, address: str) -> None:
        try:
            if not ray.is_initialized():
                ray.init(address=None if address == "auto" else address, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise VeilError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        self._cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(max_retries=0)(run_task)
        self._running: dict[ray.ObjectRef, Task] = {}

    def can_take(self, task: Task) -> bool:
        return len(self._running) < self._cpus * _IN_FLIGHT_PER_CPU

    def submit(self, task: Task) -> None:
        piece = f"#{task.segment.number + 1}" if task.segment is not None else ""
        ref = self._remote.options(num_cpus=min(task.slots, self._cpus),
                                   name=f"veil:{task.source.name}{piece}"[:100]).remote(task)
        self._running[ref] = task

    def busy(self) -> bool:
        return bool(self._running)

    def wait(self) -> tuple[Task, Outcome]:
        [ref], _ = ray.wait(list(self._running), num_returns=1)
        task = self._running.pop(ref)
        try:
            return task, ray.get(ref)
        except RayError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return task, lost(task, f"the Ray task failed ({type(exc).__name__}: {reason})")

    def close(self) -> None:
        for ref, task in self._running.items():
            with contextlib.suppress(Exception):  # already finished, or the cluster is gone
                ray.cancel(ref, force=True)
            lost(task, "stopped")
        self._running.clear()
        ray.shutdown()


__all__ = ["RayExecutor"]
