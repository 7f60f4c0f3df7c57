"""The audit on real photos: it passes veil's own output and fails weak redactions with specific findings."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli

from conftest import EXAMPLE
from veil import Config, MaskStyle, ModelError, redact_file
from veil.audit import AuditReport, FindingKind, MetadataFlag, audit_file
from veil.audit.report import Check, RegionStyle
from veil.evaluate import FrameTruth

pytest.importorskip("dlib")
pytestmark = pytest.mark.slow  # dlib and veil's detector on real photos: seconds per test

# Dev photos with faces large enough for dlib (chosen from ../shared/data/wider_dev; read in place).
WEAK_BLUR_PHOTOS = [
    "images/1--Handshaking/1_Handshaking_Handshaking_1_209.jpg",
    "images/12--Group/12_Group_Team_Organized_Group_12_Group_Team_Organized_Group_12_889.jpg",
    "images/28--Sports_Fan/28_Sports_Fan_Sports_Fan_28_643.jpg",
]
TWO_FACES = "images/4--Dancing/4_Dancing_Dancing_4_813.jpg"  # two ~110 px faces dlib finds


def _gt(wider_gt: list[FrameTruth], name: str) -> FrameTruth:
    return next(g for g in wider_gt if g.image == name)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).copy()


def _overlaps(a: tuple[int, int, int, int], b: np.ndarray, min_share: float = 0.3) -> bool:
    """Whether xywh box a covers at least min_share of xywh box b."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih >= min_share * bw * bh


def _weak_blur_audit(wider_dir: Path, truth: FrameTruth, tmp_path: Path) -> AuditReport:
    """The audit of the photo with every annotated face under a 7x7 Gaussian blur (a weak redaction)."""
    import cv2

    pixels = _pixels(wider_dir / truth.image)
    for x, y, w, h in truth.boxes.astype(int):
        pixels[y: y + h, x: x + w] = cv2.GaussianBlur(pixels[y: y + h, x: x + w], (7, 7), 0)
    weak = tmp_path / "weak.jpg"
    Image.fromarray(pixels).save(weak, quality=95)
    return audit_file(wider_dir / truth.image, weak)


@pytest.mark.parametrize("name", WEAK_BLUR_PHOTOS)
def test_a_weak_blur_is_reported_as_reidentifiable(wider_dir: Path, wider_gt: list[FrameTruth],
                                                   tmp_path: Path, name: str) -> None:
    truth = _gt(wider_gt, name)
    report = _weak_blur_audit(wider_dir, truth, tmp_path)
    matches = [f for f in report.findings if f.kind is FindingKind.MATCHABLE_FACE]
    assert matches, report.summary()
    for finding in matches:
        assert finding.value is not None and finding.value < 0.6
        assert any(_overlaps(finding.box, gt) for gt in truth.boxes), finding
    assert not report.clean
    assert report.to_json()["counts"]["reidentification"] == len(matches)


def test_a_weak_veil_only_face_the_zoomed_rescan_does_not_see_is_listed_for_review(
        wider_dir: Path, wider_gt: list[FrameTruth], tmp_path: Path) -> None:
    """On this photo balanced keeps a 41x82 px box on the back of a head through support across
    passes (score 0.16; the zoomed re-scan scores it 0.06). A weak blur of the annotated faces
    leaves it as it was, so it "matches" the original; that is for review, not a failure."""
    truth = _gt(wider_gt, WEAK_BLUR_PHOTOS[2])
    report = _weak_blur_audit(wider_dir, truth, tmp_path)
    off_faces = [f for f in report.review if f.kind is FindingKind.UNCONFIRMED_FACE
                 and "can still be matched" in f.message
                 and not any(_overlaps(f.box, gt) for gt in truth.boxes)]
    assert off_faces, [f.message for f in report.review]
    assert "found only by dlib" not in off_faces[0].message  # veil's own weak box
    assert not [f for f in report.findings if f.kind is FindingKind.MATCHABLE_FACE
                and not any(_overlaps(f.box, gt) for gt in truth.boxes)]


