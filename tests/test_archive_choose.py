"""The default --jobs: a pool only where it can run two files at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import keyframed_clip
from veil.archive import choose
from veil.batch import Job


def _jobs(stills: int, videos: int) -> list[Job]:
    names = [f"p{i}.jpg" for i in range(stills)] + [f"v{i}.mp4" for i in range(videos)]
    return [Job(Path("/in") / name, Path("/out") / name) for name in names]


@pytest.mark.parametrize(("cpus", "stills", "videos", "expected"), [
    (2, 0, 6, 1),   # each clip takes both slots: one at a time, so in-process
    (2, 1, 5, 1),   # the one still cannot run beside a clip either
    (2, 2, 4, 2),   # two stills can run together
    (2, 6, 0, 2),
    (3, 0, 6, 1),   # 2 + 2 > 3
    (3, 1, 5, 3),   # a still beside a clip
    (4, 0, 6, 4),   # two clips at once
    (8, 5, 0, 5),   # no more slots than files to fill them
    (8, 3, 0, 1),   # under MIN_POOL_FILES
])
def test_default_jobs(monkeypatch: pytest.MonkeyPatch, cpus: int, stills: int, videos: int,
                      expected: int) -> None:
    monkeypatch.setattr(choose, "machine_slots", lambda: cpus)
    assert choose.auto_slots(_jobs(stills, videos)) == expected


@pytest.mark.parametrize(("cpus", "expected"), [(8, 8), (4, 4), (2, 1)])
def test_a_long_video_counts_once_per_segment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              cpus: int, expected: int) -> None:
    """One 6 s video cut into 1.5 s segments is 4 tasks of 2 slots: a pool where two fit."""
    clip = tmp_path / "long.mp4"
    keyframed_clip(clip, 6.0, audio=False)
    monkeypatch.setattr(choose, "machine_slots", lambda: cpus)
    jobs = [Job(clip, tmp_path / "out.mp4")]
    assert choose.auto_slots(jobs, segment_s=1.5) == expected
    assert choose.auto_slots(jobs, segment_s=None) == 1  # uncut: one file


def test_a_batch_that_fills_the_machine_reads_no_video_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments could only add tasks; once there are enough, no video is opened to count them."""
    opened: list[Path] = []
    monkeypatch.setattr(choose, "stated_seconds", lambda path: opened.append(path) or 3600.0)
    monkeypatch.setattr(choose, "machine_slots", lambda: 8)
    assert choose.auto_slots(_jobs(0, 6)) == 8
    assert opened == []
    assert choose.auto_slots(_jobs(0, 1)) == 8  # one hour-long video: 6 segments of 10 minutes
    assert opened == [Path("/in/v0.mp4")]
