"""A file that takes veil itself down (in-process runs, or a pool whose driver dies with it in
flight) is failed after MAX_TRIES deaths, counted in the ledger across runs; a Ctrl-C or SIGTERM
is the user stopping the batch, and costs the file nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLE
from helpers import OneAtATime, example_photos, run_cli
from veil._atomic import TEMP_MARK, staged_output
from veil._errors import ModelError
from veil._types import Config, FileReport
from veil.archive import LEDGER_NAME, Ledger, State
from veil.archive.driver import MAX_TRIES, BatchSettings, run_batch
from veil.archive.ledger import settings_hash
from veil.archive.worker import Outcome, Task, lost
from veil.batch import Job

# Runs `veil ARGS` (the real CLI, in one process with --jobs 1) with the pipeline's staged output
# wrapped: once the temporary output of the file named VICTIM exists, the process sends itself
# signal HOW, mid-file. SIGKILL stands for a decoder's segfault or the OOM killer; SIGINT and
# SIGTERM for a person stopping the batch. The wrapper lives only in this subprocess; nothing in
# veil reads a test switch.
_SIGNALLER = r"""
import contextlib, os, signal, sys, time
from veil import pipeline

victim, how = sys.argv[1], getattr(signal, sys.argv[2])
real = pipeline.staged_output

@contextlib.contextmanager
def staged_output(target):
    with real(target) as tmp:
        if target.name == victim:
            os.kill(os.getpid(), how)
            time.sleep(60)  # a handled signal raises here; SIGKILL never comes back
        yield tmp

