"""Video I/O and the video pipeline on media generated here with PyAV (PyAV is also the oracle).

Most tests use StaticDetector so they exercise decoding, tracking, masking, encoding, timing,
audio, metadata and failure handling without the cost of the real detector.
"""

from __future__ import annotations

from dataclasses import replace

import hashlib
import os
import signal
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from veil import Config, InputError, MaskRegions, RedactionError, StaticDetector
from veil._atomic import TEMP_MARK
from veil._types import RegionSource
from veil.pipeline import redact_file, scan_file

from helpers import keyframed_clip, redact_in_background, run_cli

ROOT = Path(__file__).resolve().parents[1]
TAGS = {"creation_time": "2023-01-10T09:14:00.000000Z", "location": "+40.7128-074.0060/",
        "make": "Apple", "model": "iPhone 13"}


def write_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (64, 48),
               time_base: Fraction = Fraction(1, 30000), pts: list[int] | None = None,
               rate: Fraction = Fraction(30000, 1001), rotation: int = 0, pix_fmt: str = "yuv420p",
               audio: bool = True, tags: dict[str, str] | None = None, fmt: str | None = None,
               codec: str = "libx264", attachment: bool = False, texture: bool = False) -> Path:
    """A small clip: a gradient with a white 8x8 marker at the stored top-left, and a sine tone."""
    width, height = size
    pts = pts if pts is not None else [round(i / rate / time_base) for i in range(frames)]
    options = {"movflags": "use_metadata_tags"} if tags and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", format=fmt, options=options) as c:
        if tags:
            c.metadata.update(tags)
        v = c.add_stream(codec, rate=rate, options={"preset": "ultrafast"} if codec == "libx264" else {})
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.time_base = time_base
        v.codec_context.time_base = time_base
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000, layout="stereo")
        if attachment:
            c.add_attachment("font.ttf", "application/x-truetype-font", b"\0" * 64)
        sample = 0
        for i, p in enumerate(pts):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
            img[..., 1] = (i * 9) % 200
            if texture:  # fine detail that any mask style must destroy
                img[..., 2] = np.random.default_rng(i).integers(0, 256, (height, width), dtype=np.uint8)
            img[:8, :8] = 255
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = p, time_base
            c.mux(v.encode(f))
            if a is not None:
                until = round(float((p + 1001) * time_base) * 48000)
                while sample < until:
                    t = (sample + np.arange(960)) / 48000
                    wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                    af = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
                    af.sample_rate, af.pts, af.time_base = 48000, sample, Fraction(1, 48000)
                    c.mux(a.encode(af))
                    sample += 960
        c.mux(v.encode(None))
        if a is not None:
            c.mux(a.encode(None))
    return path


def frame_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * s.time_base for f in c.decode(s)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def all_tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
        for s in c.streams:
            tags.update({f"{s.type}:{k}": v for k, v in s.metadata.items()})
        return tags


NO_FACES = StaticDetector([])


# -- timing, frames, audio, metadata ---------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [
    ("ntsc.mp4", {}),
    ("vfr.mp4", {"pts": [0, 1001, 3003, 4004, 8008, 9009, 10010, 15015, 16016, 17017]}),
    ("pal.mov", {"time_base": Fraction(1, 25), "rate": Fraction(25)}),
    ("clip.mkv", {"time_base": Fraction(1, 1000), "rate": Fraction(30000, 1001)}),
    ("hevc.mov", {"codec": "libx265"}),  # what phones record by default
    ("prores.mov", {"codec": "prores_ks", "pix_fmt": "yuv422p10le"}),
])
def test_frame_count_and_timestamps_are_kept(tmp_path: Path, name: str, kwargs: dict) -> None:
    src = write_clip(tmp_path / name, **kwargs)
    out = tmp_path / ("out" + src.suffix)
    report = redact_file(src, out, Config(), detector=NO_FACES)
    assert frame_times(out) == frame_times(src)
    assert report.frames == len(frame_times(src))
    assert len(report.faces_per_frame) == report.frames
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    with av.open(str(src)) as c:
        expected_format = c.format.name
    with av.open(str(out)) as c:
        assert c.format.name == expected_format


