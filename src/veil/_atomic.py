"""Writes outputs under a temporary name beside the target and moves them in only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._errors import OutputError

TEMP_MARK = ".veil-partial-"


def resolved(path: Path) -> Path:
    """`path.resolve()`, or the absolute path where links cannot be resolved.

    A symbolic link loop makes `resolve` raise RuntimeError (OSError from Python 3.13): that is
    the input's problem, which reading it reports in plain words, not a crash of the comparison.
    """
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def check_target(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse targets that are the input itself, already exist, or sit in a folder we cannot write.

    A link at the target counts as existing even when it leads nowhere: it is replaced (never
    followed) only with `overwrite`.
    """
    try:
        same = target.exists() and os.path.samefile(source, target)
    except OSError:
        same = False
    if same or resolved(source) == resolved(target):
        raise OutputError("the output would overwrite the input; choose another output path", source)
    if os.path.lexists(target) and not overwrite:
        raise OutputError(f"output {target} already exists (use --overwrite to replace it)", source)
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist", source)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable", source)


@contextlib.contextmanager
def atomic_output(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success move it to `target`, else delete it.

    The temporary name keeps the target's suffix so encoders pick the right format. Without
    `overwrite`, the final move is a hard link, which fails rather than replace a file that
    appeared while we worked.
    """
    with staged_output(target) as tmp:
        yield tmp
    publish(tmp, target, overwrite)


@contextlib.contextmanager
def staged_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success leave it there, complete and synced to
    disk, for the caller to `publish`; on any failure (Ctrl-C included) delete it.

    A batch publishes only after its ledger records the file as done, so that a kill between the
    two never leaves an output the ledger does not know about (veil.archive.driver).
    """
    fd, tmp_name = tempfile.mkstemp(prefix="." + target.stem + TEMP_MARK, suffix=target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished `tmp` to `target`; `tmp` is gone afterwards, whether this succeeds or not.

    Without `overwrite` this is a hard link then an unlink, which fails rather than replace a file
    that appeared meanwhile. Should the process die between the two, `tmp` and `target` are the
    same file: publishing again just removes `tmp`.
    """
    try:
        if _same_file(tmp, target):
            return
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise OutputError(f"output {target} appeared while veil was working; not replaced",
                              target) from None
        except OSError:
            # Filesystems without hard links: fall back to an exclusive check then rename.
            if target.exists():
                raise OutputError(f"output {target} already exists", target) from None
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