pipeline.staged_output = staged_output
from veil.cli import main
sys.argv = ["veil", *sys.argv[3:]]
main()
"""


def _signalled(victim: str, how: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _SIGNALLER, victim, how, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _rows(out: Path) -> dict[str, tuple[State, int]]:
    with Ledger.open(out / LEDGER_NAME) as ledger:
        return {Path(k).name: (row.state, row.attempts) for k, row in ledger.rows().items()}


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name]


def test_a_file_that_kills_an_in_process_run_is_failed_after_max_tries(tmp_path: Path) -> None:
    """Three real `veil redact --jobs 1` die on the same file; the fourth fails it with the reason
    and finishes; reruns skip it, `veil status` lists it, `--retry-failed` tries it again."""
    assert MAX_TRIES == 3
    src, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    first, deadly, last = example_photos(src, 3, smallest=224)
    clean = run_cli("redact", src, "-o", reference, "--jobs", "1")
    assert clean.exit_code == 0, clean.stderr
    victim = deadly.name

    for death in (1, 2, 3):
        died = _signalled(victim, "SIGKILL", "redact", src, "-o", out, "--jobs", "1")
        assert died.returncode == -signal.SIGKILL, died.stderr
        rows = _rows(out)
        assert rows[victim] == (State.RUNNING, death)
        assert rows[first.name] == (State.DONE, 1)
        # The file veil died on waits behind the others: the second run finished the last photo.
        assert rows[last.name] == ((State.PENDING, 0) if death == 1 else (State.DONE, 1))
        assert len(_temps(out)) == 1, "the SIGKILLed run's partial output is there to be removed"

    # Still under the signaller: had this run tried the file again, it would have died again.
    gave_up = _signalled(victim, "SIGKILL", "redact", src, "-o", out, "--jobs", "1")
    assert gave_up.returncode == 1, gave_up.stderr
    reason = ("veil stopped while working on this file 3 times (it may crash veil); "
              "--retry-failed tries it again")
    assert f"error {deadly}: {reason}" in gave_up.stderr
    assert "skipped 2 files done earlier" in gave_up.stderr
    assert _rows(out) == {first.name: (State.DONE, 1), victim: (State.FAILED, 3), last.name: (State.DONE, 1)}
    assert not (out / victim).exists() and not _temps(tmp_path)
    for photo in (first, last):
        assert (out / photo.name).read_bytes() == (reference / photo.name).read_bytes()

    again = _signalled(victim, "SIGKILL", "redact", src, "-o", out, "--jobs", "1")
    assert again.returncode == 1, again.stderr
    assert "skipped 1 file that failed earlier" in again.stderr and "skipped 2 files done" in again.stderr
    assert _rows(out)[victim] == (State.FAILED, 3)

    status = run_cli("status", out)
    assert status.exit_code == 0
    lines = status.stdout.splitlines()
    assert lines[0].startswith("3 files: 2 done, 1 failed, 0 pending, 0 running")
    assert f"  {deadly.resolve()}: {reason} [3 tries]" in lines

    retried = _signalled(victim, "SIGKILL", "redact", src, "-o", out, "--jobs", "1", "--retry-failed")
    assert retried.returncode == -signal.SIGKILL, "--retry-failed did not try the file again"
    assert _rows(out)[victim] == (State.RUNNING, 1), "--retry-failed starts counting again"

    fixed = run_cli("redact", src, "-o", out, "--jobs", "1")  # whatever killed veil is gone
    assert fixed.exit_code == 0, fixed.stderr
    assert _rows(out)[victim] == (State.DONE, 2)
    assert (out / victim).read_bytes() == (reference / victim).read_bytes()
    assert not _temps(tmp_path)


def test_ctrl_c_and_sigterm_mid_file_do_not_count_as_tries(tmp_path: Path) -> None:
    """More graceful stops than MAX_TRIES on the same file, each mid-file with its temporary
    output on disk: the file keeps no tries, is redone, and a later hard death still counts."""
    src, out = tmp_path / "in", tmp_path / "out"
    first, stopped, last = example_photos(src, 3, smallest=224)
    victim = stopped.name
    for how, code, word in [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated"),
                            ("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")]:
        run = _signalled(victim, how, "redact", src, "-o", out, "--jobs", "1")
        assert run.returncode == code, run.stderr
        assert run.stderr.splitlines()[-1].startswith(word)
        rows = _rows(out)
        assert rows[victim] == (State.PENDING, 0), f"a {how} counted against the file"
        assert rows[first.name] == (State.DONE, 1) and rows[last.name] == (State.PENDING, 0)
        assert not _temps(tmp_path)

    died = _signalled(victim, "SIGKILL", "redact", src, "-o", out, "--jobs", "1")
    assert died.returncode == -signal.SIGKILL
    assert _rows(out)[victim] == (State.RUNNING, 1)

    done = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert done.exit_code == 0, done.stderr
    assert _rows(out) == {first.name: (State.DONE, 1), victim: (State.DONE, 2), last.name: (State.DONE, 1)}



def test_sigterm_to_a_pool_driver_mid_batch_costs_its_workers_files_nothing(tmp_path: Path) -> None:
    """A real `--jobs 2` driver is told to stop while its workers write: each file they were on
    goes back to pending with no try counted, and their partial outputs go."""
    src, out = tmp_path / "in", tmp_path / "out"
    example_photos(src, 6)
    driver = subprocess.Popen([sys.executable, "-m", "veil", "redact", str(src), "-o", str(out),
                               "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None and not (out.is_dir() and _temps(out)):
        time.sleep(0.01)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 143, stderr
    rows = _rows(out)
    assert any(state is State.PENDING for state, _ in rows.values()), "the batch ended before the signal"
    assert all(tries == (1 if state is State.DONE else 0) for state, tries in rows.values()), rows
    assert not _temps(tmp_path)

# --- The driver and the ledger with stand-in executors (no detector) ---------------------------

def _key(path: Path) -> str:
    return str(path.resolve())


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wanted() -> str:
    return settings_hash(Config(), None, "")


def _ok(task: Task) -> Outcome:
    with staged_output(task.target) as tmp:
        tmp.write_bytes(task.source.read_bytes())
    return Outcome(FileReport(task.source, task.target, ok=True), staged=tmp)


def _photos(tmp_path: Path, *names: str) -> tuple[list[Job], Path]:
    out = tmp_path / "out"
    out.mkdir()
    jobs = []
    for i, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(EXAMPLE.read_bytes() + bytes([i]))  # distinct content
        jobs.append(Job(path, out / name))
    return jobs, out


def _run(jobs: list[Job], ledger: Ledger, executor: OneAtATime, **settings: object) -> list[FileReport]:
    return run_batch(jobs, BatchSettings(Config(), **settings), executor, ledger,  # type: ignore[arg-type]
                     check=lambda job: None, on_result=lambda report, counts: None)


def _left_running(ledger: Ledger, job: Job, attempts: int) -> None:
    """What `attempts` runs that died with this file in flight leave in the ledger."""
    key = _key(job.source)
    ledger.plan([(key, _sha(job.source), _wanted(), str(job.target))])
    for _ in range(attempts):
        ledger.start(key)


def test_deaths_of_a_pool_driver_and_of_its_workers_add_up_to_max_tries(tmp_path: Path) -> None:
    """Two drivers died with the file in flight; the next run's worker dies on it once more: that
    is the third try, and the file is failed without a fourth."""
    [job], out = _photos(tmp_path, "a.jpg")
    executor = OneAtATime(lambda task: lost(task, "the worker process died (killed by SIGKILL)"))
    with Ledger.open(out / LEDGER_NAME) as ledger:
        _left_running(ledger, job, 2)
        [report] = _run([job], ledger, executor)
        row = ledger.rows()[_key(job.source)]
    assert executor.tries == [("a.jpg", 3)]
    assert report.error == f"the worker process died (killed by SIGKILL); failed after {MAX_TRIES} tries"
    assert (row.state, row.attempts) == (State.FAILED, MAX_TRIES)


def test_a_file_veil_died_on_max_tries_times_is_failed_unsubmitted_and_retried_on_request(
        tmp_path: Path) -> None:
    jobs, out = _photos(tmp_path, "a.jpg", "b.jpg")
    executor = OneAtATime(_ok)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        _left_running(ledger, jobs[0], MAX_TRIES)
        reports = _run(jobs, ledger, executor)
        assert executor.tries == [("b.jpg", 1)]
        assert [r.ok for r in reports] == [False, True]
        assert reports[0].error is not None and reports[0].error.startswith(
            f"veil stopped while working on this file {MAX_TRIES} times")
        row = ledger.rows()[_key(jobs[0].source)]
        assert (row.state, row.attempts, row.error) == (State.FAILED, MAX_TRIES, reports[0].error)

        _run(jobs, ledger, executor)
        assert executor.tries == [("b.jpg", 1)], "a failed file was tried again without being asked"
        _run(jobs, ledger, executor, retry_failed=True)
        assert executor.tries == [("b.jpg", 1), ("a.jpg", 1)]
        row = ledger.rows()[_key(jobs[0].source)]
        assert (row.state, row.attempts) == (State.DONE, 1)


def test_one_try_short_of_max_it_is_tried_again_after_the_others(tmp_path: Path) -> None:
    jobs, out = _photos(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    executor = OneAtATime(_ok)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        _left_running(ledger, jobs[0], MAX_TRIES - 1)
        assert all(r.ok for r in _run(jobs, ledger, executor))
        assert executor.tries == [("b.jpg", 1), ("c.jpg", 1), ("a.jpg", MAX_TRIES)]
        assert ledger.rows()[_key(jobs[0].source)].attempts == MAX_TRIES


def test_only_an_unsettled_row_with_the_same_content_and_settings_keeps_its_tries(tmp_path: Path) -> None:
    """A done or failed file's tries, and those of other content or settings, never count towards
    failing the file later."""
    with Ledger.open(tmp_path / LEDGER_NAME) as ledger:
        def tries_after_plan(state: str, content: str = "c", settings: str = "s") -> int:
            key = f"/{len(ledger.rows())}"  # a row of its own
            ledger.plan([(key, "c", "s", "/out" + key)])
            for _ in range(2):
                ledger.start(key)
            if state == "pending":
                ledger.requeue(key, "the worker process died")
            elif state != "running":
                ledger.finish(key, FileReport(Path(key), None, ok=state == "done"))
            ledger.plan([(key, content, settings, "/out" + key)])
            row = ledger.rows()[key]
            assert row.state is State.PENDING
            return row.attempts

        assert tries_after_plan("running") == 2
        assert tries_after_plan("pending") == 2
        assert tries_after_plan("done") == 0
        assert tries_after_plan("failed") == 0
        assert tries_after_plan("running", content="changed") == 0
        assert tries_after_plan("running", settings="changed") == 0


def test_a_stopped_batch_gives_its_file_in_flight_the_try_back(tmp_path: Path) -> None:
    jobs, out = _photos(tmp_path, "a.jpg", "b.jpg")

    def interrupted(task: Task) -> Outcome:
        if task.source.name == "b.jpg":
            raise KeyboardInterrupt
        return _ok(task)

    executor = OneAtATime(interrupted)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        _left_running(ledger, jobs[1], 1)  # one hard death before: it still counts
        with pytest.raises(KeyboardInterrupt):
            _run(jobs, ledger, executor)
        rows = {Path(k).name: (row.state, row.attempts) for k, row in ledger.rows().items()}
    assert executor.closed
    assert rows == {"a.jpg": (State.DONE, 1), "b.jpg": (State.PENDING, 1)}


def test_a_broken_installation_costs_the_file_no_try(tmp_path: Path) -> None:
    [job], out = _photos(tmp_path, "a.jpg")
    executor = OneAtATime(lambda task: Outcome(FileReport(task.source, None, ok=False, error="no model"),
                                              fatal="no model"))
    with Ledger.open(out / LEDGER_NAME) as ledger:
        with pytest.raises(ModelError):
            _run([job], ledger, executor)
        row = ledger.rows()[_key(job.source)]
    assert (row.state, row.attempts) == (State.PENDING, 0)


def test_giving_back_leaves_a_row_recorded_done_alone(tmp_path: Path) -> None:
    """Ctrl-C between the ledger's 'done' and the move: the row stays done, its output staged, for
    the rerun to move into place (the two-step commit)."""
    with Ledger.open(tmp_path / LEDGER_NAME) as ledger:
        for key in ("/done", "/running"):
            ledger.plan([(key, "c", "s", key + ".out")])
            ledger.start(key)
        ledger.finish("/done", FileReport(Path("/done"), Path("/done.out"), ok=True), Path("/staged"))
        assert ledger.give_back(["/done", "/running"]) == {"/running"}
        rows = ledger.rows()
    assert (rows["/done"].state, rows["/done"].attempts, rows["/done"].staged) == (State.DONE, 1, "/staged")
    assert (rows["/running"].state, rows["/running"].attempts) == (State.PENDING, 0)


def test_ctrl_c_before_a_finished_file_is_recorded_deletes_its_output_with_the_try(tmp_path: Path) -> None:
    """The worker finished, the driver had not yet written 'done': the row goes back to pending,
    so no rerun would move that staged output into place; it is deleted, not left behind."""

    class _StoppedBeforeDone(Ledger):
        def finish(self, source: str, report: FileReport, staged: Path | None = None) -> None:
            raise KeyboardInterrupt

    [job], out = _photos(tmp_path, "a.jpg")
    with _StoppedBeforeDone.open(out / LEDGER_NAME) as ledger, pytest.raises(KeyboardInterrupt):
        _run([job], ledger, OneAtATime(_ok))
    assert _rows(out) == {"a.jpg": (State.PENDING, 0)}
    assert not _temps(out) and not job.target.exists()
