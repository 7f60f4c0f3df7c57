"""Stills in every supported format: faces masked, pixels upright, no metadata left unless asked."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import veil
from veil import Config
from veil.media.image import read_image

from conftest import EXAMPLE
from helpers import exiftool_tags

FORMATS = {
    ".jpg": ("JPEG", {"quality": 92}),
    ".png": ("PNG", {}),
    ".webp": ("WEBP", {"quality": 90}),
    ".tiff": ("TIFF", {}),
    ".heic": ("HEIF", {"quality": 90}),
}
# exiftool groups that hold metadata copied from a source; none may appear in a default output.
METADATA_GROUPS = ("IFD0", "IFD1", "ExifIFD", "GPS", "InteropIFD", "MakerNotes", "XMP", "IPTC",
                   "ICC", "Photoshop", "APP", "FlashPix", "MPF")
IDENTIFYING_WORDS = ("GPS", "Serial", "Make", "Model", "DateTimeOriginal", "CreateDate", "Creator",
                     "Keywords", "Comment", "Artist", "Copyright", "Thumbnail", "Location")


def _exif_with_gps() -> Image.Exif:
    ex = Image.Exif()
    ex[0x010F] = "ExampleCam"
    ex[0x0110] = "Model X1"
    ex[0x0132] = "2026:01:02 03:04:05"
    ex[0x8825] = {1: "N", 2: (40.0, 42.0, 46.0), 3: "W", 4: (74.0, 0.0, 21.0)}
    ex.get_ifd(0x8769)[0xA431] = "SN-0012345"
    return ex


def _p3_profile() -> bytes:
    profile = ImageCms.createProfile("LAB")  # any non-sRGB profile whose presence we can detect
    return ImageCms.ImageCmsProfile(profile).tobytes()


def _write_source(path: Path, fmt: str, options: dict[str, object]) -> np.ndarray:
    image = Image.open(EXAMPLE).convert("RGB")
    image.save(path, format=fmt, exif=_exif_with_gps().tobytes(), **options)
    return np.asarray(image)


def _enrich_with_exiftool(path: Path, tmp: Path) -> None:
    """Add XMP, IPTC, a comment and an EXIF thumbnail (the thumbnail shows the unmasked face)."""
    exe = shutil.which("exiftool")
    if exe is None:
        return
    thumb = tmp / "thumb.jpg"
    Image.open(EXAMPLE).resize((160, 160)).save(thumb)
    args = [exe, "-q", "-q", "-overwrite_original", "-XMP:GPSLatitude=40.7", "-XMP:Creator=Someone",
            "-EXIF:SerialNumber=ABC123"]
    if path.suffix == ".jpg":
        args += ["-IPTC:Keywords=protest", "-Comment=shot by me", f"-ThumbnailImage<={thumb}"]
    subprocess.run([*args, str(path)], check=True)


# A TIFF's IFD0 is its image header: these tags describe the pixels, not the camera or place.
TIFF_STRUCTURE = {"ImageWidth", "ImageHeight", "BitsPerSample", "Compression", "PhotometricInterpretation",
                  "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
                  "PlanarConfiguration", "XResolution", "YResolution", "ResolutionUnit", "Predictor",
                  "ExtraSamples", "SampleFormat"}


def _metadata_left(tags: dict[str, object]) -> list[str]:
    bad = []
    for key in tags:
        group, _, name = key.partition(":")
        if group == "IFD0" and name in TIFF_STRUCTURE and tags.get("File:FileType") == "TIFF":
            continue
        if group.startswith(METADATA_GROUPS) or any(w.lower() in name.lower() for w in IDENTIFYING_WORDS):
            bad.append(key)
    return bad


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_format_roundtrip_masks_face_and_strips_metadata(tmp_path: Path, suffix: str) -> None:
    fmt, options = FORMATS[suffix]
    src = tmp_path / f"photo{suffix}"
    _write_source(src, fmt, options)
    _enrich_with_exiftool(src, tmp_path)
    before = src.read_bytes()
    out = tmp_path / f"photo.redacted{suffix}"
    report = veil.redact_file(src, out)
    assert report.ok and report.faces == 1 and out.is_file()
    assert src.read_bytes() == before
    written = Image.open(out)
    assert written.format == fmt
    assert written.size == (512, 512)
    # Pillow's view: no EXIF (TIFF keeps only its structural tags), XMP, ICC or comment.
    exif = written.getexif()
    assert not {0x010F, 0x0110, 0x0132, 0x8825, 0x8769, 0x02BC} & set(exif), dict(exif)
    assert not [k for k in ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment")
                if written.info.get(k)]
    # exiftool's independent view.
    tags = exiftool_tags(out)
    assert _metadata_left(tags) == [], _metadata_left(tags)
    # The face is masked: every pixel of the planned region differs from the source.
    scan = next(veil.scan_file(src))
    x, y, w, h = scan.faces[0].mask
    source_px = read_image(src).pixels[y:y + h, x:x + w].astype(int)
    out_px = read_image(out).pixels[y:y + h, x:x + w].astype(int)
    assert (out_px.max(axis=2) < 16).mean() > 0.99, "the region is not the solid fill"
    # Only pixels that were already near the fill colour (dark hair, shadow) can match.
    assert (np.abs(source_px - out_px).max(axis=2) > 8).mean() > 0.9


def test_keep_metadata_keeps_camera_but_not_gps_or_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    _write_source(src, "JPEG", {})
    _enrich_with_exiftool(src, tmp_path)
    out = tmp_path / "kept.jpg"
    veil.redact_file(src, out, Config(keep_metadata=True))
    exif = Image.open(out).getexif()
    assert exif.get(0x010F) == "ExampleCam" and exif.get(0x0110) == "Model X1"
    assert not exif.get_ifd(0x8825), "GPS kept without keep_gps"
    tags = exiftool_tags(out)
    assert not [k for k in tags if k.startswith(("GPS", "IFD1", "XMP", "IPTC"))], tags
    assert "File:Comment" not in tags
    out_gps = tmp_path / "kept_gps.jpg"
    veil.redact_file(src, out_gps, Config(keep_metadata=True, keep_gps=True))
    gps = Image.open(out_gps).getexif().get_ifd(0x8825)
    assert gps.get(1) == "N" and gps.get(3) == "W"
    assert "IFD1:ThumbnailImage" not in exiftool_tags(out_gps)


def test_exif_orientation_is_applied_before_detection(tmp_path: Path) -> None:
    upright = Image.open(EXAMPLE).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways phone sensor stores
    ex = Image.Exif()
    ex[0x0112] = 6  # display rotated 90 degrees clockwise
    src = tmp_path / "sideways.jpg"
    stored.save(src, quality=95, exif=ex.tobytes())
    still = read_image(src)
    assert still.pixels.shape == (512, 512, 3)
    diff = np.abs(still.pixels.astype(int) - np.asarray(upright, int)).mean()
    assert diff < 6, "pixels were not turned upright"
    out = tmp_path / "out.jpg"
    report = veil.redact_file(src, out)
    assert report.faces == 1
    written = Image.open(out)
    assert 0x0112 not in written.getexif()
    face = next(veil.scan_file(EXAMPLE)).faces[0]
    x, y, w, h = face.mask
    centre = np.asarray(written)[y + h // 2, x + w // 2]
    assert (centre < 10).all(), "the face was not masked at its upright position"


def test_colour_profile_converted_and_dropped_by_default(tmp_path: Path) -> None:
    src = tmp_path / "profiled.jpg"
    Image.open(EXAMPLE).convert("RGB").save(src, icc_profile=ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes())
    out = tmp_path / "out.jpg"
    veil.redact_file(src, out)
    assert "icc_profile" not in Image.open(out).info
    kept = tmp_path / "kept.jpg"
    veil.redact_file(src, kept, Config(keep_icc=True))
    assert Image.open(kept).info.get("icc_profile")


def test_png_alpha_and_grayscale_survive(tmp_path: Path) -> None:
    base = Image.open(EXAMPLE).convert("RGB")
    rgba = base.copy()
    rgba.putalpha(200)
    src = tmp_path / "alpha.png"
    rgba.save(src)
    out = tmp_path / "alpha.out.png"
    veil.redact_file(src, out)
    written = Image.open(out)
    assert written.mode == "RGBA" and np.asarray(written)[..., 3].min() == 200
    gray = tmp_path / "gray.png"
    base.convert("L").save(gray)
    out_gray = tmp_path / "gray.out.png"
    report = veil.redact_file(gray, out_gray)
    assert Image.open(out_gray).mode == "L" and report.faces == 1


def test_redact_image_api_never_mutates_input() -> None:
    pixels = np.asarray(Image.open(EXAMPLE).convert("RGB")).copy()
    before = pixels.copy()
    masked, detections = veil.redact_image(pixels, Config())
    assert np.array_equal(pixels, before)
    assert len(detections) == 1 and masked.shape == pixels.shape and not np.array_equal(masked, pixels)


def test_static_detector_plugs_in() -> None:
    pixels = np.full((100, 100, 3), 200, np.uint8)
    masked, detections = veil.redact_image(pixels, Config(margin_x=0, margin_top=0, margin_bottom=0),
                                           detector=veil.StaticDetector([(10, 10, 30, 30)]))
    assert (masked[10:30, 10:30] == 0).all() and (masked[30:, 30:] == 200).all()


def test_bytes_roundtrip_via_buffer_has_no_exif() -> None:
    from veil.media.image import encode_image

    still = read_image(EXAMPLE)
    data = encode_image(still.pixels, still, Config())
    assert len(Image.open(io.BytesIO(data)).getexif()) == 0
