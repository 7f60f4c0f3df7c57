"""Small helpers the tests share: running the CLI (in-process, or as a real process where the process
itself is under test), reading metadata with exiftool, and picking face regions whose pixels no other
region hides."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path) -> CliResult:
    """Run `veil ARGS` in this process, with stdout and stderr kept apart.

    In-process, the detector loaded by one test is reused by the next (pipeline.py caches it), where
    a subprocess would load the ONNX model again. An exception other than the command's exit is a
    bug and is raised here with its traceback rather than read as exit code 1.
    """
    from typer.testing import CliRunner

    from veil.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_veil(*args: str | Path, drop_root_privileges: bool = False,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m veil ARGS` as a real subprocess: for tests about the process itself.

    With drop_root_privileges, a root caller loses the capabilities that let it ignore file
    permissions, so permission tests mean the same thing as for a normal user.
    """
    cmd = [sys.executable, "-m", "veil", *map(str, args)]
    if drop_root_privileges and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot test file permissions")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def exiftool_tags(path: Path) -> dict[str, object]:
    """Every tag exiftool finds, grouped as 'Group:Tag' (the independent metadata oracle)."""
    exe = shutil.which("exiftool")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("exiftool is required under CI (Debian: libimage-exiftool-perl)")
        pytest.skip("exiftool not installed")
    out = subprocess.run([exe, "-j", "-G1", "-a", "-u", "-b", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]


# exiftool groups that describe the file itself rather than carry metadata from the source.
STRUCTURAL_GROUPS = {"ExifTool", "System", "File", "Composite", "JFIF", "PNG", "RIFF", "IFD0-structural",
                     "HEIC", "QuickTime", "ICC-header"}


def boxes_overlap(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two (x, y, w, h) boxes share any pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def covered_by_others(shape: tuple[int, ...], boxes: Sequence[Sequence[int]], i: int) -> np.ndarray:
    """(H, W) mask of the pixels the (x, y, w, h) boxes other than box `i` cover."""
    covered = np.zeros(shape[:2], bool)
    for j, (x, y, w, h) in enumerate(boxes):
        if j != i:
            covered[y:y + h, x:x + w] = True
    return covered


def most_exposed(shape: tuple[int, ...], boxes: Sequence[Sequence[int]]) -> int:
    """The box with the most pixels no other box covers: unmasking it must show those pixels."""
    def exposed(i: int) -> int:
        x, y, w, h = boxes[i]
        return int((~covered_by_others(shape, boxes, i)[y:y + h, x:x + w]).sum())

    return max(range(len(boxes)), key=exposed)


def assert_one_face_shows(original: np.ndarray, result: np.ndarray, boxes: Sequence[Sequence[int]],
                          shown: int, inset: int, brighter_than: float) -> None:
    """Box `shown` comes through a re-encoded JPEG where no other box covers it (within 3 levels
    on average, and not dark: it really is a face's pixels), and every other box is black inside
    an `inset` border (JPEG ringing at the edges aside)."""
    original, result = original.astype(np.int16), result.astype(np.int16)
    x, y, w, h = boxes[shown]
    visible = ~covered_by_others(original.shape, boxes, shown)[y:y + h, x:x + w]
    assert visible.sum() > 100
    assert np.abs(result[y:y + h, x:x + w] - original[y:y + h, x:x + w])[visible].mean() < 3
    assert original[y:y + h, x:x + w][visible].mean() > brighter_than
    for i, (x, y, w, h) in enumerate(boxes):
        if i != shown:
            assert result[y + inset:y + h - inset, x + inset:x + w - inset].mean() < 4, \
                f"face {i} is not masked"


def redact_in_background(src: Path, target: Path, **popen: object) -> subprocess.Popen[str]:
    """`python -m veil redact SRC -o TARGET`, returned once its hidden temporary file is being
    written (so a signal sent next lands mid-file); bounded at 120 s."""
    from veil._atomic import TEMP_MARK

    proc = subprocess.Popen([sys.executable, "-m", "veil", "redact", str(src), "-o", str(target)],
                            text=True, **popen)  # type: ignore[call-overload]
    deadline = time.monotonic() + 120
    partial: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in target.parent.iterdir() if TEMP_MARK in p.name and p.stat().st_size > 4096]
        if partial:
            break
        time.sleep(0.05)
    if not partial or proc.poll() is not None:
        proc.kill()
        proc.communicate(timeout=30)
        raise AssertionError("the encoder never started writing, or finished before the signal; "
                             "use a longer clip")
    return proc


def example_photos(folder: Path, count: int, smallest: int = 256) -> list[Path]:
    """`count` distinct small photos with a face: the bundled astronaut, each a 16 px larger square
    than the last (distinct content, so each is its own ledger row)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with Image.open(ROOT / "examples" / "astronaut.jpg") as example:
        for i in range(count):
            path = folder / f"photo{i:02d}.jpg"
            example.resize((smallest + 16 * i, smallest + 16 * i)).save(path, quality=90)
            paths.append(path)
    return paths


class OneAtATime:
    """A stand-in executor for veil.archive's driver: one task at a time, answered by
    `answer(task)` (which may raise, as a Ctrl-C would). `tries` records (file name, attempt) of
    every task submitted; `closed` says whether the driver closed it."""

    def __init__(self, answer: Callable[..., object]) -> None:
        self.answer = answer
        self.tries: list[tuple[str, int]] = []
        self._task: object = None
        self.closed = False

    def can_take(self, task: object) -> bool:
        return self._task is None

    def submit(self, task: object) -> None:
        self.tries.append((task.source.name, task.attempt))  # type: ignore[attr-defined]
        self._task = task

    def busy(self) -> bool:
        return self._task is not None

    def wait(self) -> tuple[object, object]:
        task, self._task = self._task, None
        assert task is not None
        return task, self.answer(task)

    def close(self) -> None:
        self.closed = True


def keyframed_clip(path: Path, seconds: float, gop: int = 15, audio: bool = True) -> None:
    """A 160x96 30 fps H.264 clip (B-frames, a keyframe every `gop` frames and nowhere else) with
    a mono AAC tone: somewhere for a long video's segments to cut (veil/segments.py)."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30, options={
            "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast",
            "crf": "18"})
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        for i in range(int(seconds * 30)):
            pixels = np.full((96, 160, 3), 60, np.uint8)
            pixels[:, : (i * 3) % 160, 1] = 200
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = int(seconds * 48000)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
