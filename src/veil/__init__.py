"""veil: find every face in photos and video, mask it irreversibly, and strip identifying metadata.

The public API is exactly `__all__`; everything else is private and may change.
"""

from ._errors import (
    AuditFailed,
    InputError,
    ModelError,
    OutputError,
    RedactionError,
    UnsupportedMedia,
    VeilError,
)
from ._types import (
    Config,
    DetectPreset,
    Detections,
    FaceRecord,
    FileReport,
    FrameScan,
    MaskRegions,
    MaskShape,
    MaskStyle,
)
from .audit import AuditReport, audit_file  # dlib loads only when an audit runs
from .detect.base import Detector, StaticDetector
from .pipeline import redact_file, redact_image, scan_file, scan_image
from .edits import Edits, load_plan

__version__ = "0.1.0"

__all__ = [
    "AuditFailed",
    "AuditReport",
    "Config",
    "DetectPreset",
    "Detections",
    "Detector",
    "Edits",
    "FaceRecord",
    "FileReport",
    "FrameScan",
    "InputError",
    "MaskRegions",
    "MaskShape",
    "MaskStyle",
    "ModelError",
    "OutputError",
    "RedactionError",
    "StaticDetector",
    "UnsupportedMedia",
    "VeilError",
    "__version__",
    "audit_file",
    "load_plan",
    "redact_file",
    "redact_image",
    "scan_file",
    "scan_image",
]
