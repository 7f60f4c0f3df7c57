"""The two-step commit of a batch file: the ledger says done (naming the worker's staged output),
then the driver moves that output into place. A veil SIGKILLed between the two, or in the middle
of the move, leaves ledger and folder consistent, and the rerun finishes the move instead of
redoing the file."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLE
from helpers import OneAtATime, example_photos, run_cli
from veil._atomic import TEMP_MARK, staged_output
from veil._types import Config, FileReport
from veil.archive import LEDGER_NAME, Ledger, State
from veil.archive.driver import BatchSettings, run_batch
from veil.archive.worker import Outcome, Task
from veil.batch import Job

# Runs `veil ARGS` with the driver's publish step wrapped: on its NTH call the process SIGKILLs
# itself at WHEN. The wrapper lives only in this subprocess; nothing in veil reads a test switch.
_KILLER = r"""
import multiprocessing, os, signal, sys
from pathlib import Path
from veil.archive import driver

when, nth, pids = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
real, calls = driver.publish, [0]

def die():
    pids.write_text(" ".join(str(p.pid) for p in multiprocessing.active_children()))
    os.kill(os.getpid(), signal.SIGKILL)

def publish(tmp, target, overwrite):
    calls[0] += 1
    if calls[0] == nth:
        if when == "before-move":  # the ledger says done; the output is still at its staged name
            die()
        if when == "mid-move":  # publish's hard link is made, the staged name not yet removed
            os.link(tmp, target)
            die()
    real(tmp, target, overwrite)
    if calls[0] == nth and when == "after-move":  # in place; the ledger still names the staged file
        die()

