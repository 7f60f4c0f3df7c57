"""One frame's audit: the pixel, second-detector and re-identification checks on an original/output pair.

A still is one frame; a video is audited frame by frame through the same function (video.py), so
a face is judged by the same rules wherever it appears.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._types import Config, Detections, MaskRegions
from ..detect.base import Detector
from ..geometry import greedy_match_matrix, iou_matrix, xyxy_to_xywh
from ..presets import sure_margins
from ..regions import face_regions, margin_scale
from . import pixels as pixel_check
from .confirm import CONFIRM_SCORE, STRONG_HOG_SCORE, confirmed
from .reid import MIN_FACE_PX, SAME_PERSON_DISTANCE, alignment_box, match_faces
from .report import FaceAudit, Finding, FindingKind, RegionStyle
from .second_detector import SecondDetector, covered_share, detect_faces

# A dlib face and a veil face are the same face when their boxes overlap this much.
SAME_FACE_IOU = 0.3
# A second-detector face is "inside a mask" when at least this share of it is masked.
INSIDE_MASK_SHARE = 0.5
# dlib HOG scores under this are marked "low confidence" in messages: on half the dev photos, 12 %
# of HOG's true faces scored below it, and both of its false detections did.
LOW_CONFIDENCE_SCORE = 0.2


@dataclass(frozen=True)
class FrameAudit:
    """The pixel, second-detector and re-identification results for one frame."""

    faces: tuple[FaceAudit, ...]
    findings: tuple[Finding, ...]
    tolerance: int
    seconds: dict[str, float]
    review: tuple[Finding, ...] = ()  # weak hits outside the masks that nothing confirmed


def _xywh(box: np.ndarray | tuple[float, ...]) -> tuple[int, int, int, int]:
    """A float xyxy box as the whole-pixel x, y, w, h that findings and reports print."""
    x, y, w, h = xyxy_to_xywh(np.asarray(box, np.float64))[0].tolist()
    return round(x), round(y), round(w), round(h)


def veil_regions(detections: Detections, width: int, height: int, config: Config) -> MaskRegions:
    """The regions veil masks, one row per detection (unlike mask_regions, none is dropped)."""
    if len(detections) == 0:
        return MaskRegions.empty(config.shape)
    scale = margin_scale(detections.scores, sure_margins(config), detections.heights, height)
    return MaskRegions(face_regions(detections.boxes, width, height, config, scale=scale),
                       config.shape)


def _match(veil_boxes: np.ndarray, dlib_boxes: np.ndarray) -> dict[int, int]:
    """Greedy one-to-one pairing of dlib faces to veil faces by IoU: {dlib face: veil face}."""
    iou = iou_matrix(np.asarray(veil_boxes, np.float64), np.asarray(dlib_boxes, np.float64))
    veil, dlib = greedy_match_matrix(iou, SAME_FACE_IOU)
    return dict(zip(dlib.tolist(), veil.tolist()))


@dataclass(frozen=True)
class _OriginalFace:
    """A face of the original and what the re-identification check needs for it."""

    box: tuple[int, int, int, int]  # xywh as found
    region: tuple[int, int, int, int] | None  # xywh of veil's region; None if only dlib found it
    found_by: str
    verdict: pixel_check.RegionVerdict | None
    dlib_score: float | None  # the HOG score when dlib found it
    align_box: tuple[int, int, int, int] | None  # xyxy for dlib's aligner; None: too small
    ideal_region: tuple[int, int, int, int]  # xyxy a perfect mask would fill
    veil_score: float | None = None  # veil's detector score when veil found it


def _original_faces(detections: Detections, plan: MaskRegions,
                    verdicts: list[pixel_check.RegionVerdict], dlib_boxes: np.ndarray,
                    dlib_scores: np.ndarray, config: Config, width: int,
                    height: int) -> list[_OriginalFace]:
    """veil's faces (with their regions), then any face only dlib found in the original."""
    pairs = _match(detections.boxes, dlib_boxes)
    dlib_of = {v: d for d, v in pairs.items()}
    faces = []
    for i, box in enumerate(detections.boxes):
        if i in dlib_of:
            align: tuple[int, int, int, int] | None = alignment_box(dlib_boxes[dlib_of[i]], False)
        else:
            align = alignment_box(box, True) if float(box[3] - box[1]) >= MIN_FACE_PX else None
        region: tuple[int, int, int, int] = tuple(plan.xywh()[i])  # type: ignore[assignment]
        faces.append(_OriginalFace(
            _xywh(box), region, "veil+dlib" if i in dlib_of else "veil",
            verdicts[i], float(dlib_scores[dlib_of[i]]) if i in dlib_of else None, align,
            tuple(int(v) for v in plan.boxes[i]), float(detections.scores[i])))  # type: ignore[arg-type]
    extra = [j for j in range(len(dlib_boxes)) if j not in pairs]
    if extra:
        ideal = face_regions(dlib_boxes[extra], width, height, config)
        for j, region in zip(extra, ideal):
            faces.append(_OriginalFace(_xywh(dlib_boxes[j]), None, "dlib", None,
                                       float(dlib_scores[j]), alignment_box(dlib_boxes[j], False),
                                       tuple(int(v) for v in region)))  # type: ignore[arg-type]
    return faces


