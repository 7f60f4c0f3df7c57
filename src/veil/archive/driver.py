"""The batch driver: decides from the ledger what to do, hands tasks to an executor, records outcomes.

It is the only writer of the ledger, whichever executor runs the tasks (inline, local worker
processes, Ray). Per input:

- done before with the same content and settings, and its output still there: skipped;
- failed before with the same content and settings: skipped, unless `retry_failed`;
- anything else (new, changed content, changed settings, or left `running` by a killed run): done,
  replacing the output this ledger says it wrote for that input. Files a killed run left unsettled
  are done after the others, so one that kills veil does not hold the rest of the batch back.

A worker that dies on a file costs that file one try, and so does veil itself dying while working
on it (a crash in native code or the OOM killer in an in-process run, a SIGKILL): the ledger keeps
the count across runs. After `max_tries` the file is failed with the reason and the batch goes on;
`retry_failed` gives it a fresh count. A batch stopped gracefully (Ctrl-C, SIGTERM, an error of
its own) gives its files in flight their tries back: they did not stop it.

A finished file is committed in two steps: the ledger records it done, naming the temporary file
the worker left its output in, and only then is that file moved to the final path. A kill at any
moment therefore leaves either no output and a row not done (the file is redone), or a done row
whose output is in place or still at the temporary name, which the next run moves into place
before anything else: a published output is never redone, and nothing unrecorded is ever at a
final path.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .._atomic import check_target, publish
from .._errors import ModelError, OutputError, RedactionError, VeilError
from .._types import Config, FileReport
from ..batch import Job
from ..edits import PlanFile
from ..media.kinds import VIDEO_SUFFIXES, require_regular_file
from ..pipeline import default_output, failed_report
from ..segments import SEGMENT_S, Segment
from .ledger import Ledger, Row, State, content_hash, settings_hash, unsettled_tries
from .pool import Executor
from .progress import Counts
from .segmented import SegmentedFile, plan_segments, wanted_segments
from .worker import VIDEO_SLOTS, Outcome, Task, remove_partials

# How often a file may take a worker down with it before it is failed (the first try included).
MAX_TRIES = 3


@dataclass(frozen=True)
class BatchSettings:
    config: Config
    overwrite: bool = False
    retry_failed: bool = False
    max_tries: int = MAX_TRIES
    slots: int = 1  # --jobs: the slots a task's `slots` are counted against
    machine_slots: int = 1  # the CPUs here, shared out as detector threads
    plan: PlanFile | None = None
    plan_digest: str | None = None
    version: str = ""
    segment_s: float | None = SEGMENT_S  # a video of two segments or more is split (None: never)


@dataclass
class Skipped:
    """Inputs the ledger says need no work this time."""

    done: list[FileReport]
    failed: list[FileReport]


Check = Callable[[Job], None]  # raises VeilError when a job cannot run (shared output, no folder)
OnResult = Callable[[FileReport, Counts], None]
AfterEach = Callable[[FileReport], FileReport]
OnSegment = Callable[[Path, Segment, int], None]  # (input, segment, segments of it done so far)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def run_batch(jobs: list[Job], settings: BatchSettings, executor: Executor, ledger: Ledger | None,
              check: Check, on_result: OnResult, after_each: AfterEach | None = None,
              on_plan: Callable[[Skipped, int], None] | None = None,
              on_segment: OnSegment | None = None) -> list[FileReport]:
    """Run every job that needs running; return one report per input, in the jobs' order.

    `on_segment` hears of each segment of a long video done (the file's own line comes from
    `on_result` once it is joined), so hours of one file show progress."""
    rows = ledger.rows() if ledger is not None else {}
    unpublished = _publish_staged(rows)  # done rows a killed run had not yet moved into place
    reports: dict[str, FileReport] = {}  # by ledger key: an input named twice is done once
    skipped = Skipped([], [])
    todo: list[tuple[Task, str, str, str]] = []  # (task, ledger key, content hash, settings hash)
    immediate: list[tuple[Job, str, FileReport]] = []
    exhausted: list[tuple[Task, str, str, str]] = []  # veil died on these max_tries times: failed
    groups: dict[str, SegmentedFile] = {}  # long videos redacted in segments, by the file's key
    worn: dict[str, SegmentedFile] = {}  # ... and those failed for a segment veil died on too often
    owner: dict[str, str] = {}  # segment key -> its file's key
    segment_rows: list[tuple[str, str, str, str]] = []  # segments to plan in the ledger
    wanted = settings_hash(settings.config, settings.plan_digest, settings.version)
    job_keys: list[str] = [""] * len(jobs)
    claimed: dict[str, Path] = {}  # ledger key -> the output it writes
    pending: dict[int, tuple[Job, str, Path]] = {}
    # A file named as itself claims its resolved path first; a link to it with an output of its
    # own (a link in the folder) is a second input under its own name. The same input with the
    # same output named twice is done once.
    order = sorted(range(len(jobs)), key=lambda i: _key(jobs[i].source) != str(jobs[i].source.absolute()))
    for i in order:
        job = jobs[i]
        target = job.target if job.target is not None else default_output(job.source)
        key = _key(job.source)
        if key in claimed and claimed[key] != target:
            key = str(job.source.absolute())
        job_keys[i] = key
        if key in claimed:
            continue
        claimed[key] = target
        pending[i] = (job, key, target)
    for job, key, target in (pending[i] for i in sorted(pending)):
        try:
            check(job)
            if ledger is not None:
                require_regular_file(job.source)  # a FIFO would block the hash: refused unopened
            digest = _content(job.source) if ledger is not None else ""
            edits = settings.plan.for_input(job.source) if settings.plan is not None else None
        except ModelError:
            raise
        except VeilError as exc:
            immediate.append((job, key, failed_report(job.source, exc)))
            continue
        row = rows.get(key)
        if row is not None and row.content_hash == digest and row.settings_hash == wanted:
            if _done(row, target):
                reports[key] = replace(row.file_report(), path=job.source, output=target)
                if key in unpublished and ledger is not None:
                    unpublished.discard(key)
                    # The killed run had not audited it yet either: that is all it lacks.
                    if after_each is not None and reports[key].audit is None:
                        reports[key] = after_each(reports[key])
                    ledger.published(key, reports[key] if after_each is not None else None)
                skipped.done.append(reports[key])
                continue
            if row.state is State.FAILED and not settings.retry_failed:
                reports[key] = replace(row.file_report(), path=job.source)
                skipped.failed.append(reports[key])
                continue
        # Our own earlier output for this input (changed since, or a killed run's) is replaced.
        ours = row is not None and row.output == str(target) and target.exists()
        slots = min(VIDEO_SLOTS, settings.slots) if is_video(job.source) else 1
        config = settings.config
        if settings.slots > 1 and config.threads == 0:
            per_slot = max(1, settings.machine_slots // settings.slots)
            config = replace(config, threads=min(settings.machine_slots, per_slot * slots))
        if row is not None and (row.state is State.RUNNING or row.staged is not None):
            remove_partials(target)  # what a SIGKILLed run left beside the output
        tried = unsettled_tries(row, digest, wanted)
        task = Task(job.source, target, config, settings.overwrite or ours, edits, slots, tried + 1)
        segments = _segments(task, settings) if tried < settings.max_tries else []
        if segments:
            plan = plan_segments(task, key, segments, rows, digest, wanted)
            if any(t.attempt > settings.max_tries for t, _, _, _ in plan.todo):
                exhausted.append((task, key, digest, wanted))  # a segment veil died on too often
                worn[key] = plan.group
                continue
            groups[key] = plan.group
            owner.update((skey, key) for _, skey, _, _ in plan.todo)
            todo += plan.todo
            # The file's row is planned with its segments' (see the ledger.plan below).
            segment_rows.extend([(skey, d, h, str(t.part)) for t, skey, d, h in plan.todo]
                                + [(key, digest, wanted, str(target))])
            continue
        (exhausted if tried >= settings.max_tries else todo).append((task, key, digest, wanted))
    todo.sort(key=lambda entry: entry[0].attempt > 1)  # unsettled by a killed run: last
    if ledger is not None:
        for key in unpublished:  # not inputs of this run; their outputs are in place now
            if rows[key].state is State.DONE:
                ledger.published(key)
        ledger.plan([(key, digest, wanted, str(task.target))
                     for task, key, digest, wanted in todo + exhausted if key not in owner]
                    + segment_rows
                    + [(key, "", "", str(job.target or "")) for job, key, _ in immediate])
    files = len({owner.get(key, key) for _, key, _, _ in todo + exhausted} | set(groups))
    if on_plan is not None:
        on_plan(skipped, files + len(immediate))

    counts = Counts(total=files + len(immediate))

    def record(key: str, report: FileReport, task: Task | None = None, staged: Path | None = None) -> None:
        if task is not None and staged is not None:
            report = _commit(ledger, key, report, staged, task.target, task.overwrite)
            if report.ok and after_each is not None:
                report = after_each(report)
            if report.ok and ledger is not None:
                ledger.published(key, report if after_each is not None else None)
        else:
            if after_each is not None and report.ok:
                report = after_each(report)
            if ledger is not None:
                ledger.finish(key, report)
        reports[key] = report
        if report.ok:
            counts.done += 1
        else:
            counts.failed += 1
        on_result(report, counts)

    for job, key, report in immediate:
        if ledger is not None:
            ledger.start(key)
        record(key, report)
    for task, key, _, _ in exhausted:  # its tries were counted when veil died on them
        group = worn.pop(key, None)
        record(key, failed_report(task.source, RedactionError(
            f"veil stopped while working on this file{' (or a segment of it)' if group else ''} "
            f"{settings.max_tries if group else task.attempt - 1} times (it may crash veil); "
            "--retry-failed tries it again")))
        if group is not None:
            group.discard(ledger)

    def join(group: SegmentedFile) -> None:
        """Every segment of a long video is done: join them and commit the file."""
        if ledger is not None:
            ledger.start(group.key)
        in_flight.add(group.key)
        try:
            report, staged = group.join()
        except VeilError as exc:
            record(group.key, failed_report(group.task.source, exc))
        else:
            nonlocal unrecorded
            unrecorded = (group.key, staged)
            record(group.key, report, group.task, staged)
            unrecorded = None
        in_flight.discard(group.key)
        group.discard(ledger)
        del groups[group.key]

    def settle_segment(task: Task, key: str, report: FileReport) -> None:
        group = groups[owner[key]]
        assert task.segment is not None
        if not report.ok:
            nonlocal queue
            queue = collections.deque(t for t in queue if keys[_ident(t)] not in owner
                                      or owner[keys[_ident(t)]] != group.key)
            record(group.key, replace(report, error=f"{task.segment.name}: {report.error}"))
            group.discard(ledger)
            del groups[group.key]
            return
        if ledger is not None:
            ledger.finish(key, report)
        group.reports[task.segment.number] = report
        if on_segment is not None:
            on_segment(task.source, task.segment, len(group.reports))
        if group.complete:
            join(group)

    keys = {_ident(task): key for task, key, _, _ in todo}
    queue = collections.deque(task for task, _, _, _ in todo)
    in_flight: set[str] = set()  # started in the ledger, outcome not yet recorded
    unrecorded: tuple[str, Path] | None = None  # a finished output not yet handed to record()
    try:
        for group in [g for g in groups.values() if g.complete]:  # a killed run's, segments done
            join(group)
        while queue or executor.busy():
            while queue and executor.can_take(queue[0]):
                task = queue.popleft()
                if ledger is not None:
                    ledger.start(keys[_ident(task)])
                in_flight.add(keys[_ident(task)])
                executor.submit(task)
            task, outcome = executor.wait()
            key = keys[_ident(task)]
            if task.segment is not None and owner[key] not in groups:
                in_flight.discard(key)  # its file failed through another segment meanwhile
                _drop_segment(ledger, key, task)
                continue
            unrecorded = (key, outcome.staged) if outcome.staged is not None else None
            if outcome.fatal is not None:  # the installation's fault: the finally gives the try back
                raise ModelError(outcome.fatal)
            report = _retry_or_fail(task, outcome, settings.max_tries)
            if report is None:
                if ledger is not None:
                    ledger.requeue(key, outcome.report.error or "")
                in_flight.discard(key)
                queue.append(replace(task, attempt=task.attempt + 1))
                continue
            if task.segment is not None:
                in_flight.discard(key)
                settle_segment(task, key, report)
                continue
            record(key, report, task, outcome.staged if report.ok else None)
            in_flight.discard(key)
            unrecorded = None
    finally:
        try:
            executor.close()  # a stopped worker deletes its partial output
        finally:
            _stopped(ledger, in_flight, unrecorded)
    return [reports[key] for key in dict.fromkeys(job_keys)]


def _drop_segment(ledger: Ledger | None, key: str, task: Task) -> None:
    """A segment finished after its file had failed: its row and its part go."""
    if ledger is not None:
        ledger.forget([key])
    if task.part is not None:
        remove_partials(task.part)
        _discard(task.part)


def _ident(task: Task) -> tuple[Path, int]:
    """A task's name in this run: its input, and which segment (-1: the whole file)."""
    return task.source, task.segment.number if task.segment is not None else -1


