"""Face detectors: the Detector protocol and the models behind it."""

from .base import Detector, StaticDetector
from .faces import FaceDetector, DetectorSettings, preset_settings

__all__ = ["Detector", "StaticDetector", "FaceDetector", "DetectorSettings", "preset_settings"]
