"""Loads dlib and the audit's pinned, hash-checked model files lazily; veil runs without the extra."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .._errors import ModelError
from .._models import (
    DLIB_FACE_RECOGNITION,
    DLIB_MMOD_DETECTOR,
    DLIB_SHAPE_PREDICTOR_5,
    model_path,
)

INSTALL_HINT = "install it with: pip install 'veil[audit]'"


def dlib_module() -> Any:
    """Import dlib, or raise ModelError naming the extra that installs it."""
    try:
        import dlib
    except ImportError:
        raise ModelError("the audit needs dlib (package dlib-bin), which is not installed; "
                         + INSTALL_HINT) from None
    return dlib


def require_models() -> None:
    """Fail early, before any work, if the audit cannot run (used by `veil redact --audit`)."""
    dlib_module()
    for model in (DLIB_MMOD_DETECTOR, DLIB_SHAPE_PREDICTOR_5, DLIB_FACE_RECOGNITION):
        model_path(model)


@lru_cache(maxsize=1)
def hog_detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector (its weights are compiled into dlib)."""
    return dlib_module().get_frontal_face_detector()


@lru_cache(maxsize=1)
def mmod_detector() -> Any:
    return dlib_module().cnn_face_detection_model_v1(str(model_path(DLIB_MMOD_DETECTOR)))


@lru_cache(maxsize=1)
def shape_predictor() -> Any:
    return dlib_module().shape_predictor(str(model_path(DLIB_SHAPE_PREDICTOR_5)))


@lru_cache(maxsize=1)
def face_recogniser() -> Any:
    return dlib_module().face_recognition_model_v1(str(model_path(DLIB_FACE_RECOGNITION)))
