"""A long video in a batch: its segments run as tasks of their own, and the driver joins them.

Each segment (veil/segments.py) is a task with a ledger row of its own (`<input>#segment-N`),
so a killed batch redoes only the segments it had not finished, and the segments of one file run
on every worker at once. A segment's part is written straight to its own hidden file beside the
output (atomically: complete or absent); it is no output anybody sees. Once every segment of the
file is done, the driver joins the parts (media/join.py: packets copied, nothing decoded), the
file is committed as any other (ledger done, then the output moved into place), and its parts and
segment rows are deleted.

A segment that fails (not one that takes its worker down, which is retried as a file would be)
fails its file, with the segment named; the file's other segments are dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._atomic import staged_output
from .._types import Config, FileReport
from ..media.join import JOINABLE, PART_SUFFIX, join_parts
from ..segments import Segment, index_video, overlap_s, split, stated_seconds
from .ledger import SEGMENT_MARK, Ledger, Row, State, unsettled_tries
from .worker import Task, remove_partials


def wanted_segments(source: Path, target: Path, config: Config, segment_s: float | None,
                    edited: bool) -> list[Segment]:
    """The segments to redact `source` in, or [] to redact it whole: a video shorter than two
    segments, an edit plan (its frame numbers are the whole video's, kept simple), --salvage (a
    damaged file decodes as far as it can, in one piece), or a target that counts frames from
    0 in each file (AVI)."""
    if not segment_s or edited or config.salvage or target.suffix.lower() not in JOINABLE:
        return []
    stated = stated_seconds(source)  # the header first: most videos are short
    if stated is not None and stated < 1.5 * segment_s:
        return []
    segments = split(index_video(source), segment_s, overlap_s(config))  # one if under two long
    return segments if len(segments) > 1 else []


def segment_key(key: str, segment: Segment) -> str:
    return f"{key}{SEGMENT_MARK}{segment.number + 1}"


def segment_settings(wanted: str, segment: Segment) -> str:
    """A segment row's settings hash: the file's, and where the segment lies (a different cut
    makes a different part)."""
    where = f"{segment.lead_in}:{segment.start}:{segment.end}:{segment.lead_out}:{segment.count}"
    return hashlib.sha256(f"{wanted}|{where}".encode()).hexdigest()


def part_path(target: Path, segment: Segment) -> Path:
    """Where a segment's part is written: hidden, beside the output (media/join.PART_FORMAT)."""
    return target.with_name(f".{target.stem}.veil-segment-{segment.number + 1:04d}-of-"
                            f"{segment.count:04d}{PART_SUFFIX}")


def part_done(row: Row | None, digest: str, settings: str, part: Path) -> bool:
    return (row is not None and row.state is State.DONE and row.content_hash == digest
            and row.settings_hash == settings and row.output == str(part) and part.is_file())


@dataclass(frozen=True)
class SegmentPlan:
    """What a run does for one long video: the segments left to redact, as (task, segment key,
    content hash, segment settings hash), and the file with the segments already done."""

    group: SegmentedFile
    todo: list[tuple[Task, str, str, str]]


def plan_segments(task: Task, key: str, segments: list[Segment], rows: dict[str, Row], digest: str,
                  wanted: str) -> SegmentPlan:
    """Which segments an earlier run finished (their row done with this content and cut, their
    part still there) and which are left; a segment a killed run left running has its partial
    files removed, and its tries counted (`Task.attempt`), as a file's are."""
    group = SegmentedFile(task, key, segments)
    todo = []
    for segment in segments:
        skey, shash = segment_key(key, segment), segment_settings(wanted, segment)
        row, part = rows.get(skey), part_path(task.target, segment)
        if part_done(row, digest, shash, part):
            assert row is not None
            group.reports[segment.number] = replace(row.file_report(), path=task.source)
            continue
        if row is not None and row.state is State.RUNNING:
            remove_partials(part)
        tried = unsettled_tries(row, digest, shash)
        todo.append((replace(task, segment=segment, part=part, attempt=tried + 1), skey, digest, shash))
    return SegmentPlan(group, todo)


@dataclass
class SegmentedFile:
    """One file redacted in segments: its file task (never run itself) and what is done."""

    task: Task  # the file's task: source, target, config, overwrite
    key: str
    segments: list[Segment]
    reports: dict[int, FileReport] = field(default_factory=dict)  # by segment number

    @property
    def complete(self) -> bool:
        return len(self.reports) == len(self.segments)

    def parts(self) -> list[Path]:
        return [part_path(self.task.target, segment) for segment in self.segments]

    def join(self) -> tuple[FileReport, Path]:
        """Join the parts into a staged output beside the target; the report and that file."""
        task = self.task
        with staged_output(task.target) as tmp:
            join_parts(task.source, self.parts(), [s.start for s in self.segments], tmp,
                       task.target, task.config)
        return self.report(task.target), tmp

    def report(self, output: Path) -> FileReport:
        """The file's report, from its segments' (in order). Tracks are per segment, so a face
        that crosses a cut counts once in each segment's `faces`; the per-frame counts are exact."""
        parts = [self.reports[number] for number in sorted(self.reports)]
        scores = [r.lowest_score for r in parts if r.lowest_score is not None]
        return FileReport(
            path=self.task.source, output=output, ok=True, kind="video",
            frames=sum(r.frames for r in parts), faces=sum(r.faces for r in parts),
            faces_per_frame=tuple(n for r in parts for n in r.faces_per_frame),
            tracked_frames=sum(r.tracked_frames for r in parts),
            low_score_frames=sum(r.low_score_frames for r in parts),
            lowest_score=min(scores) if scores else None, seconds=sum(r.seconds for r in parts))

    def discard(self, ledger: Ledger | None) -> None:
        """The file is settled (done or failed): its parts and segment rows go."""
        for part in self.parts():
            with contextlib.suppress(OSError):
                part.unlink()
        if ledger is not None:
            ledger.forget([segment_key(self.key, segment) for segment in self.segments])


__all__ = ["SegmentedFile", "SegmentPlan", "plan_segments", "wanted_segments", "segment_key", "segment_settings",
           "part_path", "part_done"]
