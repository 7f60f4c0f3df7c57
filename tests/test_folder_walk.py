"""Folder walks (issue 20, item 5): every entry veil passes over gets a line saying why, and the
summary counts it. Links to files are inputs; links to folders, symlink loops and dangling links
are skipped with a reason; an unreadable folder is an error (its files were asked for)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli, run_veil
from veil.batch import Job, collect_jobs, walk_inputs


def _picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A folder holding a picture, a link to it, and every kind of link veil must not follow."""
    root = tmp_path / "in"
    paths = {"picture": _picture(root / "sub" / "a.jpg")}
    links = {
        "file_link": ("b.jpg", "sub/a.jpg"),
        "dangling": ("gone.jpg", "nowhere.jpg"),
        "loop_a": ("loop-a.jpg", "loop-b.jpg"),
        "loop_b": ("loop-b.jpg", "loop-a.jpg"),
        "self": ("self.png", "self.png"),
        "up": ("sub/up", ".."),  # a folder link back up: walking it would never end
        "hidden": (".hidden.jpg", "nowhere.jpg"),  # hidden names are passed over silently
    }
    for key, (name, target) in links.items():
        paths[key] = root / name
        paths[key].symlink_to(target)
    paths["root"] = root
    return paths


def test_walk_lists_links_to_files_and_skips_every_other_link_with_a_reason(
        tree: dict[str, Path]) -> None:
    walk = walk_inputs([tree["root"]], None)
    assert walk.jobs == [Job(tree["file_link"], None), Job(tree["picture"], None)]
    reasons = {entry.path: entry.reason for entry in walk.skipped}
    assert set(reasons) == {tree[k] for k in ("dangling", "loop_a", "loop_b", "self", "up")}
    assert "dangling" in reasons[tree["dangling"]] and "nowhere.jpg" in reasons[tree["dangling"]]
    for key in ("loop_a", "loop_b", "self"):
        assert "loop" in reasons[tree[key]]
    assert "link to a folder" in reasons[tree["up"]]
    assert not any(entry.refused for entry in walk.skipped)
    # The job list alone, as before, for callers that do not report skipped entries.
    assert collect_jobs([tree["root"]], None) == walk.jobs


def test_redact_says_why_each_entry_was_skipped_and_counts_them(tree: dict[str, Path],
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("redact", tree["root"], "-o", out, "--detect", "fast")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    for key in ("dangling", "loop_a", "loop_b", "self", "up"):
        said = [line for line in lines if line.startswith("skipped") and f"{tree[key]}:" in line]
        assert len(said) == 1, (key, lines)
    assert not any(".hidden.jpg" in line for line in lines)
    assert lines[-1].startswith("2 of 2 files redacted") and "5 skipped" in lines[-1]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".veil-ledger.sqlite") == \
        ["b.jpg", "sub/a.jpg"]


def test_scan_says_why_each_entry_was_skipped(tree: dict[str, Path]) -> None:
    result = run_cli("scan", tree["root"], "--detect", "fast")
    assert result.exit_code == 0
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 5


def test_a_skipped_name_is_printed_escaped(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _picture(root / "ok.jpg")
    (root / "fake\ndone x.jpg").symlink_to("missing.jpg")
    result = run_cli("redact", root, "-o", tmp_path / "out", "--detect", "fast")
    assert result.exit_code == 0
    assert any(line.startswith("skipped") and "fake\\ndone x.jpg" in line
               for line in result.stderr.splitlines())
    assert not any(line.startswith("done x.jpg") for line in result.stderr.splitlines())


def test_an_unreadable_folder_is_an_error_and_the_rest_is_done(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _picture(root / "ok.jpg")
    locked = root / "locked"
    _picture(locked / "secret.jpg")
    locked.chmod(0)
    try:
        result = run_veil("redact", root, "-o", tmp_path / "out", "--detect", "fast",
                          "--report", tmp_path / "r.json", drop_root_privileges=True)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and f"{locked}:" in errors[0] and "cannot read the folder" in errors[0]
    assert "1 of 1 file redacted" in lines[-1] and "1 failed" in lines[-1]
    assert (tmp_path / "out" / "ok.jpg").is_file()
    assert not (tmp_path / "out" / "locked").exists()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == [{"path": str(locked), "reason": errors[0].split(": ", 1)[1],
                                  "refused": True}]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_media_is_still_a_job_so_it_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _picture(root / "ok.jpg")
    os.mkfifo(root / "pipe.jpg")
    walk = walk_inputs([root], None)
    assert [job.source.name for job in walk.jobs] == ["ok.jpg", "pipe.jpg"] and not walk.skipped
