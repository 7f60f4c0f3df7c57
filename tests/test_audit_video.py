"""The video audit on a short real H.264 clip made from a dev photo: clean output passes, a face put
back on some frames is found with its frame numbers, and GPS and time tags are reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from veil import Config, redact_file
from veil.audit import FindingKind, MetadataFlag, audit_file
from veil.audit.report import Check
from veil.evaluate import FrameTruth

av = pytest.importorskip("av")
pytest.importorskip("dlib")
pytestmark = pytest.mark.slow  # dlib and veil's detector on real photos: seconds per test

PHOTO = "images/4--Dancing/4_Dancing_Dancing_4_813.jpg"  # two faces dlib finds
WIDTH = 640
FRAMES = 6
LEAK_FRAMES = (2, 3)
TAGS = {"location": "+40.7128-074.0060/", "creation_time": "2023-01-10T09:14:00.000000Z",
        "make": "Apple", "model": "iPhone 13"}


def _write(path: Path, frames: list[np.ndarray], tags: dict[str, str] | None = None) -> None:
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as container:
        container.metadata.update(tags or {})
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip(wider_dir: Path, wider_gt: list[FrameTruth], tmp_path_factory: pytest.TempPathFactory):
    truth = next(g for g in wider_gt if g.image == PHOTO)
    with Image.open(wider_dir / truth.image) as img:
        scale = WIDTH / img.width
        still = np.asarray(img.convert("RGB").resize((WIDTH, int(img.height * scale) // 2 * 2)))
    # A slow pan of a few pixels a frame, so frames differ as in real footage.
    frames = [np.ascontiguousarray(np.roll(still, 2 * i, axis=1)) for i in range(FRAMES)]
    folder = tmp_path_factory.mktemp("audit_video")
    original = folder / "original.mp4"
    _write(original, frames, TAGS)
    redacted = folder / "redacted.mp4"
    redact_file(original, redacted, Config())
    faces = (truth.boxes * scale).astype(int)
    return original, redacted, faces, folder


def test_veil_video_output_passes(clip) -> None:  # type: ignore[no-untyped-def]
    original, redacted, _, _ = clip
    report = audit_file(original, redacted)
    assert report.kind == "video" and report.frames_total == FRAMES
    assert report.clean, report.summary()
    assert len(report.frames_checked) == FRAMES  # every frame holds a mask here
    assert report.faces and all(f.surviving_pixels == 0 for f in report.faces)


def test_a_face_put_back_on_some_frames_is_found_there(clip) -> None:  # type: ignore[no-untyped-def]
    original, redacted, faces, folder = clip
    source, masked = _read(original), _read(redacted)
    x, y, w, h = max(faces, key=lambda b: b[3])
    leaky = []
    for i, (before, after) in enumerate(zip(source, masked)):
        after = after.copy()
        if i in LEAK_FRAMES:
            region = (slice(max(0, y - h // 2), y + h + h // 2),
                      slice(max(0, x - w // 2 + 2 * i), x + w + w // 2 + 2 * i))
            after[region] = before[region]
        leaky.append(after)
    bad = folder / "leaky.mp4"
    _write(bad, leaky)
    report = audit_file(original, bad, all_frames=True)
    assert len(report.frames_checked) == FRAMES
    seen = {f.frame for f in report.findings if f.kind is FindingKind.FACE_OUTSIDE_MASKS}
    assert seen and seen <= set(LEAK_FRAMES), report.summary()
    pixel_frames = {f.frame for f in report.by_check(Check.PIXELS)}
    assert pixel_frames == set(LEAK_FRAMES), report.summary()
    assert not report.by_check(Check.METADATA)  # written without tags


def test_video_tags_are_reported(clip) -> None:  # type: ignore[no-untyped-def]
    original, _, _, _ = clip
    report = audit_file(original, original)
    assert any(m.flag is MetadataFlag.GPS and "location" in m.name for m in report.metadata)
    assert any(m.flag is MetadataFlag.TIME and m.name == "creation_time" for m in report.metadata)
    assert {m.name for m in report.metadata if m.flag is MetadataFlag.CAMERA} >= {"make", "model"}
    meta = report.by_check(Check.METADATA)
    assert any(f.field == "container:location" for f in meta)
    # The unredacted copy fails the pixel and re-identification checks on every frame too.
    assert {f.frame for f in report.by_check(Check.PIXELS)} == set(range(FRAMES))
