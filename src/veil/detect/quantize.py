"""Builds the INT8 CenterFace that video runs, from the pinned fp32 weights and a shipped range table.

Video runs the detector on thousands of frames, and on CPUs with 8-bit dot products (VNNI)
the INT8 graph takes about 0.6x the fp32 time. Nothing new is downloaded or shipped as
weights: the quantised graph is rebuilt from the hash-checked fp32 model by onnxruntime's
quantiser, with the activation ranges in `centerface_int8_ranges.json`. Those ranges were
calibrated on scikit-image's bundled sample pictures (never on WIDER), by
`python -m veil.detect.quantize --calibrate`. The result is hash-checked too, so that a
different quantiser cannot silently change the detector whose recall was measured; on a
mismatch the caller falls back to fp32.

Quantising takes about 2 s, so the checked result is cached under the user's cache folder
(`VEIL_CACHE_DIR`, else `$XDG_CACHE_HOME/veil`, else `~/.cache/veil`) and re-checked on every load.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RANGES = Path(__file__).with_name("centerface_int8_ranges.json")

# SHA-256 of the INT8 graph that onnxruntime 1.32.0 (with onnx 1.23.2) builds from the pinned
# CenterFace and RANGES; recall and speed were measured on exactly this graph.
INT8_SHA256 = "ed4eef822b1fd5e8b2623ef43d6b120a72bf9a7999acdab21d76f52dedbe8bf6"

# The 3x3 conv before the output heads and the four 1x1 heads stay fp32: their outputs are read
# directly as scores (thresholds down to 0.04) and box sizes, which 8-bit steps would coarsen.
_HEAD_INPUT = "535"
_NECK_OUTPUT = "533"


# x86 CPU features whose 8-bit dot products accumulate in 32 bits (VNNI, AMX).
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_suits_cpu(cpu_flags: str | None = None) -> bool:
    """Whether this CPU computes the INT8 graph as measured.

    On x86 without VNNI, onnxruntime's U8S8 convolutions sum pairs of 8-bit products into 16-bit
    lanes (vpmaddubsw), which saturate: on an AVX2-only EPYC the INT8 graph's covered recall at
    >= 32 px fell from 0.965 (fp32) to 0.936 on every third WIDER dev photo
    (tests/test_quantize.py), a face missed in every frame. Elsewhere (VNNI, ARM) the sums are
    exact. `VEIL_INT8=1` forces the INT8 graph (to compare), `VEIL_INT8=0` never uses it.
    """
    forced = os.environ.get("VEIL_INT8", "").strip().lower()
    if forced in ("1", "on", "yes"):
        return True
    if forced in ("0", "off", "no"):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    if cpu_flags is None:
        try:
            cpu_flags = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False  # cannot tell: fp32 is always right, only slower
    words = set(cpu_flags.split())
    return any(flag in words for flag in _VNNI_FLAGS)


def _prepared(fp32: Any) -> Any:
    """The graph at opset 13 (per-channel quantisation needs it), with every node named."""
    from onnx import version_converter

    model = version_converter.convert_version(fp32, 13)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    return model


def _kept_fp32(model: Any) -> list[str]:
    return [n.name for n in model.graph.node
            if (n.op_type == "Conv" and n.input[0] == _HEAD_INPUT) or _NECK_OUTPUT in n.output]


def _quantise(model: Any, out: Path, reader: Any = None, ranges: Path = RANGES) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(model, out, reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=_kept_fp32(model), calibration_cache_path=ranges)


def build_int8(fp32: Any) -> bytes:
    """Quantise the (shape-dynamic) fp32 CenterFace graph with the shipped ranges; serialised."""
    import logging

    quiet = logging.getLogger()  # the quantiser logs advice on pre-processing at WARNING
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="veil-int8-") as tmp:
            out = Path(tmp) / "centerface-int8.onnx"
            _quantise(_prepared(fp32), out)
            return out.read_bytes()
    finally:
        quiet.setLevel(level)


def cache_dir() -> Path:
    """Where the checked INT8 graph is kept between runs."""
    if os.environ.get("VEIL_CACHE_DIR"):
        return Path(os.environ["VEIL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "veil"


def int8_model(fp32: Any) -> bytes | None:
    """The INT8 graph, from the cache or freshly built; None if it does not match INT8_SHA256."""
    name = f"centerface-int8-{INT8_SHA256[:16]}.onnx"
    try:
        data = (cache_dir() / name).read_bytes()
        if hashlib.sha256(data).hexdigest() == INT8_SHA256:
            return data
    except (OSError, RuntimeError):  # RuntimeError: no home folder to look in
        pass
    data = build_int8(fp32)
    if hashlib.sha256(data).hexdigest() != INT8_SHA256:
        return None
    try:  # a cache that cannot be written only costs the 2 s again next time
        _write_atomically(cache_dir() / name, data)
    except (OSError, RuntimeError):
        pass
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    """Another veil building the same graph at once leaves one whole file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".centerface-int8-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- calibration (maintainers only: rewrites RANGES) -------------------------------------------

def calibration_images(seed: int = 0) -> list[np.ndarray]:
    """Network inputs from scikit-image's bundled pictures: scenes, and crowds pasted from its
    one portrait at many sizes, at the three input sizes video uses (720p and 1080p main passes,
    the large-face pass)."""
    import cv2
    import skimage.data as samples

    from .model import network_input

    rng = np.random.default_rng(seed)
    scenes = [samples.astronaut(), samples.coffee(), samples.chelsea(), samples.rocket(),
              np.dstack([samples.camera()] * 3)]
    face = samples.astronaut()
    blobs = []
    for width, height in [(640, 360), (960, 540), (384, 216)]:
        for kind in range(8):
            if kind < len(scenes):
                image = cv2.resize(scenes[kind], (width, height), interpolation=cv2.INTER_AREA)
            else:  # a crowd: the portrait pasted at 24 px to half the height over a scene
                image = cv2.resize(scenes[kind % len(scenes)], (width, height))
                for _ in range(60):
                    side = int(rng.integers(24, max(25, height // 2)))
                    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
                    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
                    image[y:y + side, x:x + side] = patch
            blobs.append(network_input(image))
    return blobs


def calibrate(out: Path = RANGES) -> None:
    """Recompute the activation ranges (MinMax over calibration_images) into `out`."""
    from onnxruntime.quantization import CalibrationDataReader

    from .model import fp32_model

    blobs = calibration_images()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(blobs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._items, None)
            return None if blob is None else {"input.1": blob}

    if out.exists():
        out.unlink()  # otherwise the quantiser reads it back instead of calibrating
    with tempfile.TemporaryDirectory(prefix="veil-int8-") as tmp:
        _quantise(_prepared(fp32_model()), Path(tmp) / "calibrated.onnx", Reader(), out)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild or check the INT8 CenterFace.")
    parser.add_argument("--calibrate", action="store_true", help=f"rewrite {RANGES.name}")
    args = parser.parse_args()
    from .model import fp32_model

    if args.calibrate:
        calibrate()
        print(f"wrote {RANGES}")
    print("sha256 of the built INT8 graph:", hashlib.sha256(build_int8(fp32_model())).hexdigest())


if __name__ == "__main__":
    main()
