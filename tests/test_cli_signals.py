"""Ctrl-C and SIGTERM mid-video: the real process unwinds, removes its partial file, says so in one
line and exits 130 or 143. These need a real process to signal, so they do not use run_cli."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from veil._atomic import TEMP_MARK

from helpers import redact_in_background
from test_video import write_clip

pytestmark = pytest.mark.slow  # a 900-frame clip through the real detector, in a fresh process


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that the signal always arrives mid-file; only read, never written to."""
    return write_clip(tmp_path_factory.mktemp("clip") / "long.mp4", frames=900, size=(320, 240),
                      time_base=Fraction(1, 30), rate=Fraction(30), audio=False)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_a_signal_mid_video_cleans_up_and_says_so(tmp_path: Path, long_clip: Path, sig: signal.Signals,
                                                  code: int, word: str) -> None:
    src = long_clip
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    target = tmp_path / "out.mp4"
    proc = redact_in_background(src, target, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        os.kill(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert stdout == ""
    [line] = stderr.splitlines()
    assert line.startswith(word) and "not written" in line, line
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name], "the partial file was left behind"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
