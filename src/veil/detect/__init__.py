"""Face detectors: the Detector protocol and the models behind it (tuned values: `veil.presets`)."""

from .base import Detector, StaticDetector
from .faces import DetectorSettings, FaceDetector

__all__ = ["Detector", "StaticDetector", "FaceDetector", "DetectorSettings"]