def _segments(task: Task, settings: BatchSettings) -> list[Segment]:
    """The segments a long video is redacted in ([]: whole; see archive/segmented.py). A video
    whose packets cannot be read, or whose output cannot be written (it exists, it is the input),
    is left whole: its task fails at once, in the pipeline's words."""
    if not is_video(task.source):
        return []
    try:
        check_target(task.source, task.target, task.overwrite)
        return wanted_segments(task.source, task.target, task.config, settings.segment_s,
                               task.plan is not None)
    except VeilError:
        return []


def _stopped(ledger: Ledger | None, in_flight: set[str], unrecorded: tuple[str, Path] | None) -> None:
    """The batch stops with files in flight (Ctrl-C, SIGTERM, an error of the driver's own): this
    process is alive, so none of them stopped it, and each gets its try back (Ledger.give_back).
    Only a hard death (SIGKILL, a crash, the OOM killer) never gets here, and so counts.

    A finished output not yet recorded is deleted with its row's try: no ledger, or a row back to
    pending, means no later run would publish it. One recorded done is kept for the rerun to move.
    """
    given: set[str] = set()
    if ledger is not None and in_flight:
        with contextlib.suppress(VeilError):  # never hide what stopped the batch
            given = ledger.give_back(in_flight)
    if unrecorded is not None and (ledger is None or unrecorded[0] in given):
        _discard(unrecorded[1])


