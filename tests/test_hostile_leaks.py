"""Hostile stills and special files: float, 32-bit and 12-bit greyscale, 1-bit dither, FIFOs.

Each case once leaked a face or hung veil (issue 20). Stills are made at test time from dev photos
in tmp_path; the oracle is Pillow's own 8-bit greyscale conversion of the photo and the photos'
annotated face boxes, never veil's reading of the file.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLE
from helpers import run_veil
from veil import InputError, redact_file
from veil.batch import collect_jobs
from veil.detect.dequantise import detection_view, grey_levels, is_quantised
from veil.evaluate import FrameTruth
from veil.media.image import read_image, to_8bit
from veil.media.kinds import media_kind

# Two adults' faces of 340 and 290 px and five smaller ones: large enough that a binary copy
# of the photo (what veil wrote for a float TIFF) still shows who they are.
COUPLE = "images/19--Couple/19_Couple_Couple_19_910.jpg"


def _truth(wider_gt: list[FrameTruth], wider_dir: Path, name: str) -> FrameTruth:
    return next(g for g in wider_gt if wider_dir / g.image == wider_dir / name)


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L")).copy()


def _within(function: Callable[[], object], seconds: float = 30) -> object:
    """Run `function` in a thread; fail (not hang) if it does not return in time."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


# -- float, 32-bit and 16-bit greyscale -------------------------------------------------------

@pytest.mark.parametrize(("mode_values", "full_scale"), [
    (np.array([[0.0, 0.25], [0.5, 1.0]], np.float32), 1.0),  # float in 0..1
    (np.array([[0.0, 100.0], [200.0, 255.0]], np.float32), 255.0),  # float already 8-bit
    (np.array([[0, 1000], [2000, 4095]], np.uint16), 4095.0),  # 12-bit data in 16 bits
    (np.array([[0, 300], [600, 1023]], np.uint16), 1023.0),  # 10-bit
    (np.array([[0, 20000], [40000, 65535]], np.int32), 65535.0),  # 16-bit in 32-bit ints
    (np.array([[0, 64], [128, 255]], np.int32), 255.0),  # 8-bit in 32-bit ints
])
def test_high_depth_greyscale_is_scaled_by_its_own_full_scale(mode_values: np.ndarray,
                                                             full_scale: float) -> None:
    mode = "F" if mode_values.dtype.kind == "f" else ("I;16" if mode_values.dtype == np.uint16 else "I")
    expected = np.rint(mode_values.astype(np.float64) * 255 / full_scale).astype(np.uint8)
    assert np.array_equal(to_8bit(mode_values, mode), expected)


@pytest.mark.parametrize(("values", "why"), [
    (np.full((8, 8), np.nan, np.float32), "NaN"),
    (np.array([[0.2, np.inf], [0.4, 0.9]], np.float32), "infinite"),
    (np.array([[-1.0, 0.0], [0.5, 1.0]], np.float32), "negative"),
    (np.array([[0, 70000], [5, 9]], np.int32), "beyond any 16-bit range"),
    (np.full((8, 8), 0.5, np.float32), "only 1 of 256 grey levels"),  # constant
    (np.array([[30000, 30100], [30200, 30300]], np.int32), "grey levels"),  # a sliver of 16 bits
])
def test_unmappable_greyscale_is_refused_naming_why(values: np.ndarray, why: str) -> None:
    with pytest.raises(InputError, match=why):
        to_8bit(values, "F" if values.dtype.kind == "f" else "I")


def _float_tiff(photo: Path, path: Path) -> None:
    with Image.open(photo) as img:
        Image.fromarray(np.asarray(img.convert("L"), np.float32) / 255).save(path)


