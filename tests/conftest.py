"""Shared fixtures: the WIDER dev photos in ../shared/data, required under CI, skipped elsewhere."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from veil.evaluate import FrameTruth, read_annotations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WIDER = DATA / "wider_dev"
EXAMPLE = ROOT / "examples" / "astronaut.jpg"

# The INT8 detector's cache (detect/quantize.py) goes to a throwaway folder, never the user's;
# subprocesses (the CLI tests) inherit it.
if "VEIL_CACHE_DIR" not in os.environ:
    os.environ["VEIL_CACHE_DIR"] = tempfile.mkdtemp(prefix="veil-test-cache-")
    atexit.register(shutil.rmtree, os.environ["VEIL_CACHE_DIR"], ignore_errors=True)


def _data_or_skip() -> Path:
    if (WIDER / "gt.jsonl").is_file():
        return WIDER
    message = f"WIDER dev data not found at {WIDER}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (required under CI=true)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def wider_dir() -> Path:
    return _data_or_skip()


@pytest.fixture(scope="session")
def wider_gt(wider_dir: Path) -> list[FrameTruth]:
    """The dev photos' annotations, read by veil's own evaluation reader; each `image` is relative
    to `wider_dir`."""
    return read_annotations(wider_dir / "gt.jsonl")


@pytest.fixture(scope="session")
def make_clips_module(wider_dir: Path):  # type: ignore[no-untyped-def]
    """The shared clip renderer, imported from ../shared/data without copying it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_clips", DATA / "make_clips.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["make_clips"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
