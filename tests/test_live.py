"""`veil live` on files and stdin: the delay line, the safety rules, the outputs, the CLI.

The clips are WIDER derivatives: rendered into pytest's temporary folder only. Every picture
carries its frame number (live_support.stamp), so each output frame is judged against the ground
truth of the input frame it shows, independently of veil's own bookkeeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from veil import Config
from veil._types import Detections
from veil.live import LiveOptions, run_live
from veil.live.delay import delay_line

from live_support import Clip, judge_file, read_stamp, stamp, stamped_clip, veil_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def clip(make_clips_module, tmp_path_factory: pytest.TempPathFactory) -> Clip:  # type: ignore[no-untyped-def]
    return stamped_clip(make_clips_module, tmp_path_factory.mktemp("live-clip"), seconds=3.0,
                        second_size=(480, 270))


class TruthDetector:
    """Finds exactly the annotated faces of the frame whose number it reads, after `delay_s`:
    a detector that misses nothing, so any bare face in the output is a frame nobody checked."""

    def __init__(self, clip: Clip | None, delay_s: float = 0.0, boxes_from: int | None = None,
                 box: tuple[float, float, float, float] = (0, 0, 0, 0)) -> None:
        self.clip, self.delay_s, self.boxes_from, self.box = clip, delay_s, boxes_from, box
        self.calls = 0

    def __call__(self, pixels: np.ndarray) -> Detections:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        number = read_stamp(pixels[..., 1])
        if number is None:  # a picture it cannot place (garbled by a stream switch): all of it
            h, w = pixels.shape[:2]
            return Detections(np.array([[0, 0, w, h]], np.float32), np.array([0.9], np.float32))
        if self.clip is None:  # the synthetic square, found from frame `boxes_from` on
            found = [self.box] if number >= (self.boxes_from or 0) else []
            return Detections(np.asarray(found, np.float32).reshape(-1, 4), np.full(len(found), 0.9, np.float32))
        truth = self.clip.truth[number % 1000]
        scale = pixels.shape[1] / self.clip.size[0]
        boxes = truth.boxes_xyxy.astype(np.float32) * scale
        return Detections(boxes.reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))


def _square_clip(path: Path, frames: int = 60, size: tuple[int, int] = (320, 180)) -> None:
    """Grey frames with one bright square (a 'face' the detector finds only from a given frame)."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": "10", "bf": "0", "g": "30"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = av.VideoFrame(size[0], size[1], "yuv420p")
            for index, value in ((0, 120), (1, 128), (2, 128)):
                np.frombuffer(image.planes[index], np.uint8)[:] = value
            y = np.frombuffer(image.planes[0], np.uint8).reshape(-1, image.planes[0].line_size)[:size[1], :size[0]]
            y[60:100, 140:180] = 220
            stamp(y, i)
            image.pts, image.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(image))
        out.mux(stream.encode(None))


def _square_masked(path: Path) -> list[bool]:
    with av.open(str(path)) as c:
        return [bool(np.median(f.to_ndarray(format="gray")[65:95, 145:175]) < 60) for f in c.decode(video=0)]


def test_the_delay_line_fits_the_delay() -> None:
    line = delay_line(0.5, 30, 3)
    assert (line.frames, line.every, line.pad) == (15, 3, 13)
    assert delay_line(0.5, 30, 5).every == 5 and delay_line(0.2, 30, 5).every == 2
    # No room to bridge a stride: every frame is searched, and nothing is filled backwards.
    assert delay_line(0.0, 30, 3) == delay_line(0.0, 30, 3).__class__(2, 1, 0, 0)


@pytest.mark.parametrize(("delay", "first_masked"), [(0.5, 30 - 13), (0.0, 30)])
def test_a_face_first_found_late_is_masked_on_the_frames_still_held(
        tmp_path: Path, delay: float, first_masked: int) -> None:
    source = tmp_path / "square.ts"
    _square_clip(source)
    out = tmp_path / "out.ts"
    detector = TruthDetector(None, boxes_from=30, box=(140, 60, 180, 100))
    report = run_live(LiveOptions(str(source), str(out), delay_s=delay, detector=detector,
                                  budget_s=1.0, config=Config(drop_audio=True)))
    masked = _square_masked(out)
    assert report.frames_masked == report.frames_out == 60, report
    assert masked[30:] == [True] * 30
    # Backward fill: with the 0.5 s line the 13 frames before the first detection are masked too;
    # with no line, none can be.
    assert masked[:30] == [i >= first_masked for i in range(30)]


