"""Archive batches: the ledger skips, redoes and resumes the right files; workers that die cost a
try; a broken ledger is one clear line; the status command reads it back."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import EXAMPLE
from helpers import OneAtATime, example_photos, run_cli
from veil._types import Config, FileReport
from veil.archive import LEDGER_NAME, Ledger, LedgerError, State
from veil.archive.driver import MAX_TRIES, BatchSettings, run_batch
from veil.archive.worker import Outcome, Task, lost
from veil.batch import Job

TEMP_MARK = ".veil-partial-"


def _rows(out: Path) -> dict[str, tuple[State, int]]:
    with Ledger.open(out / LEDGER_NAME) as ledger:
        return {Path(k).name: (row.state, row.attempts) for k, row in ledger.rows().items()}


def _stamps(out: Path) -> dict[str, int]:
    """Each output's inode and change time: a file written again gets a new inode (atomic rename)."""
    return {p.name: p.stat().st_ino for p in out.glob("*.jpg")}


def test_rerun_skips_done_and_redoes_changed_input_and_settings(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    photos = example_photos(src, 3)
    first = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert first.exit_code == 0, first.stderr
    assert set(_rows(out).values()) == {(State.DONE, 1)}
    written = _stamps(out)

    again = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert again.exit_code == 0, again.stderr
    assert "skipped 3 files done earlier" in again.stderr and "\ndone " not in "\n" + again.stderr
    assert _stamps(out) == written

    # A changed input (same name, new bytes) is redone, and only it.
    with Image.open(EXAMPLE) as example:
        example.resize((300, 300)).rotate(90).save(photos[1], quality=90)
    changed = run_cli("redact", src, "-o", out, "--jobs", "1")
    assert changed.exit_code == 0, changed.stderr
    assert "skipped 2 files" in changed.stderr
    now = _stamps(out)
    assert [name for name in now if now[name] != written[name]] == [photos[1].name]
    with Image.open(out / photos[1].name) as redone:
        assert redone.size == (300, 300)

    # Another setting redoes every file, replacing veil's own outputs without --overwrite.
    noise = run_cli("redact", src, "-o", out, "--jobs", "1", "--mask", "noise")
    assert noise.exit_code == 0, noise.stderr
    assert "skipped" not in noise.stderr
    assert all(_stamps(out)[name] != now[name] for name in now)


def test_failed_files_are_skipped_until_retried_or_changed(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    example_photos(src, 2)
    bad = src / "broken.jpg"
    bad.write_bytes(b"not a photo at all")
    first = run_cli("redact", src, "-o", out)
    assert first.exit_code == 1
    assert _rows(out)["broken.jpg"] == (State.FAILED, 1)

    skipped = run_cli("redact", src, "-o", out)
    assert skipped.exit_code == 1, "a batch with a failed file is not a clean success"
    assert "skipped 1 file that failed earlier" in skipped.stderr
    assert _rows(out)["broken.jpg"] == (State.FAILED, 1)

    status = run_cli("status", out)
    assert status.exit_code == 0
    lines = status.stdout.splitlines()
    assert lines[0].startswith("3 files: 2 done, 1 failed, 0 pending")
    assert any(str(bad) in line and "broken.jpg" in line for line in lines[2:])

    retried = run_cli("redact", src, "-o", out, "--retry-failed")
    assert retried.exit_code == 1 and f"error {bad}" in retried.stderr
    assert _rows(out)["broken.jpg"] == (State.FAILED, 1)  # retried from a fresh count

    bad.write_bytes(EXAMPLE.read_bytes())  # fixed: new content is redone without --retry-failed
    fixed = run_cli("redact", src, "-o", out)
    assert fixed.exit_code == 0, fixed.stderr
    assert _rows(out)["broken.jpg"] == (State.DONE, 1)
    assert "1 failed" not in run_cli("status", out).stdout


@pytest.mark.parametrize("content", [b"this is not a database, just text\n" * 100, "foreign", "empty-tables"])
def test_a_corrupt_or_foreign_ledger_is_one_line_and_exit_2(tmp_path: Path, content: object) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    example_photos(src, 1)
    out.mkdir()
    ledger = out / LEDGER_NAME
    if isinstance(content, bytes):
        ledger.write_bytes(content)
    else:
        with sqlite3.connect(ledger) as db:
            db.execute("CREATE TABLE photos (name TEXT)")
            if content == "empty-tables":  # looks like ours, but says it is a newer format
                db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                db.execute("CREATE TABLE files (source BLOB)")
                db.execute("INSERT INTO meta VALUES ('format', 'veil-ledger'), ('version', '99')")
        db.close()
    before = ledger.read_bytes()
    for args in (("redact", src, "-o", out), ("status", out)):
        result = run_cli(*args)
        assert result.exit_code == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        assert str(ledger) in result.stderr and "ledger" in result.stderr.split(str(ledger))[1]
    assert ledger.read_bytes() == before, "a ledger veil cannot read must be left as it was"
    assert not (out / "photo00.jpg").exists()


def test_status_without_a_ledger_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("status", tmp_path)
    assert result.exit_code == 2 and "no veil ledger here" in result.stderr


def _always_lost(task: Task) -> Outcome:
    """Every worker dies, except on ok.jpg: the driver must give up on the file after MAX_TRIES."""
    if task.source.name == "ok.jpg":
        return Outcome(FileReport(task.source, task.target, ok=True))
    return lost(task, "the worker process died (killed by SIGKILL)")


def test_a_file_that_kills_every_worker_fails_after_max_tries_and_the_batch_goes_on(tmp_path: Path) -> None:
    deadly, fine = tmp_path / "deadly.jpg", tmp_path / "ok.jpg"
    for path in (deadly, fine):
        path.write_bytes(EXAMPLE.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    executor = OneAtATime(_always_lost)
    seen: list[FileReport] = []
    with Ledger.open(out / LEDGER_NAME) as ledger:
        reports = run_batch([Job(deadly, out / "deadly.jpg"), Job(fine, out / "ok.jpg")],
                            BatchSettings(Config()), executor, ledger, check=lambda job: None,
                            on_result=lambda report, counts: seen.append(report))
        rows = ledger.rows()
    attempts = [attempt for _, attempt in executor.tries]
    assert attempts.count(1) == 2 and max(attempts) == MAX_TRIES
    assert [r.ok for r in reports] == [False, True]
    assert reports[0].error == f"the worker process died (killed by SIGKILL); failed after {MAX_TRIES} tries"
    row = rows[str(deadly.resolve())]
    assert (row.state, row.attempts, row.error) == (State.FAILED, MAX_TRIES, reports[0].error)
    assert len(seen) == 2, "a retried file is reported once, when it is settled"


class KillerPlan:
    """Stands in for an edit plan; asked about the frame count, it kills its own worker process."""

    def check_frame_count(self, frames: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_by_a_file_is_replaced_and_the_file_failed_after_max_tries(tmp_path: Path) -> None:
    """Real worker processes: one file SIGKILLs whichever worker takes it, every time."""
    from veil.archive.pool import LocalPool

    src, out = tmp_path / "in", tmp_path / "out"
    photos = example_photos(src, 3)
    out.mkdir()
    pool = LocalPool(2)
    plan_for = {photos[1]: KillerPlan()}
    tasks = [Task(p, out / p.name, Config(threads=1), False, plan_for.get(p)) for p in photos]  # type: ignore[arg-type]
    outcomes: dict[str, list[Outcome]] = {p.name: [] for p in photos}
    try:
        queue = list(tasks)
        while queue or pool.busy():
            while queue and pool.can_take(queue[0]):
                pool.submit(queue.pop(0))
            task, outcome = pool.wait()
            outcomes[task.source.name].append(outcome)
            if outcome.lost and task.attempt < MAX_TRIES:
                queue.append(Task(task.source, task.target, task.config, False, task.plan,
                                  attempt=task.attempt + 1))
    finally:
        pool.close()
    killed = outcomes[photos[1].name]
    assert [o.lost for o in killed] == [True] * MAX_TRIES
    assert all("killed by SIGKILL" in (o.report.error or "") for o in killed)
    staged = []
    for name in (photos[0].name, photos[2].name):
        [outcome] = outcomes[name]
        # The worker leaves the finished output under its temporary name: the driver publishes it.
        assert outcome.report.ok and outcome.report.output == out / name and not (out / name).exists()
        assert outcome.staged is not None and TEMP_MARK in outcome.staged.name
        with Image.open(outcome.staged) as image, Image.open(src / name) as original:
            assert image.size == original.size
        staged.append(outcome.staged)
    assert not (out / photos[1].name).exists()
    assert sorted(p for p in out.iterdir() if TEMP_MARK in p.name) == sorted(staged), \
        "the killed worker's partial file is still there"


def test_without_ray_installed_the_error_names_the_extra(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.delitem(sys.modules, "veil.archive.ray_runner", raising=False)
    [photo] = example_photos(tmp_path / "in", 1)
    result = run_cli("redact", photo, "-o", tmp_path / "out.jpg", "--ray", "auto")
    assert result.exit_code == 2
    assert "pip install 'veil[ray]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.jpg").exists()


def test_a_ledger_error_while_open_is_a_ledger_error(tmp_path: Path) -> None:
    """Damage found after opening (a row with an unknown state) is reported, not a crash."""
    path = tmp_path / LEDGER_NAME
    with Ledger.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute("INSERT INTO files (source, content_hash, settings_hash, state) VALUES "
                   "(x'61', '', '', 'exploded')")
    db.close()
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="damaged"):
        ledger.rows()


def _children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (from /proc: no psutil needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.slow
def test_sigkill_halfway_then_resume_skips_exactly_the_done_files(tmp_path: Path) -> None:
    """A real `veil redact --jobs 2` is SIGKILLed once a third of its outputs exist. The rerun skips
    exactly what the ledger recorded as done, redoes the rest, and ends byte for byte where an
    uninterrupted run ends, with no temporary file left anywhere."""
    src, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    photos = example_photos(src, 12)
    uninterrupted = run_cli("redact", src, "-o", reference, "--jobs", "2")
    assert uninterrupted.exit_code == 0, uninterrupted.stderr

    driver = subprocess.Popen([sys.executable, "-m", "veil", "redact", str(src), "-o", str(out),
                               "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([p for p in out.glob("photo*.jpg")
                                                if TEMP_MARK not in p.name]) < 4:
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        time.sleep(0.02)
    workers = _children(driver.pid)
    driver.kill()
    driver.wait()
    assert _gone(workers), "worker processes outlived their SIGKILLed driver"

    with Ledger.open(out / LEDGER_NAME) as ledger:
        rows_before = {Path(k).name: row for k, row in ledger.rows().items()}
    done_before = {name for name, row in rows_before.items() if row.state is State.DONE}
    # An output at a final path is always one the ledger recorded done; a done file the driver had
    # not yet moved into place waits under the staged name the ledger gives. Any other temporary
    # file belongs to a row still `running`: a worker finished it but the driver never recorded it
    # (the rerun deletes it and redoes the file). A worker stopped mid-file deletes its own.
    published = {p.name for p in out.glob("photo*.jpg") if TEMP_MARK not in p.name}
    assert published <= done_before
    staged = {name: Path(row.staged) for name, row in rows_before.items()
              if row.staged is not None and Path(row.staged).exists()}
    running = {name for name, row in rows_before.items() if row.state is State.RUNNING}
    temps = [p for p in out.iterdir() if TEMP_MARK in p.name]
    assert set(staged.values()) <= set(temps)
    assert {p.name.split(TEMP_MARK)[0].lstrip(".") + ".jpg" for p in temps if p not in staged.values()} \
        <= running, "a temporary file the ledger cannot account for"
    assert 4 <= len(done_before) < len(photos), "the kill did not land halfway"
    inodes = {name: (staged[name] if name in staged else out / name).stat().st_ino for name in done_before}

    resumed = run_cli("redact", src, "-o", out, "--jobs", "2")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"skipped {len(done_before)} files done earlier" in resumed.stderr
    redone = {Path(line.split(" -> ")[0].removeprefix("done ")).name
              for line in resumed.stderr.splitlines() if line.startswith("done ")}
    assert redone == {p.name for p in photos} - done_before, "a file was done twice or not at all"
    assert {name: (out / name).stat().st_ino for name in done_before} == inodes
    for photo in photos:
        assert (out / photo.name).read_bytes() == (reference / photo.name).read_bytes(), photo.name
    rows = _rows(out)
    assert {state for state, _ in rows.values()} == {State.DONE}
    # A file a worker had started when the driver died counts a second try; no other file does.
    assert {name for name, (_, tries) in rows.items() if tries != 1} <= redone
    assert {tries for _, tries in rows.values()} <= {1, 2}
    leftovers = [p for p in tmp_path.rglob("*") if TEMP_MARK in p.name]
    assert not leftovers


def test_an_input_named_twice_is_done_once(tmp_path: Path) -> None:
    [photo] = example_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    result = run_cli("redact", photo, tmp_path / "in" / ".." / "in" / photo.name, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("done ") == 1
    assert _rows(out) == {photo.name: (State.DONE, 1)}