def test_ntsc_rate_stays_ntsc(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "ntsc.mp4", frames=30)
    out = redact_file(src, tmp_path / "o.mp4", Config(), detector=NO_FACES).output
    assert out is not None
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


def test_audio_is_copied_bit_identical_or_dropped(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "a.mp4", frames=20)
    kept = tmp_path / "kept.mp4"
    redact_file(src, kept, Config(), detector=NO_FACES)
    source_packets = audio_packets(src)
    assert len(source_packets) > 10
    assert audio_packets(kept) == source_packets
    dropped = tmp_path / "dropped.mp4"
    redact_file(src, dropped, Config(drop_audio=True), detector=NO_FACES)
    with av.open(str(dropped)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_identifying_metadata_is_not_copied(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "tags.mp4", tags=TAGS)
    assert {"make", "model", "location"} <= set(all_tags(src))  # the input really carries them
    out = tmp_path / "out.mp4"
    redact_file(src, out, Config(), detector=NO_FACES)
    tags = all_tags(out)
    for key in tags:
        assert not any(word in key for word in ("creation_time", "location", "make", "model", "apple"))
    assert "encoder" not in tags  # not even FFmpeg's own "Lavf..." tag
    raw = out.read_bytes()
    for value in ("Apple", "iPhone", "+40.7128", "2023-01-10"):
        assert value.encode() not in raw


def test_keep_metadata_keeps_date_and_camera_and_gps_only_when_asked(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "tags.mp4", tags=TAGS)
    out = tmp_path / "keep.mp4"
    redact_file(src, out, Config(keep_metadata=True), detector=NO_FACES)
    tags = all_tags(out)
    assert tags.get("make") == "Apple" and tags.get("model") == "iPhone 13"
    assert tags.get("creation_time", "").startswith("2023-01-10")
    assert not any("location" in k for k in tags)
    assert b"+40.7128" not in out.read_bytes()
    gps = tmp_path / "gps.mp4"
    redact_file(src, gps, Config(keep_metadata=True, keep_gps=True), detector=NO_FACES)
    assert any(v == TAGS["location"] for v in all_tags(gps).values())


def test_attachments_and_other_streams_are_dropped(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "att.mkv", time_base=Fraction(1, 1000), attachment=True)
    with av.open(str(src)) as c:
        assert any(s.type == "attachment" for s in c.streams)
    out = tmp_path / "out.mkv"
    redact_file(src, out, Config(), detector=NO_FACES)
    with av.open(str(out)) as c:
        assert sorted(s.type for s in c.streams) == ["audio", "video"]


def test_webm_becomes_vp9_with_audio_copied(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "clip.webm", frames=6, time_base=Fraction(1, 1000), codec="libvpx-vp9")
    out = tmp_path / "out.webm"
    redact_file(src, out, Config(), detector=NO_FACES)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    assert frame_times(out) == frame_times(src)
    assert audio_packets(out) == audio_packets(src)


def test_ten_bit_input(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "hi.mp4", pix_fmt="yuv420p10le", audio=False)
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    out = tmp_path / "out.mp4"
    redact_file(src, out, Config(), detector=StaticDetector([(20, 10, 40, 30)]))
    frames = decoded(out)
    assert len(frames) == 12
    assert frames[0][22:28, 25:35].max() < 30  # masked black
    assert abs(int(frames[0][40, 60, 0]) - 198) < 20  # the gradient survives elsewhere


# -- masking, rotation, tracking, scan ---------------------------------------------------------------

def test_masks_cover_the_detection_in_every_frame(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "m.mp4", size=(96, 64))
    out = tmp_path / "out.mp4"
    box = (30, 20, 50, 40)
    report = redact_file(src, out, Config(margin_x=0, margin_top=0, margin_bottom=0),
                               detector=StaticDetector([box]))
    for frame in decoded(out):
        assert frame[21:39, 31:49].max() < 30
        assert frame[50:60, 70:90, 0].mean() > 100  # the red gradient outside survives
    assert report.faces_per_frame == (1,) * 12
    # The default preset detects on every 3rd frame: frames between carry the tracked box.
    assert report.tracked_frames > 0
    assert report.lowest_score == pytest.approx(0.9)


# Upright frames are painted in YUV; turned ones in RGB (see VideoWriter.write).
@pytest.mark.parametrize("name,rotation", [("odd.mp4", 0), ("odd.mkv", 0), ("odd_turned.mp4", 90)])
def test_odd_sizes_lose_their_last_column_and_row_and_keep_masks_timing_and_audio(
        tmp_path: Path, name: str, rotation: int) -> None:
    # H.264 in 4:2:0 needs an even width and height; MPEG-4 part 2 (older cameras) allows odd ones.
    src = write_clip(tmp_path / name, size=(65, 49), codec="mpeg4", rotation=rotation)
    with av.open(str(src)) as c:
        stored = next(c.decode(video=0))
        assert (stored.width, stored.height) == (65, 49)
    upright = (49, 65) if rotation else (65, 49)
    out = tmp_path / ("out" + src.suffix)
    box = (upright[0] - 20, upright[1] - 20, upright[0], upright[1])  # reaches the odd edges
    report = redact_file(src, out, Config(margin_x=0, margin_top=0, margin_bottom=0),
                               detector=StaticDetector([box]))
    assert report.frames == 12
    assert frame_times(out) == frame_times(src)
    assert audio_packets(out) == audio_packets(src) != []
    frames = decoded(out)
    assert frames[0].shape[:2] == (upright[1] // 2 * 2, upright[0] // 2 * 2)
    for frame in frames:
        assert frame[upright[1] - 18:, upright[0] - 18:].max() < 30
        assert frame[:12, :12].max() > 100  # the unmasked corner survives


def test_a_picture_too_small_to_encode_is_refused_by_name(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "dot.mkv", size=(1, 1), codec="mpeg4", audio=False)
    out = tmp_path / "out.mkv"
    with pytest.raises(RedactionError, match=r"cannot encode this video \(1x1\)"):
        redact_file(src, out, Config(), detector=NO_FACES)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]


@pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv420p"), ("mjpeg", "yuvj420p")])
def test_avi_output_has_no_reordered_frames(tmp_path: Path, codec: str, pix_fmt: str) -> None:
    # AVI stores no presentation times; with B-frames its frames read back out of order.
    src = write_clip(tmp_path / "old.avi", time_base=Fraction(1, 25), rate=Fraction(25), audio=False,
                     codec=codec, pix_fmt=pix_fmt)
    out = tmp_path / "out.avi"
    redact_file(src, out, Config(), detector=NO_FACES)
    times = frame_times(out)
    assert len(times) == 12
    assert times == sorted(times)


def test_rotation_is_applied_to_pixels_and_dropped_from_the_output(tmp_path: Path) -> None:
    # Stored 64x48 landscape; the display matrix turns it clockwise (a phone held upright).
    src = write_clip(tmp_path / "rot.mp4", rotation=-90, audio=False)
    with av.open(str(src)) as c:
        assert next(c.decode(video=0)).rotation == -90
    out = tmp_path / "out.mp4"
    redact_file(src, out, Config(), detector=NO_FACES)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (48, 64)
        assert frame.rotation == 0
        pixels = frame.to_ndarray(format="rgb24")
    # Turned clockwise, the stored top-left marker is now top-right, as a viewer sees it.
    assert pixels[1:7, -7:-1].min() > 200
    assert pixels[1:7, 1:7].max() < 200
    # Scan coordinates are in the same upright picture.
    scans = list(scan_file(src, Config(), detector=StaticDetector([(40, 0, 48, 8)])))
    assert (scans[0].width, scans[0].height) == (48, 64)


def test_scan_gives_time_and_track_per_face(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "s.mp4", frames=6)
    scans = list(scan_file(src, Config(), detector=StaticDetector([(10, 10, 30, 30)])))
    assert [s.frame for s in scans] == list(range(6))
    assert [s.time for s in scans] == pytest.approx([float(t) for t in frame_times(src)])
    line = scans[1].to_json()
    assert "time" in line and line["faces"][0]["track"] == scans[0].faces[0].track
    sources = {f.source for s in scans for f in s.faces}
    assert sources == {RegionSource.DETECTED, RegionSource.TRACKED}
    # Tracker-added regions are reported with score 0.
    assert all(f.score == 0 for s in scans for f in s.faces if f.source is RegionSource.TRACKED)


class _DropEverything:
    """A plan hook, as the review app's plan file provides, that unmasks every face."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def apply(self, frame_index: int, computed: MaskRegions, width: int,
              height: int) -> tuple[MaskRegions, np.ndarray]:
        self.calls.append(frame_index)
        assert len(computed) == 1
        return MaskRegions.empty(computed.shape), np.zeros(0, np.int64)


def test_plan_hook_gets_the_final_regions_of_each_frame(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "p.mp4", size=(96, 64))
    hook = _DropEverything()
    out = tmp_path / "out.mp4"
    report = redact_file(src, out, Config(), detector=StaticDetector([(30, 20, 50, 40)]), plan=hook)
    assert hook.calls == list(range(12))
    assert report.faces_per_frame == (0,) * 12
    assert decoded(out)[0][25:35, 35:45].mean() > 30  # left visible, as the plan said


def test_progress_is_reported(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "g.mp4")
    calls: list[tuple[int, int | None]] = []
    redact_file(src, tmp_path / "o.mp4", Config(), detector=NO_FACES,
                      progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (12, 12)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


# -- failing closed ----------------------------------------------------------------------------------

def _add_cover(container: Any, attached: bool = True) -> Callable[[], None]:
    """Add a 32x32 JPEG stream, marked as an attached picture (cover art) if `attached`; returns
    what muxes its one frame (call it once every stream is added)."""
    cover = container.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
    if attached:
        cover.disposition = av.stream.Disposition.attached_pic

    def mux() -> None:
        picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        container.mux(cover.encode(picture))
        container.mux(cover.encode(None))
    return mux


def test_the_footage_is_redacted_not_a_picture_listed_before_it(tmp_path: Path) -> None:
    src = tmp_path / "cover_first.mkv"
    with av.open(str(src), "w") as c:
        mux_cover = _add_cover(c, attached=False)  # Matroska keeps no attached-picture mark: size decides
        v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        mux_cover()
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    out = tmp_path / "out.mkv"
    report = redact_file(src, out, Config(), detector=NO_FACES)
    assert report.frames == 10
    with av.open(str(out)) as c:
        assert [(s.type, s.width, s.height) for s in c.streams] == [("video", 64, 48)]


def _bad_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    good = write_clip(folder / "good-source.tmp.mp4", frames=60, size=(160, 120))
    data = good.read_bytes()
    files = {}
    files["zero"] = folder / "zero.mp4"
    files["zero"].write_bytes(b"")
    moov = data.find(b"moov")
    files["truncated"] = folder / "truncated.mp4"
    files["truncated"].write_bytes(data[:moov - 4] if moov > data.find(b"mdat") else data[: len(data) // 2])
    files["audio_only"] = folder / "audio_only.mp4"
    with av.open(str(files["audio_only"]), "w") as c:
        a = c.add_stream("aac", rate=48000, layout="stereo")
        for k in range(10):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    # Music files carry cover art as a one-frame "video" stream: that is not footage.
    files["audio_with_cover"] = folder / "audio_with_cover.mp4"
    with av.open(str(files["audio_with_cover"]), "w") as c:
        a = c.add_stream("aac", rate=48000, layout="stereo")
        _add_cover(c)()
        for k in range(10):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    files["unopenable"] = folder / "unopenable.mp4"
    files["unopenable"].write_bytes(b"\0\0\0\x18ftypisom" + os.urandom(4000))
    corrupt = bytearray(data)
    mdat = corrupt.find(b"mdat")
    middle = mdat + (len(corrupt) - mdat) // 2 if mdat < moov else mdat + (len(corrupt) - mdat) // 2
    rng = np.random.default_rng(1)
    corrupt[middle:middle + 300] = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
    files["corrupt"] = folder / "corrupt.mp4"
    files["corrupt"].write_bytes(bytes(corrupt))
    good.unlink()
    return files


def test_bad_inputs_fail_with_a_clear_error_and_leave_nothing(tmp_path: Path) -> None:
    files = _bad_inputs(tmp_path / "in")
    for name, path in files.items():
        target = tmp_path / f"{name}.out.mp4"
        with pytest.raises((InputError, RedactionError)) as info:
            redact_file(path, target, Config(), detector=NO_FACES)
        assert info.value.path == path, name
        assert "\n" not in info.value.message
        if name == "truncated":
            assert "moov" in info.value.message
        if name == "audio_with_cover":
            assert "attached picture" in info.value.message
        assert not target.exists(), name
        assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name], name


def test_bad_inputs_through_the_cli(tmp_path: Path) -> None:
    files = _bad_inputs(tmp_path / "in")
    before = {p: p.read_bytes() for p in files.values()}
    out = tmp_path / "out"
    result = run_cli("redact", tmp_path / "in", "-o", out)
    assert result.exit_code == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    for path in files.values():
        assert sum(path.name in line for line in errors) == 1, result.stderr
    # Nothing but the batch's ledger (veil.archive), which records the failures for `veil status`.
    assert not out.exists() or not [p for p in out.rglob("*") if p.name != ".veil-ledger.sqlite"]
    assert {p: p.read_bytes() for p in files.values()} == before


@pytest.mark.slow
def test_sigkill_mid_file_leaves_no_output_and_input_unchanged(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "long.mp4", frames=900, size=(320, 240), time_base=Fraction(1, 30),
                     rate=Fraction(30), audio=False)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    target = tmp_path / "out.mp4"
    proc = redact_in_background(src, target, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    # What SIGKILL cannot clean up: the hidden temporary file beside the target, never at it.
    leftovers = [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    assert all(p.name.startswith(".") for p in leftovers)


@pytest.mark.parametrize("shape", ["box", "ellipse"])
def test_yuv_painting_covers_exactly_the_planned_pixels(shape: str) -> None:
    from veil._types import MaskShape, MaskStyle
    from veil.paint import paint_yuv420
    from veil.paint import coverage_mask

    image = av.VideoFrame.from_ndarray(np.full((41, 63, 3), 200, np.uint8), format="rgb24").reformat(format="yuv420p")
    plan = MaskRegions(np.array([[3, 5, 20, 30], [40, 0, 63, 41]]), MaskShape(shape))
    paint_yuv420(image, plan, MaskStyle.SOLID)
    luma = np.frombuffer(image.planes[0], np.uint8).reshape(-1, image.planes[0].line_size)[:41, :63]
    covered = coverage_mask(plan, 41, 63)
    assert np.all(luma[covered] == 16)
    assert np.all(luma[~covered] > 100)
    rgb = image.to_ndarray(format="rgb24")
    assert rgb[covered].max() < 12  # black, chroma included, to the region's edge


@pytest.mark.parametrize("shape", ["box", "ellipse"])
def test_yuv_painting_of_a_crowd_matches_the_coverage_exactly(shape: str) -> None:
    # Many overlapping regions at odd offsets, not touching the frame's left and top edges: the
    # union is painted inside a window, and chroma must still follow the 2x2 blocks exactly.
    from veil._types import MaskShape, MaskStyle
    from veil.paint import paint_yuv420
    from veil.paint import coverage_mask

    rng = np.random.default_rng(3)
    xy = rng.integers(7, 80, (150, 2))
    boxes = np.hstack([xy, xy + rng.integers(1, 20, (150, 2))])
    boxes[:, 2:] = np.minimum(boxes[:, 2:], [101, 77])
    plan = MaskRegions(boxes, MaskShape(shape))
    orange = np.empty((77, 101, 3), np.uint8)
    orange[...] = (220, 120, 40)  # chroma far from neutral, so painted blocks stand out
    image = av.VideoFrame.from_ndarray(orange, format="rgb24").reformat(format="yuv420p")
    paint_yuv420(image, plan, MaskStyle.SOLID)
    planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in image.planes]
    covered = coverage_mask(plan, 77, 101)
    if plan.shape is MaskShape.BOX:  # the union of the boxes, pixel for pixel
        union = np.zeros((77, 101), bool)
        for x0, y0, x1, y1 in boxes:
            union[y0:y1, x0:x1] = True
        assert np.array_equal(covered, union)
    assert np.all(planes[0][:77, :101][covered] == 16) and np.all(planes[0][:77, :101][~covered] > 100)
    padded = np.zeros((78, 102), bool)
    padded[:77, :101] = covered
    blocks = padded.reshape(39, 2, 51, 2).any(axis=(1, 3))
    for chroma in planes[1:]:
        assert np.all(chroma[:39, :51][blocks] == 128) and np.all(chroma[:39, :51][~blocks] != 128)


@pytest.mark.parametrize("shape", ["box", "ellipse"])
def test_yuv_painting_skips_empty_regions_chroma_included(shape: str) -> None:
    # A zero-width box at an odd x would still name a chroma column ((x + 1) // 2 > x // 2).
    from veil._types import MaskShape, MaskStyle
    from veil.paint import paint_yuv420

    image = av.VideoFrame.from_ndarray(np.full((40, 60, 3), (220, 120, 40), np.uint8),
                                       format="rgb24").reformat(format="yuv420p")
    before = [bytes(p) for p in image.planes]
    paint_yuv420(image, MaskRegions(np.array([[11, 5, 11, 30], [20, 9, 40, 9], [30, 20, 25, 30]]),
                                 MaskShape(shape)), MaskStyle.SOLID)
    assert [bytes(p) for p in image.planes] == before


@pytest.mark.parametrize("mask,shape", [("noise", "ellipse"), ("mosaic", "box"), ("blur", "ellipse")])
def test_every_mask_style_through_the_video_pipeline(tmp_path: Path, mask: str, shape: str) -> None:
    src = write_clip(tmp_path / "s.mp4", size=(96, 64), audio=False, texture=True)
    out = tmp_path / "out.mp4"
    config = Config(mask=mask, shape=shape, margin_x=0, margin_top=0, margin_bottom=0)  # type: ignore[arg-type]
    redact_file(src, out, config, detector=StaticDetector([(30, 20, 62, 52)]))
    before, after = decoded(src), decoded(out)
    assert len(after) == len(before)
    centre = (slice(30, 42), slice(40, 52))
    assert np.abs(after[0][centre].astype(int) - before[0][centre].astype(int)).mean() > 10


class _QuarterDetector:
    """Finds one 'face' covering the top-left quarter of whatever frame it is given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, frame: np.ndarray):  # type: ignore[no-untyped-def]
        from veil import Detections

        self.shapes.append(frame.shape)
        h, w = frame.shape[:2]
        return Detections(np.array([[0, 0, w / 2, h / 2]], np.float32), np.array([0.9], np.float32))