def _commit(ledger: Ledger | None, key: str, report: FileReport, staged: Path, target: Path,
            overwrite: bool) -> FileReport:
    """Record the file done, naming its staged output, then move that output into place.

    A kill after the first step leaves a done row whose `staged` the next run publishes
    (_publish_staged). Should the move fail (a file appeared at the target meanwhile, a staged
    file this machine cannot see), the row is failed instead, saying why.
    """
    here = os.path.lexists(staged)
    try:
        if ledger is not None:
            ledger.finish(key, report, staged)
        publish(staged, target, overwrite)
        return report
    except OutputError as exc:
        failed = failed_report(report.path, exc)
    except OSError as exc:
        failed = failed_report(report.path, RedactionError(
            f"could not write {target}: {exc.strerror or exc}"
            + ("" if here else f" (the worker's output {staged} is not here: "
               "inputs and outputs must be on a filesystem every node shares)")))
    _discard(staged)
    if ledger is not None:
        ledger.finish(key, failed)
    return failed


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _publish_staged(rows: dict[str, Row]) -> set[str]:
    """Finish what a run killed between recording a file done and moving its output into place did
    not: move the staged file to the output path (replacing what is there, as for any output this
    ledger wrote). Returns the rows whose `staged` is to be cleared."""
    found = set()
    for key, row in rows.items():
        if row.staged is None:
            continue
        found.add(key)
        if row.state is State.DONE and row.output and os.path.lexists(row.staged):
            with contextlib.suppress(OSError, VeilError):  # left alone: a missing output is redone
                publish(Path(row.staged), Path(row.output), overwrite=True)
    return found


def _content(source: Path) -> str:
    """The input's content hash; "" when it cannot be read (the worker's try then says why, in the
    pipeline's words, and a later run that can read it sees new content and redoes it)."""
    try:
        return content_hash(source)
    except OSError:
        return ""


def _key(source: Path) -> str:
    """The ledger's name for an input: its absolute path with links resolved, so a rerun from
    another folder or through another link finds the same row."""
    try:
        return str(source.resolve())
    except (OSError, RuntimeError):  # a link loop: its own absolute name (it fails as an input)
        return str(source.absolute())


def _done(row: Row, target: Path) -> bool:
    return row.state is State.DONE and row.output == str(target) and target.exists()


def _retry_or_fail(task: Task, outcome: Outcome, max_tries: int) -> FileReport | None:
    """None: try the file again. A file that took its worker down `max_tries` times is failed."""
    if not outcome.lost:
        return outcome.report
    if task.attempt < max_tries:
        return None
    return replace(outcome.report, error=f"{outcome.report.error}; failed after {task.attempt} "
                                         f"tr{'ies' if task.attempt != 1 else 'y'}")


__all__ = ["run_batch", "BatchSettings", "Skipped", "MAX_TRIES", "is_video"]
