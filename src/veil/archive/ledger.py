"""The batch ledger: one SQLite row per input, so a killed or failed batch resumes where it stopped.

A row is keyed by the input's resolved path and holds the hash of its content and of the settings
it was (or is being) redacted with, its state, its output path, its error and timings. Only the
driver of a batch writes it (never a worker, local or on Ray), one statement per change, so
SQLite's journal keeps it whole through a SIGKILL at any moment.

States: pending (planned, not started) -> running (handed to a worker) -> done | failed. A row
found `running` when a batch starts belongs to a run that died: its file is redone, unless veil
has died on it `max_tries` times (the driver then fails it: it may be what kills veil).

`attempts` counts the tries of the row's current content and settings since it last settled:
`start` adds one, a batch stopped gracefully (Ctrl-C, SIGTERM) gives the try back, and planning
the file again after it was done or failed, or with new content or settings, starts from zero.
So it counts only the hard deaths (SIGKILL, a crash, the OOM killer) and the tries it was given.

Done is written together with `staged`, the temporary name the worker left the output under,
before the driver moves it into place; `staged` is cleared once it has. A done row whose `staged`
is still set belongs to a run killed between the two: the next run finishes the move.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._errors import VeilError
from .._types import Config, FileReport

LEDGER_NAME = ".veil-ledger.sqlite"
# A long video's segments have rows of their own, named after the file's (archive/segmented.py).
SEGMENT_MARK = "#segment-"
_FORMAT = "veil-ledger"
_VERSION = "1"
_HASH_CHUNK = 1 << 20


class LedgerError(VeilError):
    """The ledger file cannot be used: corrupt, another program's database, or a newer format."""