@pytest.mark.parametrize("rotation", [0, -90, 180])
def test_prescaled_detection_maps_back_to_full_upright_frames(tmp_path: Path, rotation: int) -> None:
    from veil.media.video import VideoReader
    from veil.pipeline import planned_frames, video_stages, with_camera

    src = write_clip(tmp_path / "r.mp4", size=(64, 48), rotation=rotation, audio=False, frames=4)
    detector = _QuarterDetector()
    with VideoReader(src) as reader:
        stages = replace(video_stages(Config(), 30.0, detector), prescale=0.5)
        planned = list(planned_frames(with_camera(reader.frames(), stages), stages, Config()))
    upright = (64, 48) if rotation == -90 else (48, 64)  # (height, width)
    assert detector.shapes[0] == (upright[0] // 2, upright[1] // 2, 3)
    x, y, w, h = planned[0].faces[0].box
    assert (x, y) == (0, 0) and (w, h) == pytest.approx((upright[1] / 2, upright[0] / 2))


def test_sound_the_container_cannot_hold_is_one_clear_line(tmp_path: Path) -> None:
    """AAC cannot go into WebM: the file fails saying so and what to do, not with a ValueError."""
    clip = tmp_path / "clip.mp4"
    keyframed_clip(clip, 1.0)
    result = run_cli("redact", clip, "-o", tmp_path / "out.webm")
    assert result.exit_code == 1
    assert "cannot copy the sound: 'webm' format does not support 'aac' codec (try --drop-audio)" \
        in result.stderr
    assert "ValueError" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert run_cli("redact", clip, "-o", tmp_path / "out.webm", "--drop-audio").exit_code == 0
