"""Where tasks run on this machine: inline (one job) or in local worker processes (--jobs N).

Both, and the Ray runner, answer the same four calls the driver makes: can it take this task
now, take it, wait for the next outcome, and close. Each worker process gets one task at a time
over its own pipe, so when one dies the driver knows exactly which file it was on.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from .worker import Outcome, Task, lost, run_task, worker_main
from ..pipeline import ProgressCallback

# How long a stopping worker gets to delete its partial output before it is killed.
_STOP_GRACE_S = 10.0


class Executor(Protocol):
    def can_take(self, task: Task) -> bool: ...
    def submit(self, task: Task) -> None: ...
    def busy(self) -> bool: ...
    def wait(self) -> tuple[Task, Outcome]: ...
    def close(self) -> None: ...


def machine_slots() -> int:
    """The CPUs this process may use (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class InlineExecutor:
    """Runs each task in this process when the driver waits for it: no worker start-up cost."""

    def __init__(self, progress: ProgressCallback | None = None) -> None:
        self._queue: collections.deque[Task] = collections.deque()
        self.progress = progress

    def can_take(self, task: Task) -> bool:
        return not self._queue

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def busy(self) -> bool:
        return bool(self._queue)

    def wait(self) -> tuple[Task, Outcome]:
        task = self._queue.popleft()
        return task, run_task(task, self.progress)

    def close(self) -> None:
        self._queue.clear()


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(child,), name="veil-worker", daemon=True)
        self.process.start()
        child.close()
        self.task: Task | None = None


class LocalPool:
    """`slots` worker processes; a task takes `task.slots` of them (a video more than a still).

    Workers are started with `spawn`: a fork of a driver that already holds onnxruntime's and
    PyAV's threads can deadlock. A worker that dies is replaced for the next task.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    def _used(self) -> int:
        return sum(w.task.slots for w in self._workers if w.task is not None)

    def can_take(self, task: Task) -> bool:
        used = self._used()
        return used == 0 or used + task.slots <= self.slots

    def submit(self, task: Task) -> None:
        worker = next((w for w in self._workers if w.task is None and w.process.is_alive()), None)
        if worker is None:
            worker = _Worker(self._context)
            self._workers.append(worker)
        worker.task = task
        try:
            worker.conn.send(task)
        except OSError:  # it died while idle (the OOM killer, say): the sentinel reports it lost
            pass

    def busy(self) -> bool:
        return any(w.task is not None for w in self._workers)

    def wait(self) -> tuple[Task, Outcome]:
        while True:
            working = [w for w in self._workers if w.task is not None]
            ready = wait([w.conn for w in working] + [w.process.sentinel for w in working])
            for worker in working:
                if worker.conn in ready:
                    try:
                        outcome: Outcome = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.process.join(1.0)
                        return self._bury(worker)
                    task, worker.task = worker.task, None
                    assert task is not None
                    return task, outcome
                if worker.process.sentinel in ready:
                    worker.process.join()
                    return self._bury(worker)

    def _bury(self, worker: _Worker) -> tuple[Task, Outcome]:
        """A worker died on its task: drop it (a new one starts for the next task)."""
        task = worker.task
        assert task is not None
        self._workers.remove(worker)
        worker.conn.close()
        return task, lost(task, f"the worker process died ({_how(worker.process.exitcode)}) while "
                                "redacting this file")

    def close(self) -> None:
        """Stop every worker: SIGTERM lets one on a task delete its partial output first."""
        for worker in self._workers:
            if worker.task is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            elif worker.process.is_alive():
                worker.process.terminate()
        for worker in self._workers:
            worker.process.join(_STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
            if worker.task is not None:
                lost(worker.task, "stopped")  # removes what a killed worker left
        self._workers.clear()


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


__all__ = ["Executor", "InlineExecutor", "LocalPool", "machine_slots"]