def audit_frame(original: np.ndarray, output: np.ndarray, config: Config = Config(), *,
                detector: Detector | None = None, detections: Detections | None = None,
                regions: MaskRegions | None = None,
                second_detector: SecondDetector = SecondDetector.HOG,
                frame: int = 0, first_face: int = 0) -> FrameAudit:
    """Run the pixel, second-detector and re-identification checks on one pair of RGB frames.

    `detections` are veil's faces in the original; without them veil's detector runs on it.
    `regions` are their mask regions, one per detection (a video's tracked plan); without them
    they are planned from the detections with the config's margins. Faces are numbered from
    `first_face` in findings (a video numbers them across frames).
    """
    if original.shape != output.shape:
        raise ValueError(f"frame sizes differ: {original.shape} vs {output.shape}")
    seconds: dict[str, float] = {}
    height, width = original.shape[:2]
    started = time.perf_counter()
    # Weak veil-only faces of a still need confirmation (below); a video's plan carries tracked
    # boxes with no score of their own, so there every face stands as planned.
    confirm_weak = detections is None
    if detections is None:
        # veil's own still detection, a dithered original's smoothed view included: otherwise the
        # audit would expect no mask where veil's scan finds a face.
        from ..pipeline import still_stages

        detections = still_stages(config, original, detector).detector(original)
    plan = regions if regions is not None else veil_regions(detections, width, height, config)
    if len(plan) != len(detections):
        raise ValueError(f"{len(plan)} regions for {len(detections)} detections")
    seconds["veil_scan"] = time.perf_counter() - started

    started = time.perf_counter()
    difference = pixel_check.channel_difference(original, output)
    from ..paint import coverage_mask

    tolerance = pixel_check.encoding_tolerance(difference, coverage_mask(plan, height, width))
    verdicts = pixel_check.check_regions(original, output, plan, tolerance)
    covered = pixel_check.applied_coverage(original, output, plan, verdicts, tolerance)
    seconds["pixels"] = time.perf_counter() - started

    started = time.perf_counter()
    dlib_original, dlib_scores = detect_faces(original, SecondDetector.HOG)
    found_out, found_scores = detect_faces(output, second_detector)
    seconds["second_detector"] = time.perf_counter() - started

    faces = _original_faces(detections, plan, verdicts, dlib_original, dlib_scores, config,
                            width, height)
    started = time.perf_counter()
    measured = [i for i, face in enumerate(faces) if face.align_box is not None]
    matches = match_faces(original, output, [faces[i].align_box for i in measured],  # type: ignore[misc]
                          [faces[i].ideal_region for i in measured])  # type: ignore[misc]
    seconds["reidentification"] = time.perf_counter() - started
    row_of = {i: row for row, i in enumerate(measured)}

    findings: list[Finding] = []
    review: list[Finding] = []
    records: list[FaceAudit] = []
    for local, face in enumerate(faces):
        index = first_face + local
        verdict = face.verdict
        row = row_of.get(local)
        distance = None if row is None or not np.isfinite(matches.distances[row]) \
            else float(matches.distances[row])
        matched = row is not None and bool(matches.matched[row])
        records.append(FaceAudit(
            frame=frame, box=face.box, region=face.region, found_by=face.found_by,
            style=verdict.style if verdict else None,
            surviving_pixels=verdict.surviving_pixels if verdict else 0,
            region_pixels=verdict.region_pixels if verdict else 0,
            distance=distance, matchable=None if row is None else bool(matches.matchable[row]),
            matched=matched))
        if verdict is not None and face.region is not None:
            findings += _pixel_findings(index, face.region, verdict, frame)
        if matched and distance is not None and row is not None:
            # A face only dlib saw may be one of its rare false detections: say how sure it was.
            only_dlib = "" if face.dlib_score is None or face.region is not None else (
                f" (found only by dlib, score {face.dlib_score:.2f}"
                + (", low confidence)" if face.dlib_score < LOW_CONFIDENCE_SCORE else ")"))
            message = (f"face {index}{only_dlib} at {_fmt(face.box)} can still be matched to the "
                       "original person "
                       f"(embedding distance {distance:.3f} < {SAME_PERSON_DISTANCE}; an ideally "
                       f"masked face would be at {matches.ideal_distances[row]:.3f})")
            weak_veil = (confirm_weak and face.found_by == "veil" and face.veil_score is not None
                         and face.veil_score < CONFIRM_SCORE)
            if (only_dlib or weak_veil) and not _confirmed_in_original(original, face):
                # The same rule as for hits on the output: a weak "face" of the original that only
                # one detector saw (dlib's HOG; or veil at a low score, e.g. kept by support across
                # passes on the back of a head) and that veil's zoomed re-scan does not see is
                # listed for review, not a failure (left unmasked, its spot trivially "matches").
                review.append(Finding(
                    FindingKind.UNCONFIRMED_FACE,
                    message + f"; veil's zoomed re-scan does not confirm it is a face "
                    f"(< {CONFIRM_SCORE})", frame=frame, box=face.box, face=index, value=distance))
            else:
                findings.append(Finding(FindingKind.MATCHABLE_FACE, message, frame=frame,
                                        box=face.box, face=index, value=distance))
    started = time.perf_counter()
    for box, score in zip(found_out, found_scores):
        share = covered_share(box, covered)
        xywh = _xywh(box)
        # Low-scoring detections are reported too (a missed face costs more than a look), but
        # say so: on the dev photos dlib's HOG also fires, rarely, on badges and patterns.
        confidence = " (low confidence)" if score < LOW_CONFIDENCE_SCORE else ""
        if share < INSIDE_MASK_SHARE:
            # Outside the masks, a weak hit must be confirmed by veil's zoomed re-scan
            # (confirm.py) to fail the audit: HOG's false hits on prints and patterns were most
            # of the audit's findings on clean outputs. Hits through a mask need no confirmation.
            is_face, zoomed = confirmed(output, box, float(score))
            evidence = (f"score {score:.2f} >= {STRONG_HOG_SCORE}" if zoomed is None else
                        f"score {score:.2f}; veil's zoomed re-scan scores it {zoomed:.2f}")
            if is_face:
                findings.append(Finding(
                    FindingKind.FACE_OUTSIDE_MASKS,
                    f"dlib {second_detector.value} finds a face{confidence} at {_fmt(xywh)} that no "
                    f"mask covers ({share:.0%} masked, {evidence})",
                    frame=frame, box=xywh, value=float(score)))
            else:
                review.append(Finding(
                    FindingKind.UNCONFIRMED_FACE,
                    f"dlib {second_detector.value} finds a weak face-like pattern at "
                    f"{_fmt(xywh)} that no mask covers ({share:.0%} masked, {evidence} < "
                    f"{CONFIRM_SCORE}); probably not a face",
                    frame=frame, box=xywh, value=float(score)))
        else:
            findings.append(Finding(
                FindingKind.FACE_THROUGH_MASK,
                f"dlib {second_detector.value} still finds a face{confidence} through the mask at "
                f"{_fmt(xywh)} "
                f"(score {score:.2f})",
                frame=frame, box=xywh, value=float(score)))
    seconds["confirm"] = time.perf_counter() - started
    return FrameAudit(tuple(records), tuple(findings), tolerance, seconds, tuple(review))


