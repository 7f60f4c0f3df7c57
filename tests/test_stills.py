"""Real WIDER photos through the still pipeline: faces of 32 px and up are covered, outputs are clean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import veil
from veil import Config
from veil.evaluate import COVERED_FRACTION, FrameTruth, covered_fractions
from veil.media.image import read_image
from veil.paint import coverage_mask

from helpers import exiftool_tags

MIN_FACE_PX = 32


def _sample(rows: list[FrameTruth], every: int) -> list[FrameTruth]:
    with_large = [r for r in rows if (r.boxes[:, 3] >= MIN_FACE_PX).any()]
    return with_large[::every]


@pytest.mark.slow  # the real detector on ~90 photos
def test_faces_of_32px_and_up_are_covered(wider_dir: Path, wider_gt: list[FrameTruth]) -> None:
    config = Config()
    total = covered_count = 0
    missed: list[str] = []
    for row in _sample(wider_gt, every=2):
        pixels = read_image(wider_dir / row.image).pixels
        _, plan = veil.scan_image(pixels, config)
        covered = coverage_mask(plan, pixels.shape[0], pixels.shape[1])
        large = row.boxes[:, 3] >= MIN_FACE_PX
        for box, fraction in zip(row.boxes[large], covered_fractions(row.boxes_xyxy[large], covered)):
            total += 1
            if fraction >= COVERED_FRACTION:
                covered_count += 1
            else:
                missed.append(f"{Path(row.image).name} {box.tolist()}")
    recall = covered_count / total
    assert total > 150, total
    assert recall >= 0.95, f"covered recall {recall:.3f} over {total} faces; missed: {missed[:20]}"


@pytest.mark.parametrize("index", [0, 7, 19, 33])
def test_redacted_wider_photo_is_masked_and_clean(wider_dir: Path, wider_gt: list[FrameTruth],
                                                 tmp_path: Path, index: int) -> None:
    photo = wider_dir / _sample(wider_gt, every=1)[index].image
    out = tmp_path / f"out{photo.suffix}"
    before = photo.read_bytes()
    report = veil.redact_file(photo, out)
    assert report.ok and report.faces >= 1
    assert photo.read_bytes() == before, "the input was modified"
    scan = next(veil.scan_file(photo))
    original = read_image(photo).pixels.astype(int)
    written = read_image(out).pixels.astype(int)
    for face in scan.faces:
        x, y, w, h = face.mask
        diff = np.abs(original[y:y + h, x:x + w] - written[y:y + h, x:x + w]).max(axis=2)
        # Every mask region is replaced; only pixels already as dark as the fill can match it.
        assert (written[y:y + h, x:x + w].max(axis=2) < 16).mean() > 0.98
        dark = original[y:y + h, x:x + w].max(axis=2) < 24
        assert (diff[~dark] > 8).all() if (~dark).any() else True
    image = Image.open(out)
    assert len(image.getexif()) == 0 and not image.info.get("xmp") and not image.info.get("exif")
    tags = exiftool_tags(out)
    assert not [k for k in tags if k.split(":")[0] in ("IFD0", "ExifIFD", "GPS", "XMP-exif", "XMP-x")]
