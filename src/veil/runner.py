"""The threaded runner: stages in their own threads, joined by bounded queues.

A video's decoder (demux, decode, camera motion), its detect/track/regions/edits stages and its
encoder (paint, encode, mux) each keep a core busy, so they run in three threads with a bounded
queue between each pair; memory stays constant however long the file is. An error in a worker
thread is handed to the calling thread and raised there, so a failure anywhere fails the file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._errors import RedactionError

# Frames queued between threads: enough to smooth out a slow detector frame, small enough that a
# 4K stream holds well under a gigabyte.
QUEUE_FRAMES = 8

_DONE = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class Producer:
    """Runs an iterator in a thread and hands its items over through a bounded queue."""

    def __init__(self, source: Callable[[], Iterable[Any]], name: str, maxsize: int = QUEUE_FRAMES) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Callable[[], Iterable[Any]]) -> None:
        try:
            for item in source():
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(_Failure(exc))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Consumer:
    """Runs `sink` on each item in a thread; errors surface on the next `put` or at `finish`."""

    def __init__(self, sink: Callable[[Any], None], name: str, maxsize: int = QUEUE_FRAMES) -> None:
        self._sink = sink
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            try:
                self._sink(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                self._error = exc
                return

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise RedactionError("the encoder stopped unexpectedly")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
