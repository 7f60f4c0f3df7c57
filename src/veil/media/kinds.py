"""Decides whether a path is a still image, a video or neither, by its leading bytes."""

from __future__ import annotations

import enum
import os
import stat
from pathlib import Path

from .._errors import InputError, UnsupportedMedia

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})


class MediaKind(str, enum.Enum):
    IMAGE = "image"
    VIDEO = "video"


def _sniff(head: bytes) -> MediaKind | None:
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaKind.IMAGE
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaKind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return MediaKind.VIDEO
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc", b"hevx", b"avif"):
            return MediaKind.IMAGE
        return MediaKind.VIDEO
    if head[:4] == b"\x1a\x45\xdf\xa3":  # Matroska / WebM
        return MediaKind.VIDEO
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return MediaKind.VIDEO
    return None


# What a non-regular file is, in the user's words, by the stat test that recognises it.
_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def require_regular_file(path: Path) -> None:
    """Refuse FIFOs, sockets and devices from their inode, before anything opens them.

    Opening a FIFO for reading blocks until a writer appears (veil would hang forever), and
    opening a device can have side effects of its own; os.stat reads neither. Folders and missing
    files pass through so the caller's open() reports them in its usual words.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    for test, what in _SPECIAL_FILES:
        if test(mode):
            raise InputError(f"is {what}, not a regular file; veil reads only regular files", path)


def media_kind(path: Path) -> MediaKind:
    """Classify a file by content; raise InputError or UnsupportedMedia naming the problem."""
    require_regular_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except IsADirectoryError:
        raise InputError("is a folder, not a file", path) from None
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except PermissionError:
        raise InputError("permission denied: cannot read the file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", path) from None
    if not head:
        raise InputError("the file is empty (0 bytes)", path)
    kind = _sniff(head)
    if kind is not None:
        return kind
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix in VIDEO_SUFFIXES:
        raise InputError(f"the file is not a valid {suffix[1:].upper()} file (unrecognised content)", path)
    raise UnsupportedMedia(
        f"unsupported file type '{suffix or 'no extension'}'; veil handles "
        + ", ".join(sorted(s[1:] for s in IMAGE_SUFFIXES | VIDEO_SUFFIXES)),
        path,
    )
