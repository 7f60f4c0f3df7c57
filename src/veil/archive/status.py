"""`veil status OUT`: what a batch's ledger says, as lines a person reads after a night's run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .ledger import Ledger, LedgerError, State, is_segment_key, ledger_path


def status_lines(place: Path) -> Iterator[str]:
    """A summary line, then one line per failed file with its error (plain text; the CLI makes it
    printable). `place` is an output folder or a ledger file."""
    path = ledger_path(place)
    if not path.is_file():
        raise LedgerError("no veil ledger here (veil redact -o FOLDER writes one as "
                          "FOLDER/.veil-ledger.sqlite)", path)
    with Ledger.open(path) as ledger:
        rows = ledger.rows()
    segments = [row for key, row in rows.items() if is_segment_key(key)]
    rows = {key: row for key, row in rows.items() if not is_segment_key(key)}
    states = Counter(row.state for row in rows.values())
    seconds = sum(row.seconds or 0.0 for row in rows.values() if row.state is State.DONE)
    yield (f"{len(rows)} file{'s' if len(rows) != 1 else ''}: {states[State.DONE]} done, "
           f"{states[State.FAILED]} failed, {states[State.PENDING]} pending, "
           f"{states[State.RUNNING]} running or interrupted ({seconds:.0f} s of work done)")
    if segments:
        done = sum(row.state is State.DONE for row in segments)
        yield (f"long videos in progress: {done} of {len(segments)} segments done (a rerun of the "
               "batch keeps them)")
    failed = sorted((row for row in rows.values() if row.state is State.FAILED), key=lambda r: r.source)
    if failed:
        yield "failed (veil redact ... --retry-failed tries them again):"
    for row in failed:
        tries = f" [{row.attempts} tries]" if row.attempts > 1 else ""
        yield f"  {row.source}: {row.error}{tries}"


__all__ = ["status_lines"]
