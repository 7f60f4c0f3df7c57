"""Long videos in segments: the cut plan, one segment's frames, the join, and a batch that redacts a
video in segments, is SIGKILLed between them and resumes without redoing the finished ones."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from helpers import keyframed_clip, run_cli
from veil._atomic import TEMP_MARK
from veil._types import Config
from veil.archive import LEDGER_NAME, Ledger, State
from veil.evaluate import COVERED_FRACTION, read_clip_truth
from veil.media.join import join_parts
from veil.media.video import VideoReader, Window
from veil.pipeline import redact_file, redact_segment
from veil.segments import KeyframeIndex, Segment, index_video, overlap_s, split

SECOND = 15360  # ticks of the synthetic clips' time base (1/15360, as FFmpeg's MP4 muxer picks)


def _index(seconds: float, fps: float = 30, gop_s: float = 1.0, jitter: bool = False) -> KeyframeIndex:
    step = SECOND / fps
    frames = [int(round(i * step + (i % 3 if jitter else 0))) for i in range(int(seconds * fps))]
    keys = [pts for i, pts in enumerate(frames) if i % int(round(gop_s * fps)) == 0]
    return KeyframeIndex(Fraction(1, SECOND), tuple(frames), tuple(keys))


# -- the cut plan ----------------------------------------------------------------------------------

@pytest.mark.parametrize("jitter", [False, True])
def test_cores_tile_the_video_and_start_at_keyframes(jitter: bool) -> None:
    index = _index(100, jitter=jitter)
    segments = split(index, 20.0, 3.0)
    assert len(segments) == 5 and [s.number for s in segments] == list(range(5))
    assert all(s.count == 5 for s in segments)
    assert segments[0].start == index.frames[0] and segments[-1].end is None
    assert [s.end for s in segments[:-1]] == [s.start for s in segments[1:]]
    assert sum(s.frames for s in segments) == len(index.frames)
    for s in segments:
        assert s.start in index.keyframes and s.lead_in in index.keyframes
        assert s.first_index == index.frames.index(s.lead_in)
        if s.number:  # the tracker sees at least the overlap before the core ...
            assert index.seconds(s.start) - index.seconds(s.lead_in) >= 3.0
        if s.end is not None:  # ... and after it
            assert s.lead_out is not None and index.seconds(s.lead_out) - index.seconds(s.end) >= 3.0 - 1e-9


def test_short_videos_and_videos_without_keyframes_are_one_segment() -> None:
    assert len(split(_index(39), 20.0, 3.0)) == 1  # under two segments
    assert len(split(_index(100, gop_s=1000), 20.0, 3.0)) == 1  # one keyframe: nowhere to cut
    only = split(_index(100), 0, 3.0)
    assert len(only) == 1 and only[0].frames == 3000 and only[0].lead_out is None


def test_no_tiny_last_segment() -> None:
    """A remainder under half a segment joins the last core."""
    segments = split(_index(65), 20.0, 3.0)
    assert len(segments) == 3 and segments[-1].frames == 25 * 30


def test_overlap_covers_the_trackers_reach() -> None:
    config = Config()
    assert overlap_s(config) >= 2 * max(config.track_hold_s, config.track_gap_s)


# -- one segment, and the join, on a synthetic clip (no faces: timing, audio, frames) --------------

def _probe(path: Path) -> tuple[list[int], list[bytes], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [frame.pts for frame in container.decode(stream)]
        base = stream.time_base
    with av.open(str(path)) as container:
        sound = [bytes(p) for p in container.demux(audio=0) if p.size] if container.streams.audio else []
    return times, sound, base


def test_a_window_decodes_its_frames_with_their_index_in_the_video(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    keyframed_clip(clip, 3.0, audio=False)
    index = index_video(clip)
    assert len(index.frames) == 90 and len(index.keyframes) == 6
    lead_in, lead_out = index.keyframes[2], index.frames[70]
    with VideoReader(clip) as reader:
        frames = list(reader.frames(window=Window(lead_in, lead_out, 30)))
    assert [f.index for f in frames] == list(range(30, 70))
    assert [f.pts for f in frames] == list(index.frames[30:70])
    with VideoReader(clip) as reader:
        whole = list(reader.frames())
    assert np.array_equal(frames[5].pixels, whole[35].pixels)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_joined_segments_keep_every_frame_time_and_the_audio(tmp_path: Path, suffix: str) -> None:
    """Parts are MP4 whatever the target (Matroska leaves the first packets' decoding time unset,
    which its muxer then refuses); the join writes the target's own container and codec."""
    clip = tmp_path / "clip.mp4"
    keyframed_clip(clip, 6.0, gop=10)  # keyframes every 1/3 s: cuts at no whole millisecond
    config = Config(drop_audio=suffix == ".webm")  # WebM cannot hold the AAC track
    segments = split(index_video(clip), 1.5, overlap_s(config))
    assert len(segments) == 4 and segments[1].start * Fraction(1, SECOND) == Fraction(5, 3)
    target = tmp_path / f"out{suffix}"
    parts = [tmp_path / f"part{s.number}.mp4" for s in segments]
    reports = [redact_segment(clip, target, s, part, config) for s, part in zip(segments, parts)]
    assert [r.frames for r in reports] == [s.frames for s in segments]
    assert sum(r.frames for r in reports) == 180
    frames = join_parts(clip, parts, [s.start for s in segments], target, target, config)
    assert frames == 180
    whole = tmp_path / f"whole{suffix}"
    redact_file(clip, whole, config)
    out_times, out_sound, out_base = _probe(target)
    whole_times, whole_sound, whole_base = _probe(whole)
    assert (out_times, out_base, out_sound) == (whole_times, whole_base, whole_sound)
    with av.open(str(target)) as container:
        assert container.format.name.split(",")[0] == {".mp4": "mov", ".mkv": "matroska",
                                                        ".webm": "matroska"}[suffix]
        assert container.streams.video[0].codec_context.name == ("vp9" if suffix == ".webm" else "h264")
    if suffix == ".mp4":
        src_times, src_sound, src_base = _probe(clip)
        assert out_base == src_base and out_times == src_times
        assert out_sound == src_sound and len(src_sound) > 200