class State(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Row:
    """What the ledger knows about one input."""

    source: str
    content_hash: str
    settings_hash: str
    state: State
    output: str | None
    error: str | None
    attempts: int
    started: float | None
    finished: float | None
    seconds: float | None
    report: dict[str, Any] | None
    staged: str | None = None

    def file_report(self) -> FileReport:
        """The report stored when the file finished (rebuilt for a skipped file's line in --report)."""
        data = self.report or {}
        output = self.output if self.state is State.DONE else None
        return FileReport(
            path=Path(self.source), output=Path(output) if output else None,
            ok=self.state is State.DONE, kind=data.get("kind", "image"), frames=data.get("frames", 0),
            faces=data.get("faces", 0), faces_per_frame=tuple(data.get("faces_per_frame", ())),
            tracked_frames=data.get("frames_with_tracked_masks", 0),
            low_score_frames=data.get("frames_with_low_confidence_masks", 0),
            lowest_score=data.get("lowest_score"), seconds=data.get("seconds", 0.0),
            error=self.error, audit=data.get("audit"))


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: a changed input is redone even if its name and size are not."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# Settings that change how fast veil works, never what it writes: not part of the settings hash.
_SPEED_ONLY = frozenset({"threads"})


def settings_hash(config: Config, plan_digest: str | None = None, version: str = "") -> str:
    """SHA-256 of every setting that shapes an output, the edit plan file's digest, and veil's
    version (a new detector or encoder can write a different file)."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name not in _SPEED_ONLY}
    data = {"config": {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in fields.items()},
            "plan": plan_digest, "version": version}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source BLOB PRIMARY KEY,
    content_hash TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    output BLOB,
    error BLOB,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    seconds REAL,
    report TEXT,
    staged BLOB
);
"""
_COLUMNS = ("source, content_hash, settings_hash, state, output, error, attempts, started, finished, "
            "seconds, report, staged")


class Ledger:
    """The open ledger of one batch; every change is committed at once."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open or create the ledger at `path`; a file that is not a veil ledger raises LedgerError."""
        existed = path.exists()
        if existed and not path.is_file():
            raise LedgerError("the ledger path is not a file", path)
        try:
            db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger: {exc}", path) from None
        try:
            if existed and path.stat().st_size > 0:
                cls._check(db, path)
            else:
                db.executescript(_SCHEMA)
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [("format", _FORMAT), ("version", _VERSION)])
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LedgerError(f"not a veil ledger ({exc}); move it away or pass another --ledger",
                              path) from None
        except LedgerError:
            db.close()
            raise
        return cls(path, db)

    @staticmethod
    def _check(db: sqlite3.Connection, path: Path) -> None:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if meta.get("format") != _FORMAT or "files" not in tables:
            raise LedgerError("this file is not a veil ledger (another program's database); move it "
                              "away or pass another --ledger", path)
        if meta.get("version") != _VERSION:
            raise LedgerError(f"ledger format {meta.get('version')} is not the {_VERSION} this veil "
                              "reads; use the veil that wrote it or another --ledger", path)
        columns = {row[1] for row in db.execute("PRAGMA table_info(files)")}
        if "staged" not in columns:  # a ledger from before the driver published the outputs
            try:
                db.execute("ALTER TABLE files ADD COLUMN staged BLOB")
            except sqlite3.OperationalError as exc:
                raise LedgerError(f"cannot add a column to this ledger of an earlier veil ({exc})",
                                  path) from None
        db.execute(f"SELECT {_COLUMNS} FROM files LIMIT 1").fetchall()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self) -> dict[str, Row]:
        try:
            cursor = self._db.execute(f"SELECT {_COLUMNS} FROM files")
            rows = (Row(_text(r[0]), r[1], r[2], State(r[3]), _text(r[4]), _text(r[5]), r[6], r[7],
                        r[8], r[9], json.loads(r[10]) if r[10] else None, _text(r[11])) for r in cursor)
            return {row.source: row for row in rows}
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise LedgerError(f"the ledger is damaged ({exc}); move it away to start over",
                              self.path) from None

    def plan(self, entries: Iterable[tuple[str, str, str, str]]) -> None:
        """Mark (source, content hash, settings hash, output) pending, in one transaction.

        A row left unsettled (pending or running) with the same content and settings keeps its
        tries, so deaths add up across runs; any other row starts counting again."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO files (source, content_hash, settings_hash, state, output) "
                "VALUES (?, ?, ?, 'pending', ?) ON CONFLICT(source) DO UPDATE SET "
                "content_hash=excluded.content_hash, settings_hash=excluded.settings_hash, "
                "state='pending', output=excluded.output, error=NULL, started=NULL, finished=NULL, "
                "seconds=NULL, report=NULL, staged=NULL, attempts=CASE WHEN files.state IN "
                "('pending', 'running') AND files.content_hash=excluded.content_hash AND "
                "files.settings_hash=excluded.settings_hash THEN files.attempts ELSE 0 END",
                [(_blob(source), content, wanted, _blob(output)) for source, content, wanted, output in entries])

    def start(self, source: str) -> None:
        self._write("UPDATE files SET state='running', attempts=attempts+1, started=? WHERE source=?",
                    (time.time(), _blob(source)))

    def requeue(self, source: str, error: str) -> None:
        """A worker died on this file and it will be tried again: pending, with the reason kept."""
        self._write("UPDATE files SET state='pending', error=? WHERE source=?",
                    (_blob(error), _blob(source)))

    def give_back(self, sources: Iterable[str]) -> set[str]:
        """The batch was stopped (Ctrl-C, SIGTERM, an error of its own) while these files were
        being worked on. That is not the files' doing: each one still `running` goes back to
        pending with its try returned. A row already done (its output perhaps still staged) or
        requeued is left as it is. Returns the rows changed."""
        changed = set()
        try:
            with self._transaction():
                for source in sources:
                    cursor = self._db.execute(
                        "UPDATE files SET state='pending', attempts=MAX(attempts-1, 0), started=NULL "
                        "WHERE source=? AND state='running'", (_blob(source),))
                    if cursor.rowcount:
                        changed.add(source)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write the ledger: {exc}", self.path) from None
        return changed

    def finish(self, source: str, report: FileReport, staged: Path | None = None) -> None:
        """Done or failed, in one statement. A done file whose output still sits at its temporary
        name `staged` is done from here on: a rerun moves that file into place, never redoes it."""
        state = State.DONE if report.ok else State.FAILED
        self._write("UPDATE files SET state=?, error=?, finished=?, seconds=?, report=?, staged=? "
                    "WHERE source=?",
                    (state.value, _blob(report.error), time.time(), report.seconds,
                     json.dumps(report.to_json()), _blob(str(staged)) if staged else None, _blob(source)))

    def published(self, source: str, report: FileReport | None = None) -> None:
        """The done file's output is in place (and `report`, when given, adds what was learnt
        after: the audit's verdict)."""
        if report is None:
            self._write("UPDATE files SET staged=NULL WHERE source=?", (_blob(source),))
        else:
            self._write("UPDATE files SET staged=NULL, report=? WHERE source=?",
                        (json.dumps(report.to_json()), _blob(source)))

    def forget(self, sources: Iterable[str]) -> None:
        """Delete these rows (a long video's segment rows, once the file is settled)."""
        try:
            with self._transaction():
                self._db.executemany("DELETE FROM files WHERE source=?",
                                     [(_blob(source),) for source in sources])
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write the ledger: {exc}", self.path) from None

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write the ledger: {exc}", self.path) from None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db, self._path = db, path

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise LedgerError(f"cannot write the ledger: {error}", self._path) from None
        else:
            self._db.execute("ROLLBACK")


# Paths and messages are stored as bytes: a file name need not be valid UTF-8 (os.fsdecode turns
# its stray bytes into lone surrogates, which SQLite's text type cannot hold).
def _blob(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")


def _text(data: bytes | str | None) -> str | None:
    if data is None or isinstance(data, str):
        return data
    return data.decode("utf-8", "surrogateescape")


def unsettled_tries(row: Row | None, digest: str, wanted: str) -> int:
    """The tries already spent on this content with these settings by runs that never settled it:
    a row left pending or running by a killed run (Ledger.plan keeps that count, and no other)."""
    if row is None or row.state not in (State.PENDING, State.RUNNING):
        return 0
    return row.attempts if (row.content_hash, row.settings_hash) == (digest, wanted) else 0


def is_segment_key(source: str) -> bool:
    """Whether a row is one segment of a long video rather than an input."""
    return SEGMENT_MARK in source


def ledger_path(place: Path) -> Path:
    """The ledger of an output folder, or `place` itself when it names a file."""
    return place / LEDGER_NAME if place.is_dir() else place


__all__ = ["Ledger", "LedgerError", "Row", "State", "content_hash", "settings_hash", "ledger_path",
           "LEDGER_NAME", "SEGMENT_MARK", "is_segment_key", "unsettled_tries"]