def _twelve_bit_png(photo: Path, path: Path) -> None:
    Image.fromarray(((_grey(photo).astype(np.int64) * 4095 + 127) // 255).astype(np.uint16)).save(path)


def _int32_tiff(photo: Path, path: Path) -> None:
    Image.fromarray(_grey(photo).astype(np.int32)).save(path)


@pytest.mark.parametrize(("make", "suffix", "mode"), [
    (_float_tiff, ".tiff", "F"), (_twelve_bit_png, ".png", "I;16"), (_int32_tiff, ".tiff", "I"),
])
def test_high_depth_greyscale_reads_as_the_photo(wider_dir: Path, tmp_path: Path,
                                                 make: Callable[[Path, Path], None], suffix: str,
                                                 mode: str) -> None:
    source = tmp_path / f"deep{suffix}"
    make(wider_dir / COUPLE, source)
    with Image.open(source) as img:
        assert img.mode == mode  # the case under test, not one Pillow converted on saving
    pixels = read_image(source).pixels
    grey = _grey(wider_dir / COUPLE).astype(np.int16)
    assert np.abs(pixels[:, :, 0].astype(np.int16) - grey).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize(("make", "suffix"), [(_float_tiff, ".tiff"), (_twelve_bit_png, ".png")])
def test_high_depth_greyscale_output_is_masked_in_its_own_range(
        wider_dir: Path, wider_gt: list[FrameTruth], tmp_path: Path,
        make: Callable[[Path, Path], None], suffix: str) -> None:
    source, out = tmp_path / f"deep{suffix}", tmp_path / f"out{suffix}"
    make(wider_dir / COUPLE, source)
    report = redact_file(source, out)
    assert report.ok and report.faces >= 2
    written = _grey(out).astype(np.int16)
    grey = _grey(wider_dir / COUPLE).astype(np.int16)
    truth = _truth(wider_gt, wider_dir, COUPLE)
    covered = np.zeros(grey.shape, bool)
    for x, y, w, h in truth.boxes.astype(int):
        if h >= 64:  # every large face is black inside (3 px in from the annotated edge)
            assert written[y + 3:y + h - 3, x + 3:x + w - 3].max() <= 2, f"face at {x},{y} shows"
        covered[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = True
    # ... and the rest is the photo at its real brightness, not a 0/1 copy of it.
    assert np.abs(written - grey)[~covered].mean() < 2


@pytest.mark.parametrize("values", [np.full((64, 64), np.nan, np.float32),
                                    np.full((64, 64), 0.5, np.float32)])
def test_unmappable_float_tiff_is_refused_and_nothing_written(tmp_path: Path,
                                                             values: np.ndarray) -> None:
    source = tmp_path / "bad.tiff"
    Image.fromarray(values).save(source)
    result = run_veil("redact", source, timeout=120)
    assert result.returncode == 1
    assert "bad.tiff" in result.stderr and "32-bit float" in result.stderr
    assert not (tmp_path / "bad.redacted.tiff").exists()


@pytest.mark.slow
def test_audit_reports_a_binary_copy_of_a_float_tiff(wider_dir: Path, tmp_path: Path) -> None:
    """What veil wrote before: every value divided by 255 and rounded, so a 0/1 picture."""
    pytest.importorskip("dlib")
    from veil.audit import audit_file

    source = tmp_path / "float.tiff"
    _float_tiff(wider_dir / COUPLE, source)
    with Image.open(source) as img:
        squeezed = np.rint(np.asarray(img)).astype(np.uint8)  # 0 and 1 only
    assert set(np.unique(squeezed)) == {0, 1}
    old_output = tmp_path / "float.redacted.tiff"
    Image.fromarray(squeezed, "L").save(old_output)
    report = audit_file(source, old_output)
    assert not report.clean, report.summary()
    masked = tmp_path / "masked.tiff"
    redact_file(source, masked)
    assert audit_file(source, masked).clean  # and veil's output now passes


# -- FIFOs and other special files -------------------------------------------------------------

@pytest.fixture()
def fifo_batch(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A folder with a real photo and a FIFO named like one; nothing ever writes to the FIFO."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = folder / "a.jpg"
    shutil.copy(EXAMPLE, good)
    fifo = folder / "b.jpg"
    os.mkfifo(fifo)
    return folder, good, fifo


def test_media_kind_refuses_a_fifo_without_blocking(fifo_batch: tuple[Path, Path, Path]) -> None:
    fifo = fifo_batch[2]
    with pytest.raises(InputError, match="FIFO"):
        _within(lambda: media_kind(fifo))
    with pytest.raises(InputError, match="FIFO"):
        _within(lambda: read_image(fifo))


def test_media_kind_refuses_a_device() -> None:
    with pytest.raises(InputError, match="character device"):
        _within(lambda: media_kind(Path("/dev/null")))


def test_a_fifo_in_a_folder_is_listed_so_that_it_is_refused(fifo_batch: tuple[Path, Path, Path]) -> None:
    folder, good, fifo = fifo_batch
    assert [job.source for job in collect_jobs([folder], None)] == [good, fifo]


@pytest.mark.slow
@pytest.mark.parametrize("as_folder", [False, True])
def test_redact_refuses_a_fifo_and_finishes_the_batch(fifo_batch: tuple[Path, Path, Path],
                                                     tmp_path: Path, as_folder: bool) -> None:
    folder, good, fifo = fifo_batch
    out = tmp_path / "out"
    inputs = [folder] if as_folder else [good, fifo]
    result = run_veil("redact", *inputs, "-o", out, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"{fifo}: is a FIFO (named pipe)" in result.stderr
    assert (out / "a.jpg").is_file() and not (out / "b.jpg").exists()


@pytest.mark.slow
def test_scan_refuses_a_fifo_and_scans_the_rest(fifo_batch: tuple[Path, Path, Path]) -> None:
    folder, good, fifo = fifo_batch
    result = run_veil("scan", folder, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"{fifo}: is a FIFO (named pipe)" in result.stderr
    assert f"{good}: 1 face" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("fifo_is", ["original", "redacted"])
def test_audit_refuses_a_fifo(fifo_batch: tuple[Path, Path, Path], fifo_is: str) -> None:
    pytest.importorskip("dlib")
    _, good, fifo = fifo_batch
    pair = (fifo, good) if fifo_is == "original" else (good, fifo)
    result = run_veil("audit", *pair, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"{fifo}: is a FIFO (named pipe)" in result.stderr


# -- 1-bit and other quantised pictures -------------------------------------------------------

def _one_bit(photo: Path, path: Path, size: int = 640) -> np.ndarray:
    """A size x size dithered 1-bit copy of the photo, and the scale factors of its boxes."""
    with Image.open(photo) as img:
        scale = np.array([size / img.width, size / img.height] * 2)
        img.convert("RGB").resize((size, size)).convert("1").save(path)
    return scale


def _large_faces(wider_gt: list[FrameTruth], wider_dir: Path, scale: np.ndarray) -> np.ndarray:
    boxes = _truth(wider_gt, wider_dir, COUPLE).boxes * scale
    return np.rint(boxes[boxes[:, 3] >= 150]).astype(int)


def test_detection_view_smooths_quantised_frames_only(wider_dir: Path, tmp_path: Path) -> None:
    with Image.open(wider_dir / COUPLE) as img:
        photo = np.asarray(img.convert("RGB")).copy()
        web_palette = np.asarray(img.convert("RGB").convert("P").convert("RGB")).copy()
    _one_bit(wider_dir / COUPLE, tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as img:
        dots = np.asarray(img.convert("RGB")).copy()
    assert detection_view(photo) is photo and not is_quantised(photo)
    for frame, levels in ((dots, 2), (web_palette, 6)):
        before = frame.copy()
        assert grey_levels(frame) == levels
        view = detection_view(frame)
        assert np.array_equal(frame, before), "the caller's pixels were changed"
        # Smoothed: many more levels, and dots averaged (neighbours now close to each other).
        assert grey_levels(view) > 64
        assert np.abs(np.diff(view.astype(np.int16), axis=1)).mean() < \
            np.abs(np.diff(frame.astype(np.int16), axis=1)).mean() / 3


@pytest.mark.slow
def test_large_faces_in_a_one_bit_picture_are_masked(wider_dir: Path, wider_gt: list[FrameTruth],
                                                     tmp_path: Path) -> None:
    source, out = tmp_path / "dots.png", tmp_path / "dots.redacted.png"
    faces = _large_faces(wider_gt, wider_dir, _one_bit(wider_dir / COUPLE, source))
    assert len(faces) == 2  # the couple, about 190 and 195 px wide here
    report = redact_file(source, out)
    assert report.ok
    with Image.open(out) as img:
        written = np.asarray(img.convert("L"))
    with Image.open(source) as img:
        dots = np.asarray(img.convert("L"))
    for x, y, w, h in faces:
        inside = (slice(y + 4, y + h - 4), slice(x + 4, x + w - 4))
        assert (dots[inside] > 0).mean() > 0.2  # the dots draw a face: not black to begin with
        assert (written[inside] == 0).mean() > 0.99, f"face at {x},{y} is not masked"


@pytest.mark.slow
def test_audit_reports_a_face_left_in_a_one_bit_picture(wider_dir: Path, wider_gt: list[FrameTruth],
                                                        tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    from veil.audit import FindingKind, audit_file

    source, out = tmp_path / "dots.png", tmp_path / "dots.redacted.png"
    faces = _large_faces(wider_gt, wider_dir, _one_bit(wider_dir / COUPLE, source))
    redact_file(source, out)
    with Image.open(source) as img:
        dots = np.asarray(img.convert("L")).copy()
    with Image.open(out) as img:
        written = np.asarray(img.convert("L")).copy()
    x, y, w, h = faces[0]  # put one face back, as when the detector missed it
    written[y:y + h, x:x + w] = dots[y:y + h, x:x + w]
    leaky = tmp_path / "leaky.png"
    Image.fromarray(written).convert("1").save(leaky)
    report = audit_file(source, leaky)
    assert any(f.kind is FindingKind.ORIGINAL_PIXELS for f in report.findings), report.summary()