driver.publish = publish
from veil.cli import main
sys.argv = ["veil", *sys.argv[4:]]
main()
"""


def _kill_at(when: str, nth: int, src: Path, out: Path, jobs: int) -> None:
    """Run the killer; return once it and every worker process it had are gone."""
    pids = out.parent / "workers.pids"
    killed = subprocess.run([sys.executable, "-c", _KILLER, when, str(nth), str(pids), "redact", str(src),
                             "-o", str(out), "--jobs", str(jobs)], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    workers = [int(pid) for pid in pids.read_text().split()]
    assert (len(workers) > 0) == (jobs > 1)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "worker processes outlived their SIGKILLed driver"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name]


@pytest.mark.parametrize("when", ["before-move", "mid-move", "after-move"])
def test_sigkill_inside_the_commit_window_is_finished_not_redone(tmp_path: Path, when: str) -> None:
    """A real `veil redact` dies while committing its second file; the rerun moves that file's
    staged output into place (same inode, same bytes, same ledger timings and tries) and does only
    the file that had not started."""
    src, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    photos = example_photos(src, 3, smallest=224)
    clean = run_cli("redact", src, "-o", reference, "--jobs", "1")
    assert clean.exit_code == 0, clean.stderr

    _kill_at(when, 2, src, out, jobs=1)

    with Ledger.open(out / LEDGER_NAME) as ledger:
        rows = {Path(key).name: row for key, row in ledger.rows().items()}
    first, second, third = (rows[p.name] for p in photos)
    assert (first.state, first.staged) == (State.DONE, None)
    assert third.state is State.PENDING
    assert second.state is State.DONE and second.staged is not None
    staged, final = Path(second.staged), out / photos[1].name
    # Whatever sits at a final path, the ledger has recorded done.
    assert sorted(p.name for p in out.glob("photo*.jpg")) == sorted(
        [photos[0].name] + ([photos[1].name] if when != "before-move" else []))
    assert staged.exists() == (when != "after-move")
    assert _temps(tmp_path) == ([staged] if when != "after-move" else [])
    if when == "mid-move":
        assert os.path.samefile(staged, final)
    committed = staged if staged.exists() else final
    inode, digest = committed.stat().st_ino, _sha(committed)

    resumed = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert resumed.exit_code == 0, resumed.stderr
    assert "skipped 2 files done earlier" in resumed.stderr
    redone = [line for line in resumed.stderr.splitlines() if line.startswith("done ")]
    assert len(redone) == 1 and photos[2].name in redone[0]
    assert final.stat().st_ino == inode and _sha(final) == digest, "the committed output was rewritten"

    with Ledger.open(out / LEDGER_NAME) as ledger:
        after = {Path(key).name: row for key, row in ledger.rows().items()}
    kept = after[photos[1].name]
    assert (kept.state, kept.staged) == (State.DONE, None)
    assert (kept.attempts, kept.started, kept.finished) == (second.attempts, second.started, second.finished)
    assert {row.state for row in after.values()} == {State.DONE}
    assert {row.attempts for row in after.values()} == {1}
    for photo in photos:
        assert (out / photo.name).read_bytes() == (reference / photo.name).read_bytes(), photo.name
    assert not _temps(tmp_path)

    again = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert again.exit_code == 0 and "skipped 3 files done earlier" in again.stderr


@pytest.mark.slow
def test_sigkill_inside_the_commit_window_with_worker_processes(tmp_path: Path) -> None:
    """The same with `--jobs 2`: the driver dies holding a done file not yet moved into place
    while the other worker may be mid-file or finished but unrecorded. The rerun moves the done
    file into place and redoes exactly the files not recorded done."""
    src, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    photos = example_photos(src, 5, smallest=224)
    clean = run_cli("redact", src, "-o", reference, "--jobs", "2")
    assert clean.exit_code == 0, clean.stderr

    _kill_at("before-move", 3, src, out, jobs=2)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        before = {Path(key).name: row for key, row in ledger.rows().items()}
    done = {name for name, row in before.items() if row.state is State.DONE}
    [waiting] = [name for name, row in before.items() if row.staged is not None]
    assert len(done) == 3 and waiting in done
    assert {p.name for p in out.glob("photo*.jpg")} == done - {waiting}
    # Beside the done file's staged output, only a file whose row is still `running` (finished by
    # its worker, never recorded) may have left one; the rerun deletes it and redoes that file.
    running = {name for name, row in before.items() if row.state is State.RUNNING}
    assert {p.name.split(TEMP_MARK)[0].lstrip(".") + ".jpg" for p in _temps(out)} <= running | {waiting}
    staged = Path(before[waiting].staged or "")
    inode, digest = staged.stat().st_ino, _sha(staged)

    resumed = run_cli("redact", src, "-o", out, "--jobs", "2")
    assert resumed.exit_code == 0, resumed.stderr
    assert "skipped 3 files done earlier" in resumed.stderr
    redone = {Path(line.split(" -> ")[0].removeprefix("done ")).name
              for line in resumed.stderr.splitlines() if line.startswith("done ")}
    assert redone == {p.name for p in photos} - done
    assert (out / waiting).stat().st_ino == inode and _sha(out / waiting) == digest
    with Ledger.open(out / LEDGER_NAME) as ledger:
        after = {Path(key).name: row for key, row in ledger.rows().items()}
    for name in done:
        assert (after[name].attempts, after[name].finished) == (before[name].attempts, before[name].finished)
    assert {row.state for row in after.values()} == {State.DONE}
    assert all(row.staged is None for row in after.values())
    for photo in photos:
        assert (out / photo.name).read_bytes() == (reference / photo.name).read_bytes(), photo.name
    assert not _temps(tmp_path)


def _staged_copy(task: Task) -> Outcome:
    """'Redacts' by copying the input to a staged file beside the target, as a worker does."""
    with staged_output(task.target) as tmp:
        tmp.write_bytes(task.source.read_bytes())
    return Outcome(FileReport(task.source, task.target, ok=True), staged=tmp)


class _Staging(OneAtATime):
    """An executor that answers every task with `_staged_copy`."""

    def __init__(self) -> None:
        super().__init__(_staged_copy)


def _batch(jobs: list[Job], ledger: Ledger | None, executor: _Staging, after_each=None) -> list[FileReport]:  # type: ignore[no-untyped-def]
    return run_batch(jobs, BatchSettings(Config()), executor, ledger, check=lambda job: None,
                     on_result=lambda report, counts: None, after_each=after_each)


def _stage_by_hand(ledger: Ledger, job: Job) -> Path:
    """The state a kill right after the ledger's 'done' leaves: the output only at a staged name."""
    key = str(job.source.resolve())
    ledger.plan([(key, _sha(job.source), _settings(), str(job.target))])
    ledger.start(key)
    with staged_output(job.target) as tmp:
        tmp.write_bytes(job.source.read_bytes())
    ledger.finish(key, FileReport(job.source, job.target, ok=True), tmp)
    return tmp


def _settings() -> str:
    from veil.archive.ledger import settings_hash

    return settings_hash(Config(), None, "")


