"""Expands files and folders into inputs and decides where each one's output goes."""

from __future__ import annotations

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


def collect_jobs(inputs: Iterable[Path], output: Path | None) -> list[Job]:
    """Files are taken as given; folders are walked recursively for media files.

    With one input file, `output` may be a file path. Otherwise (or when it is an existing folder)
    it is a folder, and inputs found under a folder keep their relative paths inside it.
    """
    inputs = list(inputs)
    out_dir = output.resolve() if output is not None and output.is_dir() else None
    pairs: list[tuple[Path, Path | None]] = []  # (file, folder it was found under)
    for item in inputs:
        if item.is_dir():
            # An output folder inside the input folder holds an earlier run's copies: never inputs
            # (a second run would redact them again into OUT/OUT). The same folder as output is
            # refused per file later (the output would overwrite the input).
            skip = out_dir if out_dir is not None and out_dir != item.resolve() else None
            # Not only regular files: a FIFO or device named like media is listed so that it is
            # refused with an error (media_kind checks it without opening it) instead of skipped.
            for found in sorted(p for p in item.rglob("*")
                                if p.exists() and not p.is_dir() and _is_candidate(p)
                                and not (skip is not None and p.resolve().is_relative_to(skip))):
                pairs.append((found, item))
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
    return jobs
