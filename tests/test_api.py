"""The public API is exactly __all__, and every name in it exists."""

import veil

EXPECTED = {
    "AuditFailed", "Config", "DetectPreset", "Detections", "Detector", "FaceRecord", "FileReport",
    "FrameScan", "InputError", "MaskRegions", "MaskShape", "MaskStyle", "ModelError", "OutputError",
    "RedactionError", "StaticDetector", "UnsupportedMedia", "VeilError", "__version__",
    "redact_file", "redact_image", "scan_file", "scan_image",
    "Edits", "load_plan",
    "AuditReport", "audit_file",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(veil.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in veil.__all__:
        assert hasattr(veil, name), name


def test_config_is_frozen() -> None:
    import dataclasses

    import pytest

    config = veil.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mask = veil.MaskStyle.BLUR  # type: ignore[misc]
