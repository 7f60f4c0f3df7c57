"""The audit's entry point for files: checks that both are the same kind of media and dispatches.

A still is read and audited as one frame plus its metadata; a video goes to video.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from .._errors import InputError
from .._types import Config
from ..detect.base import Detector
from ..media.image import read_image
from ..media.kinds import MediaKind, media_kind
from .frame import audit_frame
from . import pixels as pixel_check
from .metadata import image_metadata, metadata_findings
from .models import require_models
from .report import AuditReport
from .second_detector import SecondDetector


def audit_file(original: str | Path, redacted: str | Path, config: Config = Config(), *,
               detector: Detector | None = None,
               second_detector: SecondDetector = SecondDetector.HOG,
               all_frames: bool = False) -> AuditReport:
    """Audit `redacted` against `original` and return every finding (the checks: see veil/audit/__init__.py).

    Raises ModelError (naming the `audit` extra) when dlib or its models are missing, InputError
    when either file cannot be read or the two do not have the same size.
    """
    original, redacted = Path(original), Path(redacted)
    require_models()
    kinds = media_kind(original), media_kind(redacted)
    if kinds[0] is not kinds[1]:
        raise InputError(f"the redacted file is a {kinds[1].value} but the original is an "
                         f"{kinds[0].value}" if kinds[0] is MediaKind.IMAGE else
                         f"the redacted file is an {kinds[1].value} but the original is a "
                         f"{kinds[0].value}", redacted)
    if kinds[0] is MediaKind.VIDEO:
        from .video import audit_video

        return audit_video(original, redacted, config, detector=detector,
                           second_detector=second_detector, all_frames=all_frames)
    before = read_image(original, config.max_pixels)
    after = read_image(redacted, config.max_pixels)
    if before.pixels.shape != after.pixels.shape:
        raise InputError(f"the redacted image is {after.width}x{after.height} but the original is "
                         f"{before.width}x{before.height}; the audit compares them pixel by pixel",
                         redacted)
    result = audit_frame(before.pixels, pixel_check.matched_levels(before.pixels, after.pixels),
                         config, detector=detector, second_detector=second_detector)
    started = time.perf_counter()
    fields = image_metadata(redacted)
    seconds = dict(result.seconds, metadata=time.perf_counter() - started)
    return AuditReport(
        original=original, redacted=redacted, kind="image", frames_checked=(0,),
        faces=result.faces, findings=result.findings + tuple(metadata_findings(fields)),
        metadata=tuple(fields), tolerance=result.tolerance,
        second_detector=second_detector.value, seconds=seconds, review=result.review)
