"""Cut-off videos (issue 20, item 4): a Matroska or WebM file cut short states a length, not a
frame count, so the reader compares where the decode ends with that length. By default such a
file fails, saying where it ends; `--salvage` writes the part that decodes and says so.

Clips are generated here with PyAV, and PyAV decoding the cut file directly is the oracle for
how much of it decodes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from helpers import run_cli
from test_video import NO_FACES, frame_times, write_clip
from veil import Config, InputError, RedactionError, redact_file
from veil._atomic import TEMP_MARK

FRAMES = 60
RATE = Fraction(30000, 1001)
STATED_S = FRAMES / float(RATE)  # 2.002 s: Matroska states the video track's length


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cut(src: Path, fraction: float, name: str) -> Path:
    data = src.read_bytes()
    out = src.with_name(name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Whole MKV and WebM clips of 60 frames, and each cut to 50 % and 90 % of its bytes."""
    folder = tmp_path_factory.mktemp("cut")
    out = {}
    for suffix, fmt, codec in ((".mkv", "matroska", "libx264"), (".webm", "webm", "libvpx-vp9")):
        whole = write_clip(folder / f"whole{suffix}", frames=FRAMES, size=(96, 64), fmt=fmt,
                           codec=codec, texture=True, time_base=Fraction(1, 1000))
        out[f"whole{suffix}"] = whole
        for percent in (50, 90):
            out[f"cut{percent}{suffix}"] = _cut(whole, percent / 100, f"cut{percent}{suffix}")
    return out


CUTS = ["cut50.mkv", "cut90.mkv", "cut50.webm", "cut90.webm"]


def _ends(path: Path) -> dict[str, tuple[float, float]]:
    """Per track kind, (where its decodable data ends, the length its DURATION tag states), read
    with PyAV alone: the video from the frames it decodes, the sound from its packets."""
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        stated = {s.type: sum(float(x) * 60 ** (2 - i) for i, x in
                              enumerate(s.metadata["DURATION"].split(":"))) for s in (video, audio)}
        time_base = video.time_base
        frames = [f.pts for f in c.decode(video)]
    with av.open(str(path)) as c:
        audio = c.streams.audio[0]
        audio_end = max(float((p.pts + p.duration) * p.time_base) for p in c.demux(audio)
                        if p.pts is not None)
    video_end = float(frames[-1] * time_base + 1 / RATE)
    return {"video": (video_end, stated["video"]), "audio": (audio_end, stated["audio"])}


def _short_track(path: Path) -> tuple[float, float]:
    """(decoded, stated) of the track the reader must report: the video if it lost more than a
    frame, else the sound."""
    ends = _ends(path)
    video_end, video_stated = ends["video"]
    return ends["video"] if video_end + 1 / RATE + 0.005 < video_stated else ends["audio"]


@pytest.mark.parametrize("name", CUTS)
def test_a_cut_matroska_file_fails_saying_where_it_ends(clips: dict[str, Path], tmp_path: Path,
                                                        name: str) -> None:
    src = clips[name]
    before = _sha(src)
    # The oracle: where PyAV's decode of the cut file ends. A 90 % cut of the WebM keeps every
    # video frame and loses the end of the sound instead.
    decoded_s, stated_s = _short_track(src)
    assert decoded_s < stated_s - 0.05
    target = tmp_path / f"out{src.suffix}"
    with pytest.raises(RedactionError) as info:
        redact_file(src, target, Config(), detector=NO_FACES)
    found = re.search(r"ends early: (?:its sound stops at )?(\d+\.\d) s of (?:the )?(\d+\.\d) s",
                      info.value.message)
    assert found, info.value.message
    assert float(found[1]) == pytest.approx(decoded_s, abs=0.051)
    assert float(found[2]) == pytest.approx(stated_s, abs=0.051)
    assert "--salvage" in info.value.message and info.value.path == src
    assert not target.exists() and not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    assert _sha(src) == before


@pytest.mark.parametrize("name", CUTS)
def test_salvage_writes_every_frame_that_decodes_and_says_so(clips: dict[str, Path], tmp_path: Path,
                                                             name: str) -> None:
    src = clips[name]
    before = _sha(src)
    target = tmp_path / f"out{src.suffix}"
    report = redact_file(src, target, Config(salvage=True), detector=NO_FACES)
    decodable = frame_times(src)
    assert frame_times(target) == decodable
    assert report.salvaged is not None and report.frames == len(decodable)
    assert report.salvaged.frames == len(decodable)
    decoded_s, stated_s = _short_track(src)
    assert report.salvaged.decoded_s == pytest.approx(decoded_s, abs=0.002)
    assert report.salvaged.stated_s == pytest.approx(stated_s, abs=0.002)
    assert report.to_json()["salvaged"] == {"decoded_s": report.salvaged.decoded_s,
                                            "stated_s": report.salvaged.stated_s,
                                            "frames": len(decodable)}
    assert _sha(src) == before


