"""Expands files and folders into inputs and decides where each one's output goes."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._atomic import TEMP_MARK
from .media.kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES

REDACTED_MARK = ".redacted"


@dataclass(frozen=True)
class Job:
    """One input file and where its redacted copy goes (None: the default beside the input)."""

    source: Path
    target: Path | None


def _is_candidate(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or TEMP_MARK in name:
        return False
    if REDACTED_MARK + path.suffix in name:  # our own earlier outputs
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass(frozen=True)
class Skipped:
    """An entry of a folder walk that is not an input, and why: never skipped without a word.

    `refused`: files the user asked for were not reached (an unreadable folder), so the run fails;
    otherwise the entry is reported and the run goes on (a link veil does not follow).
    """

    path: Path
    reason: str
    refused: bool = False


@dataclass(frozen=True)
class Walk:
    """What `walk_inputs` found: the jobs, and every entry it passed over with a reason."""

    jobs: list[Job]
    skipped: list[Skipped]


def _link_problem(path: Path) -> tuple[str | None, bool]:
    """(why a symbolic link is not an input, or None if it leads to a file; whether it is a folder).

    Links to files are inputs like the files; links to folders are not followed, since a link to
    a folder above it would walk forever.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a dangling symbolic link (its target {target} does not exist)", False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself)", False
        return f"a symbolic link that cannot be followed: {exc.strerror or exc}", False
    if stat.S_ISDIR(mode):
        return ("a symbolic link to a folder; veil does not follow folder links (one can lead "
                "back up and walk forever): give the folder itself as an input"), True
    return None, False


def _walk(folder: Path, skip: Path | None, found: list[Path], skipped: list[Skipped]) -> None:
    """Media files under `folder` into `found`; links and folders that are not walked into
    `skipped`. Ordinary files that are not media (and hidden names) are passed over silently."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        skipped.append(Skipped(folder, f"cannot read the folder: {exc.strerror or exc}; the files "
                               "in it were not processed", refused=True))
        return
    for entry in entries:
        path = Path(entry.path)
        hidden = entry.name.startswith(".")
        if entry.is_symlink():
            problem, _ = _link_problem(path)
            if problem is not None:
                if not hidden:
                    skipped.append(Skipped(path, problem))
                continue
            if _is_candidate(path) and not _inside(path, skip):
                found.append(path)
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            if skip is None or path.resolve() != skip:
                _walk(path, skip, found, skipped)
        # Not only regular files: a FIFO or device named like media is listed so that it is
        # refused with an error (media_kind checks it without opening it) instead of skipped.
        elif _is_candidate(path) and not _inside(path, skip):
            found.append(path)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def walk_inputs(inputs: Iterable[Path], output: Path | None) -> Walk:
    """Files are taken as given; folders are walked recursively for media files.

    With one input file, `output` may be a file path. Otherwise (or when it is an existing folder)
    it is a folder, and inputs found under a folder keep their relative paths inside it. Links,
    loops and unreadable folders met in a walk are listed in `skipped`, each with its reason.
    """
    inputs = list(inputs)
    out_dir = output.resolve() if output is not None and output.is_dir() else None
    pairs: list[tuple[Path, Path | None]] = []  # (file, folder it was found under)
    skipped: list[Skipped] = []
    for item in inputs:
        if item.is_dir():
            # An output folder inside the input folder holds an earlier run's copies: never inputs
            # (a second run would redact them again into OUT/OUT). The same folder as output is
            # refused per file later (the output would overwrite the input).
            skip = out_dir if out_dir is not None and out_dir != item.resolve() else None
            found: list[Path] = []
            _walk(item, skip, found, skipped)
            pairs.extend((path, item) for path in sorted(found))
        else:
            pairs.append((item, None))
    single_file = len(inputs) == 1 and len(pairs) == 1 and pairs[0][1] is None
    jobs = []
    for source, root in pairs:
        if output is None:
            jobs.append(Job(source, None))
        elif single_file and not output.is_dir() and not str(output).endswith(("/", "\\")):
            jobs.append(Job(source, output))
        else:
            relative = source.relative_to(root) if root is not None else Path(source.name)
            jobs.append(Job(source, output / relative))
    return Walk(jobs, skipped)


def collect_jobs(inputs: Iterable[Path], output: Path | None) -> list[Job]:
    """The jobs of `walk_inputs` alone, for callers that report no skipped entries."""
    return walk_inputs(inputs, output).jobs