def test_a_skipped_face_is_found_by_the_second_detector(wider_dir: Path, wider_gt: list[FrameTruth],
                                                       tmp_path: Path) -> None:
    truth = _gt(wider_gt, TWO_FACES)
    photo = wider_dir / truth.image
    good = tmp_path / "good.jpg"
    redact_file(photo, good, Config())
    clean = audit_file(photo, good)
    assert not clean.by_check(Check.SECOND_DETECTOR), clean.summary()
    # Put one face back: the redaction "skipped" it.
    original, output = _pixels(photo), _pixels(good)
    skipped = max(truth.boxes, key=lambda b: b[3]).astype(int)
    x, y, w, h = skipped
    pad_x, pad_y = w // 2, h // 2
    region = (slice(max(0, y - pad_y), y + h + pad_y), slice(max(0, x - pad_x), x + w + pad_x))
    output[region] = original[region]
    bad = tmp_path / "skipped.jpg"
    Image.fromarray(output).save(bad, quality=95)
    report = audit_file(photo, bad)
    found = [f for f in report.findings if f.kind is FindingKind.FACE_OUTSIDE_MASKS]
    assert len(found) == 1, report.summary()
    assert _overlaps(found[0].box, skipped, 0.5), (found[0].box, skipped)
    assert found[0].check is Check.SECOND_DETECTOR and found[0].frame == 0


def test_a_face_seen_through_a_weak_mask_is_reported(wider_dir: Path, tmp_path: Path) -> None:
    """Noise added on top of a face changes every pixel (so the region counts as masked) but
    leaves the face visible: the second detector must still see it there."""
    from veil.media.image import read_image
    from veil.pipeline import scan_image

    source = wider_dir / TWO_FACES
    pixels = read_image(source).pixels
    _, plan = scan_image(pixels, Config())
    noisy = pixels.astype(np.int16)
    rng = np.random.default_rng(0)
    for x0, y0, x1, y1 in plan.boxes:
        noisy[y0:y1, x0:x1] += rng.integers(-40, 41, (y1 - y0, x1 - x0, 1), dtype=np.int16)
    weak = tmp_path / "noisy.jpg"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(weak, quality=95)
    report = audit_file(source, weak)
    through = [f for f in report.findings if f.kind is FindingKind.FACE_THROUGH_MASK]
    assert len(through) == 2, report.summary()
    assert not any(f.kind is FindingKind.FACE_OUTSIDE_MASKS for f in report.findings)
    assert all(f.style is RegionStyle.FILTERED for f in report.faces if f.region)
    assert len(report.by_check(Check.REIDENTIFICATION)) == 2


def _with_exif(source: Path, target: Path) -> None:
    with Image.open(source) as img:
        exif = Image.Exif()
        exif[0x010F] = "Canon"  # Make
        exif[0x0110] = "Canon EOS 5D"  # Model
        exif[0x0131] = "veil-test"  # Software: listed, not flagged
        exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # DateTimeOriginal
        exif.get_ifd(0x8769)[0xA431] = "123456789"  # BodySerialNumber
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "N", (Fraction(52), Fraction(31), Fraction(0))
        gps[3], gps[4] = "E", (Fraction(13), Fraction(24), Fraction(0))
        img.save(target, exif=exif.tobytes(), quality=95)


def test_gps_and_camera_metadata_are_reported(tmp_path: Path) -> None:
    redacted = tmp_path / "redacted.jpg"
    redact_file(EXAMPLE, redacted, Config())
    tagged = tmp_path / "tagged.jpg"
    _with_exif(redacted, tagged)
    report = audit_file(EXAMPLE, tagged)
    flags = {m.flag for m in report.metadata}
    assert {MetadataFlag.GPS, MetadataFlag.TIME, MetadataFlag.CAMERA} <= flags
    names = {m.name: m for m in report.metadata}
    assert names["Software"].flag is None  # listed, not flagged
    assert names["GPSLatitude"].flag is MetadataFlag.GPS
    assert names["BodySerialNumber"].flag is MetadataFlag.CAMERA
    meta = report.by_check(Check.METADATA)
    assert {f.field for f in meta} >= {"GPS:GPSLatitude", "GPS:GPSLongitude", "EXIF:Make",
                                      "EXIF:Model", "EXIF:DateTimeOriginal"}
    assert not any("Software" in (f.field or "") for f in meta)
    # veil's own output of the same picture carries no metadata at all.
    assert audit_file(EXAMPLE, redacted).metadata == ()


