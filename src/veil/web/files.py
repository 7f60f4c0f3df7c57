"""The files the review app serves: fixed at start-up, and checked to be those same files at every read.

The served folder can change while the app runs. If a listed picture is replaced by a symbolic
link (or anything else) pointing outside the folder, reading it by name would show, redact and
write next to the original a file the user never chose. So each file's (device, inode) is
recorded at start-up, and every read opens the file without following a link, checks the open
descriptor against that record, and reads through the descriptor itself.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import RequestError

# A path that reopens an open descriptor, so a reader given a path reads exactly that open file.
# Linux and macOS have it; elsewhere the path itself is read, checked before and after.
_FD_FOLDER = Path("/dev/fd")
# O_NONBLOCK: a FIFO put in a picture's place must not hang the open; it is refused by the type check.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class MediaItem:
    """One served file: its index (the only name a request may use), where it is, and what it was."""

    id: int
    path: Path  # resolved at start-up: no symbolic link left in it
    name: str  # relative to the served folder, for display only
    kind: str = "image"  # image | video
    identity: tuple[int, int] = (-1, -1)  # (st_dev, st_ino) at start-up

    @classmethod
    def pinned(cls, item_id: int, path: Path, name: str, kind: str) -> MediaItem | None:
        """The item with its current identity, or None when it is not a regular file now."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return cls(item_id, path, name, kind, (info.st_dev, info.st_ino))


def _refused(item: MediaItem, why: str) -> RequestError:
    return RequestError(f"{item.name} {why} since veil review started, so it is not read; "
                        "restart veil review to work on the file now there", 409)


@contextmanager
def opened(item: MediaItem) -> Iterator[Path]:
    """A path that reads the item's file as pinned at start-up; a 409 RequestError if it was replaced."""
    try:
        fd = os.open(item.path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(item, "was replaced by a symbolic link") from None
        raise _refused(item, f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != item.identity:
            raise _refused(item, "was replaced")
        through_fd = _FD_FOLDER / str(fd)
        yield through_fd if _FD_FOLDER.is_dir() else item.path
    finally:
        os.close(fd)


def check_unchanged(item: MediaItem) -> None:
    """Refuse (409) unless the item's path still names the file pinned at start-up.

    For readers that open the path again themselves (the pipelines): call it right before
    handing the path over and again after; a swap and swap back in between is not caught.
    """
    with opened(item):
        pass


__all__ = ["MediaItem", "opened", "check_unchanged"]