def test_a_slow_detector_never_lets_an_unchecked_frame_out(clip: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.ts"
    # 0.12 s a call on every 3rd frame: 40 ms of detection per 33 ms frame, so veil falls behind.
    detector = TruthDetector(clip, delay_s=0.12)
    report = run_live(LiveOptions(str(clip.path), str(out), detector=detector, budget_s=0.12))
    verdict = judge_file(out, clip)
    assert report.unchecked_frames == 0
    assert report.curtain_frames + report.repeated_frames > 10, "the detector did not fall behind"
    assert verdict.frames == report.frames_out
    assert verdict.bare == [], "a frame left with a face bare"
    assert verdict.unreadable == 0
    assert verdict.curtains + verdict.checked == verdict.frames
    # The output's timing stays regular: one frame per 1/30 s, no gap, no duplicate time stamp.
    steps = np.diff(verdict.pts)
    assert np.allclose(steps, 1 / 30, atol=1e-3), steps
    assert verdict.frames >= len(clip.truth) - 2
    assert abs(report.output_fps - 30) < 1.5


def test_file_input_to_mpegts_with_recording_report_and_audio(clip: Clip, tmp_path: Path) -> None:
    out, record, report_path = tmp_path / "out.ts", tmp_path / "rec.mp4", tmp_path / "r.json"
    report = run_live(LiveOptions(str(clip.path), str(out), record=str(record),
                                  report=str(report_path), detector=TruthDetector(clip),
                                  budget_s=0.5))
    for path in (out, record):
        verdict = judge_file(path, clip)
        assert verdict.bare == []
        assert verdict.checked >= 0.9 * len(clip.truth), verdict.checked
        assert verdict.numbers == sorted(verdict.numbers)
        with av.open(str(path)) as c:
            assert [s.type for s in c.streams] == ["video", "audio"]
            assert c.streams.audio[0].codec_context.name == "aac"
            assert not {k: v for k, v in c.metadata.items() if k not in
                        ("major_brand", "minor_version", "compatible_brands")}
            audio_s = sum(f.samples for f in c.decode(audio=0)) / 48000
        assert abs(audio_s - report.frames_out / 30) < 0.1
    saved = json.loads(report_path.read_text())
    assert saved["frames_out"] == report.frames_out
    for key in ("input_fps", "output_fps", "latency_ms", "curtain_frames", "unchecked_frames"):
        assert key in saved
    assert saved["unchecked_frames"] == 0 and saved["stopped_by"] == "end of input"


def test_drop_audio_and_hls_output(clip: Clip, tmp_path: Path) -> None:
    folder = tmp_path / "hls"
    folder.mkdir()
    run_live(LiveOptions(str(clip.path), str(folder) + "/", detector=TruthDetector(clip),
                         config=Config(drop_audio=True), budget_s=0.5))
    playlist = folder / "index.m3u8"
    assert "#EXTM3U" in playlist.read_text()
    verdict = judge_file(playlist, clip)
    assert verdict.bare == [] and verdict.checked > 0
    with av.open(str(playlist)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_a_change_of_picture_size_restarts_the_stages_and_shows_nothing_unchecked(
        clip: Clip, tmp_path: Path) -> None:
    joined = tmp_path / "joined.ts"
    joined.write_bytes(clip.path.read_bytes() + (clip.path.parent / "stamped_small.ts").read_bytes())
    out = tmp_path / "out.ts"
    report = run_live(LiveOptions(str(joined), str(out), detector=TruthDetector(clip),
                                  budget_s=0.5, config=Config(drop_audio=True)))
    assert report.segments == 2
    verdict = judge_file(out, clip)
    assert verdict.bare == []
    with av.open(str(out)) as c:
        assert {(f.width, f.height) for f in c.decode(video=0)} == {clip.size}


def _veil(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "veil", "live", *args], capture_output=True,
                          text=True, timeout=60, env=veil_env(), **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize("source", ["rtmp://127.0.0.1:9/app/none", "garbage", "missing.ts"])
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, source: str) -> None:
    if source == "garbage":
        source = str(tmp_path / "garbage.ts")
        Path(source).write_bytes(np.random.default_rng(1).bytes(50_000))
    started = time.monotonic()
    result = _veil(source, str(tmp_path / "out.ts"), "--timeout", "3", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out.ts").exists()


def test_garbage_on_stdin_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = _veil("-", str(tmp_path / "out.ts"), "--timeout", "3",
                   input=np.random.default_rng(2).bytes(50_000).decode("latin-1"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_output_veil_cannot_write_is_refused_before_reading(tmp_path: Path, clip: Clip) -> None:
    result = _veil(str(clip.path), str(tmp_path / "out.avi"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ".avi" in result.stderr


def test_stdin_mpegts_in_real_time(tmp_path: Path, clip: Clip) -> None:
    out = tmp_path / "out.ts"
    with clip.path.open("rb") as stdin:
        result = subprocess.run([sys.executable, "-m", "veil", "live", "-", str(out), "--realtime"],
                                stdin=stdin, capture_output=True, text=True, timeout=60,
                                env=veil_env())
    assert result.returncode == 0, result.stderr
    verdict = judge_file(out, clip)
    # veil's own detector, so the bar for files: >= 0.95 of faces >= 32 px covered.
    assert verdict.checked > 0 and verdict.covered_fraction >= 0.95
    assert verdict.numbers == sorted(verdict.numbers)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finalises_the_output_the_recording_and_the_report(
        tmp_path: Path, clip: Clip, sig: signal.Signals, code: int) -> None:
    out, record, report = tmp_path / "out.mkv", tmp_path / "rec.mp4", tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "-m", "veil", "live", str(clip.path), str(out),
                                "--record", str(record), "--report", str(report)],
                               stderr=subprocess.PIPE, text=True, env=veil_env())
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (record.exists() and record.stat().st_size > 20_000):
        time.sleep(0.1)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "finalised" in stderr
    for path in (out, record):
        verdict = judge_file(path, clip)
        assert verdict.frames > 0 and verdict.bare == []
    assert json.loads(report.read_text())["stopped_by"] in ("SIGTERM", "Ctrl-C")


def test_a_recording_stays_playable_when_veil_is_killed(tmp_path: Path, clip: Clip) -> None:
    record = tmp_path / "rec.mp4"
    process = subprocess.Popen([sys.executable, "-m", "veil", "live", str(clip.path),
                                str(tmp_path / "out.ts"), "--record", str(record)],
                               stderr=subprocess.DEVNULL, env=veil_env())
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (record.exists() and record.stat().st_size > 60_000):
        time.sleep(0.1)
    process.kill()
    process.wait(10)
    verdict = judge_file(record, clip)
    assert verdict.frames >= 30 and verdict.bare == []


def test_a_rate_guessed_from_the_time_base_is_not_taken() -> None:
    from types import SimpleNamespace

    from veil.live.source import _rate

    def stream(average: object, framerate: object, guessed: object) -> object:
        return SimpleNamespace(average_rate=average, guessed_rate=guessed,
                               codec_context=SimpleNamespace(framerate=framerate))

    assert _rate(stream(None, None, Fraction(90000))) == 30.0
    assert _rate(stream(None, Fraction(25), Fraction(90000))) == 25.0
    assert _rate(stream(Fraction(30000, 1001), None, None)) == pytest.approx(29.97, abs=0.01)


def test_mpegts_on_stdout_with_2s_keyframes_no_reordering_and_constant_rate(
        tmp_path: Path, clip: Clip) -> None:
    result = subprocess.run([sys.executable, "-m", "veil", "live", str(clip.path), "-"],
                            capture_output=True, timeout=60, env=veil_env())
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = tmp_path / "stdout.ts"
    out.write_bytes(result.stdout)
    verdict = judge_file(out, clip)
    assert verdict.checked > 0 and verdict.covered_fraction >= 0.95
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    assert stream.codec_context.name == "h264"
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    # A keyframe every 2 s at 30 fps, and none in between (no scene-cut keyframes).
    assert keys == list(range(0, len(packets), 60)), keys
    # zerolatency: no B-frames, so packets come in presentation order; CFR: even steps.
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and all(p.pts == p.dts for p in packets)
    steps = {round(float((b - a) * packets[0].time_base), 4) for a, b in zip(pts, pts[1:])}
    assert steps == {round(1 / 30, 4)}, steps


def test_the_progress_line_shows_rates_latency_and_curtains(tmp_path: Path, clip: Clip) -> None:
    lines: list[str] = []
    report = run_live(LiveOptions(str(clip.path), str(tmp_path / "out.ts"),
                                  detector=TruthDetector(clip), progress=lines.append))
    assert len(lines) >= 2  # about once a second over a 3 s clip
    last = lines[-1]
    for label in ("in ", "fps", "out ", "latency +", "curtain ", "repeated ", "dropped "):
        assert label in last, last
    fps_in = float(last.split("in ")[1].split("fps")[0])
    assert 20 <= fps_in <= 40, last
    assert int(last.split("curtain ")[1].split()[0]) <= report.curtain_frames