def _confirmed_in_original(original: np.ndarray, face: _OriginalFace) -> bool:
    """Whether a face only one detector found in the original is strong (by dlib's score) or
    confirmed by veil's zoomed re-scan (confirm.py)."""
    x, y, w, h = face.box
    return confirmed(original, (x, y, x + w, y + h), face.dlib_score or 0.0)[0]


def _fmt(box: tuple[int, int, int, int]) -> str:
    x, y, w, h = box
    return f"x={x} y={y} {w}x{h}"


def _pixel_findings(index: int, region: tuple[int, int, int, int],
                    verdict: pixel_check.RegionVerdict, frame: int) -> list[Finding]:
    if verdict.style is RegionStyle.UNMASKED:
        return [Finding(
            FindingKind.ORIGINAL_PIXELS,
            f"face {index}: mask region {_fmt(region)} is not masked, or so lightly that "
            f"{verdict.surviving_pixels} of its {verdict.region_pixels} pixels are the original's",
            frame=frame, box=verdict.surviving_box or region, face=index,
            value=verdict.surviving_pixels / max(1, verdict.region_pixels))]
    if verdict.style.reversible:
        return [Finding(
            FindingKind.REVERSIBLE_MASK,
            f"face {index}: reversible mask ({verdict.style.value}) over {_fmt(region)}; it keeps "
            f"the face's coarse structure (correlation {verdict.correlation:.2f}), which "
            "recognition systems can exploit; use a solid or noise mask",
            frame=frame, box=region, face=index, value=verdict.correlation)]
    if verdict.leaks_pixels:
        assert verdict.surviving_box is not None
        return [Finding(
            FindingKind.ORIGINAL_PIXELS,
            f"face {index}: {verdict.surviving_pixels} original pixels survive in the "
            f"{verdict.style.value} mask region {_fmt(region)}, within {_fmt(verdict.surviving_box)}",
            frame=frame, box=verdict.surviving_box, face=index,
            value=verdict.surviving_pixels / max(1, verdict.region_pixels))]
    return []