def test_a_segment_that_decodes_fewer_frames_than_its_packets_fails(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    keyframed_clip(clip, 2.0, audio=False)
    segment = split(index_video(clip), 0, 3.0)[0]
    wrong = Segment(0, 1, segment.lead_in, segment.start, None, None, 0, segment.frames + 1)
    with pytest.raises(Exception, match="decoded 60 of the 61 frames"):
        redact_segment(clip, tmp_path / "out.mp4", wrong, tmp_path / "part.mp4", Config())
    assert not list(tmp_path.glob("*part*"))


# -- a batch on a rendered clip with faces ---------------------------------------------------------

MIN_FACE = 32


@pytest.fixture(scope="module")
def long_clip(make_clips_module, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[no-untyped-def]
    """A 4 s rendered clip with a keyframe every half second (the renderer's own x264 settings
    otherwise), so that one-second segments have somewhere to cut."""
    out = tmp_path_factory.mktemp("long")
    options = make_clips_module.X264_OPTIONS
    saved = dict(options)
    options.update(g="15", keyint_min="15")
    try:
        entry = make_clips_module.make_clips(str(out / "in"), count=1, seconds=4.0, size=(640, 360),
                                             seed=11)[0]
    finally:
        options.clear()
        options.update(saved)
    entry["path"] = out / "in" / entry["video"]
    entry["truth"] = read_clip_truth(out / "in" / entry["gt"], 640, 360)
    (out / "in" / entry["gt"]).unlink()  # the batch takes the folder: only the clip in it
    (out / "in" / "clips.json").unlink()
    entry["folder"] = out / "in"
    return entry


def _covered(path: Path, clip: dict) -> tuple[int, int]:
    """Face-frames >= MIN_FACE px whose box is masked (solid black) in the output's pixels."""
    found = total = 0
    with av.open(str(path)) as container:
        for frame, truth in zip(container.decode(video=0), clip["truth"]):
            pixels = frame.to_ndarray(format="rgb24")
            for box, height in zip(truth.boxes_xyxy.astype(int), truth.boxes[:, 3]):
                if height < MIN_FACE:
                    continue
                x0, y0, x1, y1 = np.clip(box, 0, [640, 360, 640, 360])
                patch = pixels[y0:y1, x0:x1].max(axis=2)
                total += 1
                found += bool(patch.size and (patch < 40).mean() >= COVERED_FRACTION)
    return found, total


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name or ".veil-segment-" in p.name]


@pytest.mark.slow
def test_a_batch_redacts_a_long_video_in_segments(long_clip: dict, tmp_path: Path) -> None:
    """Cut in one-second segments (4 of them), the clip comes out with every frame time and the
    audio of the source, no identifying tags, and the faces masked as well as in one piece."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    one = run_cli("redact", long_clip["folder"], "-o", whole, "--segment-minutes", "0")
    assert one.exit_code == 0, one.stderr
    split_run = run_cli("redact", long_clip["folder"], "-o", cut, "--segment-minutes", str(1 / 60),
                        "--report", tmp_path / "report.json")
    assert split_run.exit_code == 0, split_run.stderr
    name = long_clip["path"].name
    # Each segment says it is done (hours of one file show progress), then the file does.
    lines = split_run.stderr.splitlines()
    done = [line for line in lines if line.startswith("segment ")]
    assert sorted(line.split(" of ")[0] for line in done) == [f"segment {n}" for n in range(1, 5)]
    assert [line.rsplit("(", 1)[1] for line in done] == [f"{n} of 4)" for n in range(1, 5)]
    assert lines.index(done[-1]) < next(i for i, line in enumerate(lines) if line.startswith("done "))
    src_times, src_sound, _ = _probe(long_clip["path"])
    times, sound, _ = _probe(cut / name)
    assert times == src_times and len(times) == long_clip["frames"] == 120
    assert sound == src_sound and len(sound) > 50
    with av.open(str(cut / name)) as container:
        tags = dict(container.metadata)
        for stream in container.streams:
            tags.update(stream.metadata)
    assert not {"location", "make", "model", "creation_time"} & set(tags)
    found, total = _covered(cut / name, long_clip)
    found_whole, total_whole = _covered(whole / name, long_clip)
    assert total == total_whole > 100
    print("covered face-frames, cut / whole:", found, found_whole, total)
    assert found >= found_whole - 2 and found / total >= 0.95, (found, found_whole, total)
    import json

    report = json.loads((tmp_path / "report.json").read_text())["files"][0]
    assert report["frames"] == 120 and len(report["faces_per_frame"]) == 120
    assert report["output"] == str(cut / name)
    assert not _temps(tmp_path)
    with Ledger.open(cut / LEDGER_NAME) as ledger:
        rows = ledger.rows()
    assert [row.state for row in rows.values()] == [State.DONE], "segment rows are gone"


# Runs `veil ARGS` in one process with the parts' atomic writes wrapped: when the part named
# VICTIM is about to be written, the process SIGKILLs itself (a crash, the OOM killer). Nothing in
# veil reads a test switch.
_KILLER = r"""
import contextlib, os, signal, sys
from veil import pipeline

victim = sys.argv[1]
real = pipeline.atomic_output

@contextlib.contextmanager
def atomic_output(target, overwrite):
    if victim in target.name:
        os.kill(os.getpid(), signal.SIGKILL)
    with real(target, overwrite) as tmp:
        yield tmp

pipeline.atomic_output = atomic_output
from veil.cli import main
sys.argv = ["veil", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_a_killed_batch_redoes_only_the_unfinished_segments(long_clip: dict, tmp_path: Path) -> None:
    reference, out = tmp_path / "reference", tmp_path / "out"
    args = [long_clip["folder"], "--segment-minutes", str(1 / 60), "--jobs", "1"]
    clean = run_cli("redact", *args[:1], "-o", reference, *args[1:])
    assert clean.exit_code == 0, clean.stderr
    name = long_clip["path"].name

    def veil_until(victim: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _KILLER, victim, "redact", args[0], "-o", out,
                               *map(str, args[1:])], capture_output=True, text=True, timeout=300)

    died = veil_until("veil-segment-0003-of-0004")
    assert died.returncode == -signal.SIGKILL, died.stderr
    with Ledger.open(out / LEDGER_NAME) as ledger:
        rows = {Path(key).name.rsplit("#", 1)[-1]: row.state for key, row in ledger.rows().items()}
    assert rows == {name: State.PENDING, "segment-1": State.DONE, "segment-2": State.DONE,
                    "segment-3": State.RUNNING, "segment-4": State.PENDING}
    assert not (out / name).exists()
    status = run_cli("status", out)
    assert "1 file: 0 done" in status.stdout and "2 of 4 segments done" in status.stdout

    # Had the rerun redone segment 1 or 2, it would have died again.
    resumed = veil_until("veil-segment-0001-of-0004")
    assert resumed.returncode == 0, resumed.stderr
    assert (out / name).read_bytes() == (reference / name).read_bytes()
    assert not _temps(tmp_path)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        assert [row.state for row in ledger.rows().values()] == [State.DONE]
    again = run_cli("redact", *args[:1], "-o", out, *args[1:])
    assert again.exit_code == 0 and "skipped 1 file done earlier" in again.stderr


@pytest.mark.slow
def test_a_damaged_segment_fails_its_file_naming_the_segment(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    clip = src / "clip.mp4"
    keyframed_clip(clip, 6.0, audio=False)
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as container:  # garble the packet of frame 150 (in the last segment)
        packets = [p for p in container.demux(video=0) if p.size]
        victim = sorted(packets, key=lambda p: p.pts)[150]
        position, size = victim.pos, victim.size
    data[position + 8:position + size] = bytes(size - 8)
    clip.write_bytes(bytes(data))
    result = run_cli("redact", src, "-o", out, "--segment-minutes", str(1.5 / 60), "--jobs", "1")
    assert result.exit_code == 1
    # Segments whose overlaps reach frame 150 decode it too: whichever runs first fails the file,
    # naming itself and the frame by its number in the whole video.
    assert re.search(r"clip.mp4: segment [234] of 4: damaged video data near frame 1[45]\d",
                     result.stderr), result.stderr
    assert not (out / "clip.mp4").exists() and not _temps(tmp_path)
    with Ledger.open(out / LEDGER_NAME) as ledger:
        rows = ledger.rows()
    assert [row.state for row in rows.values()] == [State.FAILED]


@pytest.mark.slow
def test_one_long_video_to_one_file_resumes_from_a_hidden_ledger(tmp_path: Path) -> None:
    """`veil redact long.mp4 -o safe.mp4` has no output folder for a ledger: one hidden beside the
    output keeps a killed run's segments, and goes once the file is done."""
    clip, out = tmp_path / "long.mp4", tmp_path / "safe" / "safe.mp4"
    keyframed_clip(clip, 6.0)
    args = ["redact", clip, "-o", out, "--segment-minutes", str(1.5 / 60), "--jobs", "1"]
    hidden = out.with_name(".safe.mp4.veil-ledger.sqlite")

    def veil_until(victim: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _KILLER, victim, *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    died = veil_until("veil-segment-0003-of-0004")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert hidden.is_file() and not out.exists()
    assert "2 of 4 segments done" in run_cli("status", hidden).stdout
    resumed = veil_until("veil-segment-0001-of-0004")  # would die if segment 1 were redone
    assert resumed.returncode == 0, resumed.stderr
    assert _probe(out)[:2] == _probe(clip)[:2]
    assert not hidden.exists() and not _temps(tmp_path)
    assert [p.name for p in out.parent.iterdir()] == ["safe.mp4"]
    short = tmp_path / "short.mp4"
    keyframed_clip(short, 2.0, audio=False)  # one segment: no ledger at all, as before
    assert run_cli("redact", short, "-o", tmp_path / "safe" / "short.mp4", "--segment-minutes",
                   str(1.5 / 60)).exit_code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["safe.mp4", "short.mp4"]


def test_an_output_in_the_way_fails_a_long_video_before_any_segment_runs(tmp_path: Path) -> None:
    clip, out = tmp_path / "long.mp4", tmp_path / "safe.mp4"
    keyframed_clip(clip, 6.0, audio=False)
    out.write_bytes(b"someone's file")
    result = run_cli("redact", clip, "-o", out, "--segment-minutes", str(1.5 / 60), "--jobs", "1")
    assert result.exit_code == 1
    assert f"output {out} already exists (use --overwrite to replace it)" in result.stderr
    assert out.read_bytes() == b"someone's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "safe.mp4"]


@pytest.mark.slow
def test_a_segment_veil_died_on_max_tries_times_fails_its_file(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    keyframed_clip(src / "long.mp4", 6.0, audio=False)
    args = ["redact", src, "-o", out, "--segment-minutes", str(1.5 / 60), "--jobs", "1"]
    for death in (1, 2, 3):
        died = subprocess.run([sys.executable, "-c", _KILLER, "veil-segment-0002-of-0004",
                               *map(str, args)], capture_output=True, text=True, timeout=300)
        assert died.returncode == -signal.SIGKILL, died.stderr
        with Ledger.open(out / LEDGER_NAME) as ledger:
            rows = {Path(k).name: (r.state, r.attempts) for k, r in ledger.rows().items()}
        assert rows["long.mp4#segment-2"] == (State.RUNNING, death)
        assert rows["long.mp4#segment-1"] == (State.DONE, 1)
    gave_up = run_cli(*args)
    assert gave_up.exit_code == 1
    assert ("veil stopped while working on this file (or a segment of it) 3 times (it may crash "
            "veil); --retry-failed tries it again") in gave_up.stderr
    with Ledger.open(out / LEDGER_NAME) as ledger:
        assert [(Path(k).name, r.state) for k, r in ledger.rows().items()] == [("long.mp4", State.FAILED)]
    assert not _temps(tmp_path) and not (out / "long.mp4").exists()
    retried = run_cli(*args, "--retry-failed")  # whatever killed veil is gone
    assert retried.exit_code == 0, retried.stderr
    assert _probe(out / "long.mp4")[0] == _probe(src / "long.mp4")[0]
