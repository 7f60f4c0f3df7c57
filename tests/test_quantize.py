"""The INT8 detector video runs: rebuilt from the pinned weights, hash-checked, cached, as good as fp32."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from veil._types import Config, DetectPreset
from veil.detect import faces, quantize
from veil.detect.faces import FaceDetector
from veil.detect.model import fp32_model
from veil.evaluate import read_annotations, score_plan, summarise
from veil.media.image import read_image
from veil.regions import mask_regions
from veil.presets import preset_settings, video_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _cached(cache: Path) -> Path:
    return cache / f"centerface-int8-{quantize.INT8_SHA256[:16]}.onnx"


def test_int8_graph_is_the_pinned_one_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    data = quantize.int8_model(fp32_model())
    assert data is not None and hashlib.sha256(data).hexdigest() == quantize.INT8_SHA256
    assert _cached(tmp_path).read_bytes() == data
    # A damaged cache file is never loaded: the graph is rebuilt and the file replaced.
    _cached(tmp_path).write_bytes(data[:1000])
    assert quantize.int8_model(fp32_model()) == data
    assert _cached(tmp_path).read_bytes() == data


def test_a_graph_that_differs_from_the_pinned_one_is_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("VEIL_INT8", "1")  # reach the hash check on any CPU
    monkeypatch.setattr(quantize, "INT8_SHA256", "0" * 64)
    assert quantize.int8_model(fp32_model()) is None
    assert list(tmp_path.iterdir()) == []  # nothing unverified is cached
    faces._int8_bytes.cache_clear()
    faces._session.cache_clear()
    try:
        settings = replace(preset_settings(DetectPreset.FAST), int8=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detector = FaceDetector(settings)
        assert any("INT8" in str(w.message) for w in caught)
        assert not faces.int8_available()
        # The fp32 graph runs instead, in the one fp32 session: the same boxes as an fp32 detector's.
        assert detector._session is faces._session(0, False)
        pixels = read_image(EXAMPLE).pixels
        found = detector(pixels)
        assert len(found) >= 1
        assert np.array_equal(found.boxes, FaceDetector(replace(settings, int8=False))(pixels).boxes)
    finally:
        faces._int8_bytes.cache_clear()
        faces._session.cache_clear()


@pytest.mark.parametrize("flags, machine, expected", [
    ("fpu sse2 avx avx2 fma", "x86_64", False),  # AVX2 only: 16-bit sums saturate
    ("fpu avx2 avx512f avx512_vnni", "x86_64", True),
    ("fpu avx2 avx_vnni", "x86_64", True),
    ("fp asimd asimddp", "aarch64", True),
])
def test_int8_runs_only_where_the_cpu_sums_8_bit_products_exactly(
        flags: str, machine: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEIL_INT8", raising=False)
    monkeypatch.setattr(quantize.platform, "machine", lambda: machine)
    assert quantize.int8_suits_cpu(flags) is expected
    monkeypatch.setenv("VEIL_INT8", "0")
    assert not quantize.int8_suits_cpu("avx512_vnni")
    monkeypatch.setenv("VEIL_INT8", "1")
    assert quantize.int8_suits_cpu("sse2")


def test_a_cpu_without_vnni_runs_the_fp32_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_INT8", "0")
    faces._int8_bytes.cache_clear()
    faces._session.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # expected on such CPUs: no warning
            detector = FaceDetector(replace(preset_settings(DetectPreset.FAST), int8=True))
        assert not faces.int8_available()
        assert detector._session is faces._session(0, False)
    finally:
        faces._int8_bytes.cache_clear()
        faces._session.cache_clear()


@pytest.mark.parametrize("preset", [DetectPreset.FAST, DetectPreset.BALANCED])
def test_fast_and_balanced_video_run_int8_and_thorough_fp32(preset: DetectPreset) -> None:
    settings = video_settings(Config(detect=preset)).detector
    assert settings.int8
    # INT8 scores faces lower: its thresholds never exceed the still preset's.
    assert all(a <= b for a, b in zip(settings.thresholds, preset_settings(preset).thresholds))
    given = video_settings(Config(detect=preset, threshold=0.3)).detector
    assert given.int8 and given.thresholds == (0.3,) * 4
    assert not video_settings(Config(detect=DetectPreset.THOROUGH)).detector.int8


def test_fast_video_is_balanced_on_fewer_frames() -> None:
    fast = video_settings(Config(detect=DetectPreset.FAST))
    balanced = video_settings(Config(detect=DetectPreset.BALANCED))
    assert fast.detector == balanced.detector and fast.scale == balanced.scale
    assert (fast.detect_every, balanced.detect_every) == (5, 3)


@pytest.mark.slow
def test_int8_covers_as_many_faces_as_fp32_on_wider_photos(wider_dir: Path) -> None:
    """One 640 px pass: INT8 at balanced video's thresholds, fp32 at the still ones; recall >= 32 px."""
    truths = read_annotations(wider_dir / "gt.jsonl")[::3]
    fast = preset_settings(DetectPreset.FAST)
    video = video_settings(Config(detect=DetectPreset.BALANCED)).detector
    int8 = replace(fast, int8=True, thresholds=video.thresholds)
    config = Config(detect=DetectPreset.FAST)
    recalls = {}
    for name, settings in (("fp32", fast), ("int8", int8)):
        detector = FaceDetector(settings)
        scores = []
        for truth in truths:
            pixels = read_image(wider_dir / truth.image).pixels
            found = detector(pixels)
            scores.append(score_plan(truth, found, mask_regions(found, pixels.shape[1], pixels.shape[0], config)))
        recalls[name] = summarise(scores).bucket(">=32").covered_recall
    assert recalls["fp32"] > 0.9
    assert recalls["int8"] >= recalls["fp32"] - 0.01, recalls


def test_calibration_images_need_no_wider_data() -> None:
    blobs = quantize.calibration_images()
    assert len(blobs) == 24 and {b.shape[2:] for b in blobs} == {(384, 640), (544, 960), (224, 384)}
    assert all(b.dtype == np.float32 and 0 <= b.min() and b.max() <= 255 for b in blobs)


def test_an_unwritable_cache_only_costs_a_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(blocker / "veil"))
    data = quantize.int8_model(fp32_model())
    assert data is not None and hashlib.sha256(data).hexdigest() == quantize.INT8_SHA256
    assert blocker.read_bytes() == b""
