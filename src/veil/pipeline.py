"""Runs reader -> detector -> plan -> redactor -> writer for one file, failing closed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._atomic import atomic_output, check_target
from ._errors import InputError, OutputError, RedactionError, VeilError
from ._types import Config, Detections, FaceRecord, FileReport, FrameScan, MaskPlan, RegionSource
from .detect.base import Detector
from .media.dequantise import detection_view, quantised_detector
from .media.image import encode_image, read_image
from .media.kinds import MediaKind, media_kind
from .plan import plan_masks
from .planfile import EditPlan
from .redact import apply_masks

# Called with (frames done, frames total or None) as a file is processed.
ProgressCallback = Callable[[int, int | None], None]


@lru_cache(maxsize=8)
def default_detector(preset: str, threshold: float | None, threads: int) -> Detector:
    """One shared detector per setting: building the ONNX session is the slow part."""
    from .detect.faces import FaceDetector

    return FaceDetector.from_preset(preset, threshold, threads)


def detector_for(config: Config) -> Detector:
    return default_detector(config.detect.value, config.threshold, config.threads)


def scan_image(pixels: np.ndarray, config: Config = Config(),
               detector: Detector | None = None) -> tuple[Detections, MaskPlan]:
    """Detect faces in an upright RGB frame and plan their masks."""
    view = detection_view(pixels)  # 1-bit/dithered: a smoothed copy, else the pixels themselves
    if detector is None and view is not pixels:
        detector = quantised_detector(config)  # dots score lower: lowered thresholds
    detector = detector or detector_for(config)
    detections = detector(view)
    plan = plan_masks(detections, pixels.shape[1], pixels.shape[0], config)
    return detections, plan


def redact_image(pixels: np.ndarray, config: Config = Config(),
                 detector: Detector | None = None) -> tuple[np.ndarray, Detections]:
    """Return a masked copy of an upright RGB uint8 frame, and the faces found in it."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 pixels of shape (H, W, 3), got {pixels.dtype} {pixels.shape}")
    detections, plan = scan_image(pixels, config, detector)
    return apply_masks(pixels, plan, config.mask), detections


def face_records(detections: Detections, plan: MaskPlan) -> tuple[FaceRecord, ...]:
    """Pair each detection with its mask region for reports (plan rows follow detection rows)."""
    records = []
    regions = plan.xywh()
    for i in range(min(len(detections), len(plan))):
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[i])
        mx, my, mw, mh = regions[i]
        records.append(FaceRecord((x1, y1, x2 - x1, y2 - y1), float(detections.scores[i]),
                                  (mx, my, mw, mh), int(detections.track_ids[i])))
    return tuple(records)


def edited_records(detections: Detections, plan: MaskPlan, origin: np.ndarray) -> tuple[FaceRecord, ...]:
    """Records for an edited plan: regions from a detection keep its box and score; added ones
    report their own region as the box and a score of 1 (a person put them there)."""
    records = []
    for i, (mx, my, mw, mh) in enumerate(plan.xywh()):
        row = int(origin[i])
        if 0 <= row < len(detections):
            x1, y1, x2, y2 = (float(v) for v in detections.boxes[row])
            box, score = (x1, y1, x2 - x1, y2 - y1), float(detections.scores[row])
        else:
            box, score = (float(mx), float(my), float(mw), float(mh)), 1.0
        records.append(FaceRecord(box, score, (mx, my, mw, mh), int(plan.track_ids[i]),
                                  RegionSource(int(plan.sources[i]))))
    return tuple(records)


def scan_file(path: str | Path, config: Config = Config(),
              detector: Detector | None = None, plan: EditPlan | None = None) -> Iterator[FrameScan]:
    """Yield what veil finds and would mask in each frame of a file (one frame for a still).

    With an edit plan (veil.planfile), the regions reported are the edited ones.
    """
    path = Path(path)
    kind = media_kind(path)
    if kind is MediaKind.VIDEO:
        from .video_pipeline import scan_video_file

        yield from scan_video_file(path, config, detector, **({"plan": plan} if plan is not None else {}))
        return
    still = read_image(path, config.max_pixels)
    detections, regions = scan_image(still.pixels, config, detector)
    if plan is None:
        yield FrameScan(path, 0, still.width, still.height, face_records(detections, regions))
        return
    plan.check_frame_count(1)
    edited, origin = plan.apply(0, regions, still.width, still.height)
    yield FrameScan(path, 0, still.width, still.height, edited_records(detections, edited, origin))


def redact_file(path: str | Path, out: str | Path | None = None, config: Config = Config(), *,
                overwrite: bool = False, detector: Detector | None = None,
                progress: ProgressCallback | None = None, plan: EditPlan | None = None) -> FileReport:
    """Redact one file to `out` (default `<stem>.redacted<suffix>` beside it).

    `plan` (veil.planfile.EditPlan) edits veil's regions: keep a face visible, drop a false mask,
    add a missed face. Faces it does not release are masked as usual.

    Raises a VeilError subclass on failure; the target path is then left as it was.
    """
    path = Path(path)
    target = Path(out) if out is not None else default_output(path)
    kind = media_kind(path)
    check_target(path, target, overwrite)
    if kind is MediaKind.VIDEO:
        from .video_pipeline import redact_video_file

        return redact_video_file(path, target, config, overwrite=overwrite, detector=detector,
                                 progress=progress, **({"plan": plan} if plan is not None else {}))
    started = time.perf_counter()
    still = read_image(path, config.max_pixels)
    check_still_suffix(path, target, still.format)
    detections, plan_regions = scan_image(still.pixels, config, detector)
    if plan is not None:
        plan.check_frame_count(1)
        plan_regions = plan.regions_for(0, plan_regions, still.width, still.height)
    masked = apply_masks(still.pixels, plan_regions, config.mask)
    try:
        data = encode_image(masked, still, config)
    except (OSError, ValueError) as exc:
        raise RedactionError(f"could not encode the output: {exc}", path) from exc
    try:
        with atomic_output(target, overwrite) as tmp:
            tmp.write_bytes(data)
    except VeilError:
        raise
    except OSError as exc:
        raise RedactionError(f"could not write {target}: {exc.strerror or exc}", path) from exc
    if progress:
        progress(1, 1)
    return FileReport(
        path=path, output=target, ok=True, kind="image", frames=1, faces=len(plan_regions),
        faces_per_frame=(len(plan_regions),),
        lowest_score=float(detections.scores.min()) if len(detections) else None,
        seconds=time.perf_counter() - started,
    )


# A still is written in its own format, so the output name must say that format.
_STILL_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "MPO": (".jpg", ".jpeg"), "PNG": (".png",),
                   "WEBP": (".webp",), "TIFF": (".tif", ".tiff"), "HEIF": (".heic", ".heif")}


def check_still_suffix(source: Path, target: Path, image_format: str) -> None:
    allowed = _STILL_SUFFIXES.get(image_format, ())
    if allowed and target.suffix.lower() not in allowed:
        raise OutputError(f"output {target.name} does not end in {' or '.join(allowed)}: veil writes "
                          f"stills in their own format ({image_format})", source)


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.redacted{path.suffix}")


def failed_report(path: Path, error: Exception) -> FileReport:
    message = error.message if isinstance(error, VeilError) else f"{type(error).__name__}: {error}"
    return FileReport(path=path, output=None, ok=False, error=message)


__all__ = ["redact_image", "redact_file", "scan_image", "scan_file", "default_output", "InputError"]