@pytest.mark.parametrize("name", ["whole.mkv", "whole.webm"])
def test_a_whole_matroska_file_is_neither_refused_nor_salvaged(clips: dict[str, Path],
                                                               tmp_path: Path, name: str) -> None:
    for salvage in (False, True):
        report = redact_file(clips[name], tmp_path / f"{salvage}{clips[name].suffix}",
                             Config(salvage=salvage), detector=NO_FACES)
        assert report.frames == FRAMES and report.salvaged is None
        assert "salvaged" not in report.to_json()


def _long_audio_clip(path: Path) -> Path:
    """30 video frames (1 s) and 2 s of sound, as a recorder that stopped the camera first writes."""
    with av.open(str(path), "w", format="matroska") as c:
        v = c.add_stream("libx264", rate=RATE, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000, layout="stereo")
        for i in range(30):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, np.uint8), format="rgb24")
            f.pts, f.time_base = i * 1001, Fraction(1, 30000)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        for k in range(2 * 48000 // 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp",
                                            layout="stereo")
            af.sample_rate, af.pts = 48000, k * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    # Without its per-track DURATION tags (other muxers write none), the file states only its
    # whole length, which the sound makes twice the video's.
    data = path.read_bytes()
    assert data.count(b"DURATION") == 2
    path.write_bytes(data.replace(b"DURATION", b"DURATIOX"))
    with av.open(str(path)) as c:
        assert "DURATION" not in c.streams.video[0].metadata
        assert c.duration / av.time_base > 1.9
    return path


def test_a_file_stating_only_its_whole_length_counts_every_stream(tmp_path: Path) -> None:
    whole = _long_audio_clip(tmp_path / "long-audio.mkv")
    report = redact_file(whole, tmp_path / "out.mkv", Config(), detector=NO_FACES)
    assert report.frames == 30 and report.salvaged is None
    # --drop-audio does not change what the file is: its sound still reaches its stated end.
    report = redact_file(whole, tmp_path / "out2.mkv", Config(drop_audio=True), detector=NO_FACES)
    assert report.frames == 30 and report.salvaged is None
    cut = _cut(whole, 0.5, "cut.mkv")
    with pytest.raises(RedactionError, match="ends early"):
        redact_file(cut, tmp_path / "out3.mkv", Config(), detector=NO_FACES)
    assert not (tmp_path / "out3.mkv").exists()


def test_a_truncated_mp4_is_still_refused_even_with_salvage(tmp_path: Path) -> None:
    """An MP4 cut before its index (the 'moov' atom, written last) cannot be decoded at all."""
    whole = write_clip(tmp_path / "whole.mp4", frames=FRAMES, size=(96, 64))
    data = whole.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    for fraction in (0.5, 0.9):
        src = _cut(whole, fraction, f"cut{int(fraction * 100)}.mp4")
        before = _sha(src)
        for salvage in (False, True):
            target = tmp_path / f"out-{salvage}.mp4"
            with pytest.raises(InputError, match="moov"):
                redact_file(src, target, Config(salvage=salvage), detector=NO_FACES)
            assert not target.exists()
        assert _sha(src) == before


def _decodable_times(path: Path) -> list[Fraction]:
    """Frame times PyAV decodes from a file before its first decoding error (the oracle)."""
    times: list[Fraction] = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        try:
            for packet in c.demux(stream):
                times.extend(Fraction(f.pts) * stream.time_base for f in stream.decode(packet))
        except av.error.FFmpegError:
            pass
    return times


