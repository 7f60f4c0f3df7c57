"""The one exception tree veil raises; the CLI maps it to messages and exit codes.

    VeilError
    ├── InputError          the input file is missing, unreadable, corrupt or too large
    │   └── UnsupportedMedia  veil does not handle this kind of file
    ├── OutputError         the output cannot be written where asked (exists, not writable, is the input)
    ├── RedactionError      processing failed part-way; nothing was written at the target
    ├── ModelError          a model file is missing, altered, or its optional extra is not installed
    │   └── MissingExtra      an optional extra the command needs (audit, review) is not installed
    └── AuditFailed         the audit found something that could identify a person
"""

from __future__ import annotations

from pathlib import Path


class VeilError(Exception):
    """Base of every error veil raises on purpose."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class InputError(VeilError):
    """The input cannot be read as media veil can process."""


class UnsupportedMedia(InputError):
    """The input is readable but of a kind veil does not process."""


class OutputError(VeilError):
    """The output cannot be written where it was asked for."""


class RedactionError(VeilError):
    """Processing failed part-way; the target path was left untouched."""


class ModelError(VeilError):
    """A model is missing, fails its hash check, or needs an extra that is not installed."""


class AuditFailed(VeilError):
    """The audit found a face, a match or metadata that could identify someone."""


class MissingExtra(ModelError):
    """An optional extra the command needs is not installed; the message says what to install."""
