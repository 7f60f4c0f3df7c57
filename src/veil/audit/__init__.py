"""veil's audit: re-reads a redacted file beside its original and checks that nobody is identifiable.

How the audit knows where the masks are, from the two files alone: it runs veil's own scan
(detector + mask plan, with the same Config) on the original. Those are the regions veil masks,
so the pixel check knows exactly which pixels must have been replaced. Where the output differs
from the original beyond encoding error is also counted as masked, so a redaction made by
other means (or with other margins) is judged by what it actually hid.

Four independent checks, each of which can fail on its own:
  pixels            no run of original pixels survives inside a region; blur/mosaic: "reversible"
  second_detector   dlib (HOG, optionally MMOD CNN) finds no face on the output outside the masks
                    (a weak hit there fails only if veil's zoomed re-scan confirms it, confirm.py;
                    the rest are listed for review)
  reidentification  dlib ResNet embeddings of each original face and of the same aligned region
                    of the output are at least 0.6 apart (dlib's same-person threshold), or no
                    closer than an ideally masked chip (see reid.py)
  metadata          no GPS, time, camera make/model/serial, owner or thumbnail left in the file

Videos are audited frame by frame (video.py). dlib is imported lazily: veil works without the
`audit` extra, and the audit says how to get it.
"""

from __future__ import annotations

from .files import audit_file
from .frame import FrameAudit, audit_frame
from .models import require_models
from .report import (
    AuditReport,
    Check,
    FaceAudit,
    Finding,
    FindingKind,
    MetadataField,
    MetadataFlag,
    RegionStyle,
)
from .second_detector import SecondDetector

__all__ = [
    "AuditReport",
    "Check",
    "FaceAudit",
    "Finding",
    "FindingKind",
    "FrameAudit",
    "MetadataField",
    "MetadataFlag",
    "RegionStyle",
    "SecondDetector",
    "audit_file",
    "audit_frame",
    "require_models",
]