def test_a_staged_done_row_is_published_and_audited_once_not_resubmitted(tmp_path: Path) -> None:
    source, out = tmp_path / "a.jpg", tmp_path / "out"
    source.write_bytes(EXAMPLE.read_bytes())
    out.mkdir()
    job = Job(source, out / "a.jpg")
    audited: list[Path] = []

    def audit(report: FileReport) -> FileReport:
        assert report.output is not None and report.output.exists(), "audited before it was in place"
        audited.append(report.output)
        return FileReport(report.path, report.output, ok=True, audit={"clean": True})

    with Ledger.open(out / LEDGER_NAME) as ledger:
        tmp = _stage_by_hand(ledger, job)
        inode = tmp.stat().st_ino
        executor = _Staging()
        [report] = _batch([job], ledger, executor, audit)
        row = ledger.rows()[str(source.resolve())]
        assert executor.tries == []
        assert report.ok and report.audit == {"clean": True} and audited == [job.target]
        assert job.target.stat().st_ino == inode and not tmp.exists()
        assert (row.state, row.staged, row.attempts) == (State.DONE, None, 1)
        assert row.report is not None and row.report["audit"] == {"clean": True}
        _batch([job], ledger, executor, audit)
        assert executor.tries == [] and audited == [job.target], "audited twice"


def test_a_staged_output_whose_target_appeared_meanwhile_fails_and_leaves_it(tmp_path: Path) -> None:
    """Without --overwrite, a file that appears at the target while the worker works is not
    replaced: the driver's move fails, the row is failed saying why, and the staged file goes."""
    source, out = tmp_path / "a.jpg", tmp_path / "out"
    source.write_bytes(EXAMPLE.read_bytes())
    out.mkdir()
    job = Job(source, out / "a.jpg")

    class _Intruded(_Staging):
        def wait(self) -> tuple[Task, Outcome]:
            task, outcome = super().wait()
            task.target.write_bytes(b"someone else's file")
            return task, outcome

    with Ledger.open(out / LEDGER_NAME) as ledger:
        [report] = _batch([job], ledger, _Intruded())
        row = ledger.rows()[str(source.resolve())]
    assert not report.ok and "appeared while veil was working" in (report.error or "")
    assert (row.state, row.staged, row.error) == (State.FAILED, None, report.error)
    assert job.target.read_bytes() == b"someone else's file"
    assert not _temps(tmp_path)


def test_a_staged_output_the_driver_cannot_see_fails_with_the_reason(tmp_path: Path) -> None:
    """A Ray worker on a node whose output folder is not shared: its staged file is not here."""
    source, out = tmp_path / "a.jpg", tmp_path / "out"
    source.write_bytes(EXAMPLE.read_bytes())
    out.mkdir()

    class _Elsewhere(_Staging):
        def wait(self) -> tuple[Task, Outcome]:
            task, outcome = super().wait()
            assert outcome.staged is not None
            outcome.staged.unlink()
            return task, outcome

    [report] = _batch([Job(source, out / "a.jpg")], None, _Elsewhere())
    assert not report.ok and "filesystem every node shares" in (report.error or "")
    assert not (out / "a.jpg").exists()


def test_without_a_ledger_the_output_is_published_at_once(tmp_path: Path) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(EXAMPLE.read_bytes())
    [report] = _batch([Job(source, tmp_path / "b.jpg")], None, _Staging())
    assert report.ok and (tmp_path / "b.jpg").read_bytes() == source.read_bytes()
    assert not _temps(tmp_path)


def test_a_ledger_written_before_staged_outputs_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_NAME
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE files (source BLOB PRIMARY KEY, content_hash TEXT NOT NULL,
                settings_hash TEXT NOT NULL, state TEXT NOT NULL, output BLOB, error BLOB,
                attempts INTEGER NOT NULL DEFAULT 0, started REAL, finished REAL, seconds REAL,
                report TEXT);
            INSERT INTO meta VALUES ('format', 'veil-ledger'), ('version', '1');
            INSERT INTO files (source, content_hash, settings_hash, state, output, attempts)
                VALUES (x'2f612e6a7067', 'c', 's', 'done', x'2f622e6a7067', 1);
        """)
    db.close()
    with Ledger.open(path) as ledger:
        [row] = ledger.rows().values()
    assert (row.source, row.state, row.output, row.staged) == ("/a.jpg", State.DONE, "/b.jpg", None)