def test_veil_default_output_passes_and_blur_is_reversible(wider_dir: Path, tmp_path: Path) -> None:
    source = wider_dir / WEAK_BLUR_PHOTOS[0]
    solid = tmp_path / "solid.jpg"
    redact_file(source, solid, Config())
    report = audit_file(source, solid)
    assert report.clean, report.summary()
    assert report.faces and all(f.style is RegionStyle.SOLID for f in report.faces if f.region)
    assert any(f.matchable for f in report.faces)  # the re-identification check really ran
    blurred = tmp_path / "blur.jpg"
    redact_file(source, blurred, Config(mask=MaskStyle.BLUR))
    reversible = audit_file(source, blurred).by_check(Check.PIXELS)
    masked = [f for f in report.faces if f.region]
    assert len(reversible) == len(masked)
    assert all(f.kind is FindingKind.REVERSIBLE_MASK and "blur" in f.message for f in reversible)


def test_sizes_must_match(tmp_path: Path) -> None:
    small = tmp_path / "small.jpg"
    with Image.open(EXAMPLE) as img:
        img.resize((img.width // 2, img.height // 2)).save(small)
    from veil import InputError

    with pytest.raises(InputError, match="pixel by pixel"):
        audit_file(EXAMPLE, small)


def test_a_still_cannot_be_audited_against_a_video(tmp_path: Path) -> None:
    from veil import InputError

    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    with pytest.raises(InputError, match="is a video but the original is an image"):
        audit_file(EXAMPLE, clip)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import sys

    from veil import _models
    from veil.audit import models

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    with pytest.raises(ModelError, match=r"pip install 'veil\[audit\]'"):
        models.require_models()
    monkeypatch.undo()

    real_version = importlib.metadata.version

    def without_models(name: str) -> str:
        if name == "face-recognition-models":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    _models.model_path.cache_clear()
    monkeypatch.setattr(_models.importlib.metadata, "version", without_models)
    try:
        with pytest.raises(ModelError, match=r"pip install 'veil\[audit\]'"):
            audit_file(EXAMPLE, EXAMPLE)
    finally:
        monkeypatch.undo()
        _models.model_path.cache_clear()


def test_cli_audit_exit_codes_and_json(wider_dir: Path, tmp_path: Path) -> None:
    source = wider_dir / TWO_FACES
    redacted = tmp_path / "r.jpg"
    done = run_cli("redact", source, "-o", redacted, "--audit")
    assert done.exit_code == 0, done.stderr
    assert "audit" in done.stderr and "clean" in done.stderr
    clean = run_cli("audit", source, redacted)
    assert clean.exit_code == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout
    report = tmp_path / "audit.json"
    leaky = run_cli("audit", source, source, "--json", "--report", report)
    assert leaky.exit_code == 3, leaky.stderr
    data = json.loads(leaky.stdout)
    assert data == json.loads(report.read_text())
    assert not data["clean"]
    assert data["counts"]["pixels"] >= 1 and data["counts"]["reidentification"] >= 1
    kinds = {f["kind"] for f in data["findings"]}
    assert {"original_pixels", "matchable_face"} <= kinds


def test_redact_audit_reports_kept_gps(tmp_path: Path) -> None:
    source = tmp_path / "gps.jpg"
    _with_exif(EXAMPLE, source)
    report = tmp_path / "report.json"
    done = run_cli("redact", source, "-o", tmp_path / "out.jpg", "--keep-metadata", "--keep-gps",
                    "--audit", "--report", report)
    assert done.exit_code == 3, done.stderr
    audit = json.loads(report.read_text())["files"][0]["audit"]
    assert {f["field"] for f in audit["findings"] if f["check"] == "metadata"} >= {
        "GPS:GPSLatitude", "EXIF:Make"}
    assert audit["counts"]["pixels"] == 0 and audit["counts"]["reidentification"] == 0


def test_dlib_models_are_hash_checked() -> None:
    from dataclasses import replace

    from veil._models import DLIB_FACE_RECOGNITION, DLIB_SHAPE_PREDICTOR_5, model_path

    assert model_path(DLIB_SHAPE_PREDICTOR_5).name == "shape_predictor_5_face_landmarks.dat"
    assert DLIB_FACE_RECOGNITION.extra == "audit"
    with pytest.raises(ModelError, match="fail their hash check"):
        model_path(replace(DLIB_SHAPE_PREDICTOR_5, sha256="0" * 64))


# dlib HOG's hits on the demo photo's original: the astronaut's face, and her mission patch (a
# false hit with score ~0.1-0.16 that veil's own detector does not see as a face).
DEMO_FACE = (175, 76, 266, 167)
DEMO_PATCH = (126, 335, 216, 426)


def _stubbed_audit(monkeypatch: pytest.MonkeyPatch, box: tuple[int, int, int, int],
                   score: float) -> tuple[list, list]:
    """Audit the unmasked demo photo against itself with no veil faces, where the second
    detector (stubbed) reports one hit with `score` at `box` on the output only."""
    from veil import Detections
    from veil.audit import frame as frame_audit

    original = _pixels(EXAMPLE)
    output = original.copy()

    def stub(pixels: np.ndarray, which: object = None) -> tuple[np.ndarray, np.ndarray]:
        if pixels is output:
            return np.array([box], np.int64), np.array([score], np.float32)
        return np.zeros((0, 4), np.int64), np.zeros(0, np.float32)

    monkeypatch.setattr(frame_audit, "detect_faces", stub)
    result = frame_audit.audit_frame(original, output, detections=Detections.empty())
    return list(result.findings), list(result.review)


def test_a_weak_hog_hit_on_a_non_face_is_listed_for_review(monkeypatch: pytest.MonkeyPatch) -> None:
    findings, review = _stubbed_audit(monkeypatch, DEMO_PATCH, 0.1)
    assert findings == []
    assert [f.kind for f in review] == [FindingKind.UNCONFIRMED_FACE]
    assert review[0].box == (126, 335, 90, 91) and review[0].check is Check.SECOND_DETECTOR
    assert "probably not a face" in review[0].message


def test_a_weak_hog_hit_on_a_real_face_is_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    findings, review = _stubbed_audit(monkeypatch, DEMO_FACE, 0.05)
    assert review == []
    assert [f.kind for f in findings] == [FindingKind.FACE_OUTSIDE_MASKS]
    assert "zoomed re-scan" in findings[0].message


def test_a_strong_hog_hit_needs_no_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    from veil.audit.confirm import STRONG_HOG_SCORE

    findings, review = _stubbed_audit(monkeypatch, DEMO_PATCH, STRONG_HOG_SCORE + 0.1)
    assert review == []
    assert [f.kind for f in findings] == [FindingKind.FACE_OUTSIDE_MASKS]


def test_the_demo_photo_audits_clean_through_the_cli(tmp_path: Path) -> None:
    """The README's demo: HOG's hit on the mission patch is listed for review, not a failure."""
    report = tmp_path / "report.json"
    done = run_cli("redact", EXAMPLE, "-o", tmp_path / "out.jpg", "--audit", "--report", report)
    assert done.exit_code == 0, done.stderr
    assert "clean" in done.stderr and "[for review]" in done.stderr  # shown, not hidden
    audit = json.loads(report.read_text())["files"][0]["audit"]
    assert audit["clean"] and audit["findings"] == []
    assert [r["kind"] for r in audit["review"]] == ["unconfirmed_face"]
    assert _overlaps(tuple(audit["review"][0]["box"]), np.array([126, 335, 90, 91]), 0.5)


# dlib HOG fires on a 37 px spot of this photo's original that is no face (no ground-truth box
# there; veil's zoomed re-scan scores it 0.0); left unmasked, it "matches" itself.
HOG_FALSE_HIT = "images/13--Interview/13_Interview_Interview_Sequences_13_209.jpg"


def test_a_weak_hog_only_face_of_the_original_is_listed_for_review(wider_dir: Path,
                                                                   tmp_path: Path) -> None:
    source = wider_dir / HOG_FALSE_HIT
    redacted = tmp_path / "r.jpg"
    redact_file(source, redacted, Config())
    report = audit_file(source, redacted)
    assert report.clean, report.summary()
    spots = [f for f in report.review if f.kind is FindingKind.UNCONFIRMED_FACE]
    assert spots and any(_overlaps(f.box, np.array([201, 450, 37, 37]), 0.5) for f in spots)
