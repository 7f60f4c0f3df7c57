"""Video audit: decode both files with PyAV in step, and audit a sample of frame pairs.

The regions come from veil's own video scan of the original (detector every k-th frame plus the
tracker's interpolated and padded masks, the same Config), so the pixel check knows every frame's
regions exactly. Frames checked by default: every frame holding a mask (detected or tracked),
plus a uniform sample of the others (two a second) where a face veil never saw could be;
`all_frames` checks every frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from collections.abc import Iterator

from .._errors import InputError
from .._types import Config
from ..detect.base import Detector
from .report import AuditReport, FaceAudit, Finding, MetadataField, MetadataFlag
from .second_detector import SecondDetector

UNIFORM_SAMPLES_PER_SECOND = 2.0
_STRUCTURAL_TAGS = {"major_brand", "minor_version", "compatible_brands", "handler_name",
                    "language", "vendor_id", "duration"}


def _tag_flag(key: str) -> MetadataFlag | None:
    lowered = key.lower()
    if "location" in lowered or "gps" in lowered or "iso6709" in lowered:
        return MetadataFlag.GPS
    if "time" in lowered or "date" in lowered:
        return MetadataFlag.TIME
    if any(word in lowered for word in ("make", "model", "serial", "camera", "lens")):
        return MetadataFlag.CAMERA
    if any(word in lowered for word in ("author", "artist", "owner", "copyright")):
        return MetadataFlag.OWNER
    return None


def video_metadata(path: Path) -> list[MetadataField]:
    """Container and stream tags of a video, read with PyAV; structural tags are left out."""
    import av

    fields: list[MetadataField] = []
    with av.open(str(path), metadata_errors="ignore") as container:
        groups = [("container", dict(container.metadata))]
        groups += [(f"stream {s.index} ({s.type})", dict(s.metadata)) for s in container.streams]
        for group, tags in groups:
            for key, value in tags.items():
                if key not in _STRUCTURAL_TAGS:
                    text = str(value) if len(str(value)) <= 60 else str(value)[:57] + "..."
                    fields.append(MetadataField(group, key, text, _tag_flag(key)))
    return fields


def _decoded(path: Path) -> Iterator[np.ndarray]:
    """Every frame of the main video stream as upright RGB, decoded with PyAV directly."""
    import av

    from ..media.video import main_video_stream

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = main_video_stream(container)
            if stream is None:
                raise InputError("has no video stream", path)
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                pixels = frame.to_ndarray(format="rgb24")
                turns = int(round(float(getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
                yield np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode the video: {exc}", path) from None


def audit_video(original: Path, redacted: Path, config: Config = Config(), *,
                detector: Detector | None = None,
                second_detector: SecondDetector = SecondDetector.HOG,
                all_frames: bool = False) -> AuditReport:
    """Audit a redacted video against its original, frame by frame (see the module docstring)."""
    import av

    from ..media.video import main_video_stream
    from ..pipeline import planned_file
    from .frame import audit_frame
    from .metadata import metadata_findings

    with av.open(str(original), metadata_errors="ignore") as container:
        stream = main_video_stream(container)
        rate = float(stream.average_rate or stream.guessed_rate or 0) if stream else 0.0
    step = max(1, int(round((rate or 30.0) / UNIFORM_SAMPLES_PER_SECOND)))
    faces: list[FaceAudit] = []
    findings: list[Finding] = []
    review: list[Finding] = []
    checked: list[int] = []
    seconds: dict[str, float] = {}
    tolerance = 0
    total = 0
    before, after = _decoded(original), _decoded(redacted)
    started = time.perf_counter()
    for planned in planned_file(original, config, detector):
        index = planned.frame.index
        source, output = next(before, None), next(after, None)
        if source is None or output is None:
            which = "redacted" if output is None else "original"
            raise InputError(f"the {which} video ends at frame {index}, before the other", redacted)
        total += 1
        if source.shape != output.shape:
            raise InputError(f"frame {index} of the redacted video is {output.shape[1]}x"
                             f"{output.shape[0]} but the original's is {source.shape[1]}x"
                             f"{source.shape[0]}", redacted)
        if not (all_frames or len(planned.regions) or index % step == 0):
            continue
        seconds["veil_scan"] = seconds.get("veil_scan", 0.0) + time.perf_counter() - started
        result = audit_frame(source, output, config, detections=planned.rows,
                             regions=planned.computed, second_detector=second_detector, frame=index,
                             first_face=len(faces))
        checked.append(index)
        faces += result.faces
        findings += result.findings
        review += result.review
        tolerance = max(tolerance, result.tolerance)
        for key, value in result.seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value
        started = time.perf_counter()
    if next(after, None) is not None:
        raise InputError(f"the redacted video has more frames than the original ({total})", redacted)
    started = time.perf_counter()
    fields = video_metadata(redacted)
    seconds["metadata"] = time.perf_counter() - started
    return AuditReport(
        original=original, redacted=redacted, kind="video", frames_checked=tuple(checked),
        faces=tuple(faces), findings=tuple(findings) + tuple(metadata_findings(fields)),
        metadata=tuple(fields), tolerance=tolerance, second_detector=second_detector.value,
        seconds=seconds, frames_total=total, review=tuple(review))

