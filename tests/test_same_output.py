"""benchmarks/same_output.py compare: the refactor check must fail on any change and pass on none.

A checker that always says IDENTICAL would wave any refactor through, so each case edits one
value of a hand-built recording and expects exit 1 naming what changed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "same_output.py"


def recording() -> list[dict[str, Any]]:
    face = {"box": [10.2, 20.4, 30.0, 40.1], "score": 0.8351, "mask": [2, 4, 46, 60]}
    exact = [[10.2237548828125, 20.38, 30.0, 40.1], 0.835149146938324, [2, 4, 46, 60], -1, 0]
    return [
        {"section": "meta", "preset": "-", "key": "meta", "veil": "/somewhere"},
        {"section": "scan-photo", "preset": "fast", "key": "a.jpg",
         "scan": {"path": "a.jpg", "frame": 0, "width": 64, "height": 48, "faces": [face, face]},
         "exact": [exact, exact]},
        {"section": "scan-clip", "preset": "fast", "key": "c.mp4#0",
         "scan": {"path": "c.mp4", "frame": 0, "time": 0.0, "width": 64, "height": 48,
                  "faces": [dict(face, track=0)]}, "exact": [exact]},
        {"section": "pixels-clip", "preset": "fast", "key": "c.mp4", "sha256": "ab" * 32, "frames": 2},
    ]


def run(tmp_path: Path, a: list[dict[str, Any]], b: list[dict[str, Any]], *flags: str) -> tuple[int, str]:
    for name, lines in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = subprocess.run([sys.executable, str(SCRIPT), "compare", str(tmp_path / "a.jsonl"),
                           str(tmp_path / "b.jsonl"), *flags], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout


def test_identical_recordings_pass(tmp_path: Path) -> None:
    b = recording()
    b[0]["veil"] = "/elsewhere"  # meta says which code ran; it is not output
    code, out = run(tmp_path, recording(), b)
    assert code == 0
    assert out.rstrip().endswith("IDENTICAL")


def edit_score(lines: list[dict[str, Any]]) -> None:
    lines[1]["scan"]["faces"][1]["score"] = 0.8352


def edit_mask(lines: list[dict[str, Any]]) -> None:
    lines[2]["scan"]["faces"][0]["mask"][2] += 1


def drop_face(lines: list[dict[str, Any]]) -> None:
    del lines[1]["scan"]["faces"][1]


def edit_pixels(lines: list[dict[str, Any]]) -> None:
    lines[3]["sha256"] = "cd" * 32


def drop_frame(lines: list[dict[str, Any]]) -> None:
    del lines[2]


@pytest.mark.parametrize(("edit", "named"), [
    (edit_score, "face 1: score 0.8351 -> 0.8352"),
    (edit_mask, "face 0: mask [2, 4, 46, 60] -> [2, 4, 47, 60]"),
    (drop_face, "2 faces -> 1"),
    (edit_pixels, "sha256 '" + "ab" * 32),
    (drop_frame, "only in A (1): c.mp4#0"),
])
def test_any_change_fails_and_is_named(tmp_path: Path, edit: Any, named: str) -> None:
    b = copy.deepcopy(recording())
    edit(b)
    code, out = run(tmp_path, recording(), b)
    assert code == 1
    assert named in out
    assert out.rstrip().endswith("DIFFERENT")


def test_change_below_rounding_fails_unless_rounded(tmp_path: Path) -> None:
    b = recording()
    b[1]["exact"][0][1] += 1e-9  # to_json's 4-decimal score cannot show this
    code, out = run(tmp_path, recording(), b)
    assert code == 1
    assert "face 0 below to_json rounding: score" in out
    code, out = run(tmp_path, recording(), b, "--rounded")
    assert code == 0