@pytest.fixture(scope="module")
def faststart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 with its index in front (faststart), so that a cut leaves it openable."""
    folder = tmp_path_factory.mktemp("faststart")
    whole = write_clip(folder / "whole.mp4", frames=FRAMES, size=(96, 64), texture=True)
    fast = folder / "fast.mp4"
    with av.open(str(whole)) as src, av.open(str(fast), "w", options={"movflags": "+faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    data = fast.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    return fast


# 0.3 and 0.9 cut between packets; 0.6 cuts inside one, which then decodes as damage.
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_a_short_faststart_mp4_is_refused_and_salvage_writes_it(faststart: Path, tmp_path: Path,
                                                                fraction: float) -> None:
    """An MP4 with its index in front states a frame count; data cut off after it falls short."""
    cut = _cut(faststart, fraction, f"cut{fraction}.mp4")
    decodable = _decodable_times(cut)
    assert 0 < len(decodable) < FRAMES
    with pytest.raises(RedactionError, match=f"only {len(decodable)} of {FRAMES} frames|the file "
                       "ends there") as info:
        redact_file(cut, tmp_path / "out.mp4", Config(), detector=NO_FACES)
    assert "--salvage" in info.value.message
    assert not (tmp_path / "out.mp4").exists()
    report = redact_file(cut, tmp_path / "out.mp4", Config(salvage=True), detector=NO_FACES)
    written = frame_times(tmp_path / "out.mp4")
    if "ends there" in info.value.message:
        # Cut inside a packet: the frames the decoder's threads held when its damage showed are
        # dropped with it (they cannot be told apart from it); the rest is the decodable start.
        assert written == decodable[:len(written)]
        assert len(decodable) - len(written) <= (os.cpu_count() or 1) + 2
    else:
        assert written == decodable
    assert report.salvaged is not None and report.salvaged.frames == len(written)
    assert report.salvaged.stated_s == pytest.approx(STATED_S, abs=0.002)
    assert report.salvaged.decoded_s == pytest.approx(float(written[-1] + 1 / RATE), abs=0.002)


def test_damage_before_the_end_is_not_salvaged(clips: dict[str, Path], tmp_path: Path) -> None:
    """--salvage keeps what precedes a cut, never what follows damage inside the file."""
    data = bytearray(clips["whole.mkv"].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 400] = np.random.default_rng(3).integers(0, 256, 400, np.uint8).tobytes()
    src = tmp_path / "damaged.mkv"
    src.write_bytes(bytes(data))
    with pytest.raises(RedactionError, match="damaged|decoding failed") as info:
        redact_file(src, tmp_path / "out.mkv", Config(salvage=True), detector=NO_FACES)
    assert "ends there" not in info.value.message
    assert not (tmp_path / "out.mkv").exists()


def test_the_cli_refuses_a_cut_file_and_salvages_it_when_asked(clips: dict[str, Path],
                                                               tmp_path: Path) -> None:
    src = clips["cut50.mkv"]
    target = tmp_path / "out.mkv"
    result = run_cli("redact", src, "-o", target, "--detect", "fast")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and str(src) in errors[0] and "ends early" in errors[0]
    assert not target.exists()

    report = tmp_path / "report.json"
    result = run_cli("redact", src, "-o", target, "--detect", "fast", "--salvage", "--report", report)
    assert result.exit_code == 0, result.stderr
    decodable = len(frame_times(src))
    done = [line for line in result.stderr.splitlines() if line.startswith("done")]
    assert len(done) == 1 and f"over {decodable} frames" in done[0] and "salvaged" in done[0]
    assert "1 salvaged" in result.stderr.splitlines()[-1]
    data = json.loads(report.read_text())
    assert data["config"]["salvage"] is True
    salvaged = data["files"][0]["salvaged"]
    assert salvaged["frames"] == decodable and salvaged["decoded_s"] < salvaged["stated_s"]
    assert len(frame_times(target)) == decodable


def test_a_salvaged_copy_can_be_audited_against_its_cut_original(tmp_path: Path) -> None:
    """The astronaut drifting across a clip cut in half: --salvage writes it masked, and the audit
    (which must read the original as far as it decodes too) finds it clean."""
    from PIL import Image

    from conftest import EXAMPLE

    with Image.open(EXAMPLE) as img:
        face = np.asarray(img.convert("RGB").resize((208, 192)))
    whole = tmp_path / "whole.mkv"
    with av.open(str(whole), "w", format="matroska") as c:
        v = c.add_stream("libx264", rate=Fraction(25), options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 192, 192, "yuv420p"
        for i in range(16):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(face[:, i:i + 192]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    src = _cut(whole, 0.75, "cut.mkv")
    target = tmp_path / "out.mkv"
    assert 0 < len(frame_times(src)) < 16
    assert run_cli("redact", src, "-o", target, "--salvage").exit_code == 0
    refused = run_cli("audit", src, target)
    assert refused.exit_code == 1 and "ends early" in refused.stderr
    audit = run_cli("audit", src, target, "--salvage")
    if audit.exit_code == 2 and "extra" in audit.stderr:
        pytest.skip("the audit extra is not installed")
    assert audit.exit_code == 0, audit.stdout + audit.stderr
