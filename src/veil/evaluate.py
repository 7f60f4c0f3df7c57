"""Scores face detections and mask plans against annotated faces: recall, covered recall, precision, area.

The measures follow ../shared/data/README.md ("How to score"):

- recall at IoU >= 0.5, with one-to-one matching: predictions are taken in descending score order
  and each goes to the still-unmatched face it overlaps most;
- covered recall: a face is covered when >= 80 % of its box lies inside the union of mask regions,
  which is what protects a person, however loosely the mask fits;
- precision at IoU >= 0.5 with the same matching; an unmatched prediction lying on an ignore region
  is left out of the count, and a second prediction on an already matched face is a false positive;
- the share of image pixels masked, beside the share covered by the annotated faces, so that
  masking everything cannot pass for recall;
- loose precision: the share of predictions that overlap an annotated face or ignore region at
  all (issue 19's "regions on a face"): a box on a face, however badly fitted, is no false mask.

Every figure is given per size bucket of ground-truth box height (< 16, 16-32, 32-64, >= 64 px) and
overall. `score_frame` is the building block (plain arrays in, a `FrameScore` out) so that video tests
and benchmarks can score clip frames with the same rules; `evaluate` runs veil over a gt.jsonl folder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._types import Config, Detections, MaskRegions
from .geometry import greedy_match_matrix, iou_matrix, xywh_to_xyxy

MATCH_IOU = 0.5  # a detection finds a face at IoU >= 0.5 (the WIDER FACE rule)
COVERED_FRACTION = 0.8  # a face is covered when >= 80 % of its box is masked
IGNORE_OVERLAP = 0.5  # an unmatched prediction this much inside an ignore region is not counted


@dataclass(frozen=True)
class SizeBucket:
    """A range of ground-truth face heights in pixels, low inclusive, high exclusive."""

    name: str
    low: float
    high: float

    def holds(self, heights: np.ndarray) -> np.ndarray:
        return (heights >= self.low) & (heights < self.high)


SIZE_BUCKETS: tuple[SizeBucket, ...] = (
    SizeBucket("<16", 0.0, 16.0),
    SizeBucket("16-32", 16.0, 32.0),
    SizeBucket("32-64", 32.0, 64.0),
    SizeBucket("64+", 64.0, math.inf),
)
ALL_SIZES = SizeBucket("all", 0.0, math.inf)
AT_LEAST_32 = SizeBucket(">=32", 32.0, math.inf)


def _boxes(value: Any) -> np.ndarray:
    return np.asarray(value if value is not None else [], np.float64).reshape(-1, 4)


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """The annotated faces of one image or video frame; boxes and ignore are (N, 4) x, y, w, h."""

    image: str  # the gt.jsonl "image" string, or "<clip>#<frame>" for clip frames
    boxes: np.ndarray
    ignore: np.ndarray
    width: int
    height: int
    ids: np.ndarray | None = None  # clip ground truth: a face's id for the whole clip
    frame: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _boxes(self.boxes))
        object.__setattr__(self, "ignore", _boxes(self.ignore))
        if self.ids is not None:
            object.__setattr__(self, "ids", np.asarray(self.ids, np.int64).reshape(-1))

    @property
    def boxes_xyxy(self) -> np.ndarray:
        return xywh_to_xyxy(self.boxes)

    @property
    def ignore_xyxy(self) -> np.ndarray:
        return xywh_to_xyxy(self.ignore)


def read_annotations(path: str | Path) -> list[FrameTruth]:
    """Read a gt.jsonl file (one image per line); only image, boxes, width and height are required."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(FrameTruth(row["image"], row["boxes"], row.get("ignore", []),
                                   int(row["width"]), int(row["height"])))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a ground-truth row ({exc})") from None
    return rows


def read_clip_truth(path: str | Path, width: int, height: int) -> list[FrameTruth]:
    """Read a clip's per-frame ground truth (`<name>.gt.jsonl` from make_clips.py).

    The clip format carries no frame size, so the caller passes the video's width and height.
    """
    path = Path(path)
    name = path.name.removesuffix(".gt.jsonl")
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        frame = int(row["frame"])
        rows.append(FrameTruth(f"{name}#{frame}", row["boxes"], row.get("ignore", []), width, height,
                               ids=row.get("ids"), frame=frame))
    return rows


def _edge_weights(start: float, end: float, size: int) -> tuple[int, np.ndarray]:
    """Overlap of each whole pixel [i, i+1) with [start, end): lets float boxes be scored exactly."""
    lo = max(0, int(math.floor(start)))
    hi = min(size, int(math.ceil(end)))
    if hi <= lo:
        return lo, np.zeros(0)
    edges = np.arange(lo, hi + 1, dtype=np.float64)
    weights = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, 1.0)
    return lo, weights


def covered_fractions(boxes_xyxy: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Share of each box's area that lies on True pixels of `coverage` (H, W), box parts outside the
    frame counting as uncovered."""
    h, w = coverage.shape
    out = np.zeros(len(boxes_xyxy))
    for i, (x0, y0, x1, y1) in enumerate(boxes_xyxy):
        area = (x1 - x0) * (y1 - y0)
        if area <= 0:
            continue
        cx, wx = _edge_weights(x0, x1, w)
        cy, wy = _edge_weights(y0, y1, h)
        if len(wx) == 0 or len(wy) == 0:
            continue
        window = coverage[cy:cy + len(wy), cx:cx + len(wx)].astype(np.float64)
        out[i] = float(wy @ window @ wx) / area
    return out


def boxes_coverage(boxes_xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boolean (H, W) union of boxes, each rounded outwards to whole pixels (as veil's plan does)."""
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in np.asarray(boxes_xyxy, np.float64).reshape(-1, 4):
        ix0, iy0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
        ix1, iy1 = min(width, int(math.ceil(x1))), min(height, int(math.ceil(y1)))
        if ix1 > ix0 and iy1 > iy0:
            covered[iy0:iy1, ix0:ix1] = True
    return covered


def match_one_to_one(truth_xyxy: np.ndarray, pred_xyxy: np.ndarray, scores: np.ndarray,
                     iou_threshold: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching in descending score: each prediction takes the unmatched face it overlaps most.

    Returns (face_matched (N,) bool, prediction_matched (M,) bool).
    """
    face_matched = np.zeros(len(truth_xyxy), bool)
    pred_matched = np.zeros(len(pred_xyxy), bool)
    if len(truth_xyxy) == 0 or len(pred_xyxy) == 0:
        return face_matched, pred_matched
    ious = iou_matrix(pred_xyxy.astype(np.float32), truth_xyxy.astype(np.float32)).astype(np.float64)
    rank = np.empty(len(pred_xyxy), np.int64)  # 0 for the highest score; ties keep input order
    rank[np.argsort(-np.asarray(scores, np.float64), kind="stable")] = np.arange(len(pred_xyxy))
    preds, faces = greedy_match_matrix(ious, iou_threshold, row_priority=rank)
    face_matched[faces] = True
    pred_matched[preds] = True
    return face_matched, pred_matched


def _on_ignore(pred_xyxy: np.ndarray, ignore_xyxy: np.ndarray) -> np.ndarray:
    """Predictions that lie on an ignore region: IoU >= 0.5 with one, or mostly inside one, or one
    mostly inside them (ignore regions are tiny faces; a looser box on one is still not a false alarm)."""
    if len(pred_xyxy) == 0 or len(ignore_xyxy) == 0:
        return np.zeros(len(pred_xyxy), bool)
    p = pred_xyxy[:, None, :]
    g = ignore_xyxy[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    area_p = np.maximum((p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]), 1e-9)
    area_g = np.maximum((g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]), 1e-9)
    iou = inter / (area_p + area_g - inter)
    hit = (iou >= MATCH_IOU) | (inter / area_p >= IGNORE_OVERLAP) | (inter / area_g >= IGNORE_OVERLAP)
    return hit.any(axis=1)


@dataclass(frozen=True, eq=False)
class FrameScore:
    """The per-face and per-prediction outcome for one frame."""

    heights: np.ndarray  # (N,) ground-truth box heights, for the size buckets
    found: np.ndarray  # (N,) bool: matched by a detection at IoU >= 0.5
    covered: np.ndarray  # (N,) bool: >= 80 % of the box inside the union of masks
    covered_fraction: np.ndarray  # (N,) float
    true_positives: int
    false_positives: int  # predictions matching no face and lying on no ignore region
    mask_share: float  # share of the frame's pixels inside the masks
    face_share: float  # share of the frame's pixels inside the annotated face boxes
    ids: np.ndarray | None = None  # clip face ids aligned with heights, when known
    image: str = ""
    on_faces: int = 0  # predictions overlapping a face or ignore region at all (loose precision)
    predictions: int = 0

    @property
    def faces(self) -> int:
        return len(self.heights)


def score_frame(truth_xywh: np.ndarray, ignore_xywh: np.ndarray, detections_xyxy: np.ndarray,
                scores: np.ndarray | None, masks: np.ndarray, width: int, height: int, *,
                ids: np.ndarray | None = None, image: str = "") -> FrameScore:
    """Score one frame.

    truth_xywh and ignore_xywh: annotated faces and ignore regions as x, y, w, h; detections_xyxy:
    detection boxes as x1, y1, x2, y2 with `scores` (None: all equal); masks: either mask boxes as
    (K, 4) x0, y0, x1, y1 (veil's MaskRegions.boxes, end-exclusive) or a boolean (height, width) array of
    masked pixels (e.g. redact.coverage_mask for ellipse shapes).
    """
    truth = xywh_to_xyxy(_boxes(truth_xywh))
    ignore = xywh_to_xyxy(_boxes(ignore_xywh))
    preds = np.asarray(detections_xyxy, np.float64).reshape(-1, 4)
    scores = np.ones(len(preds)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != len(preds):
        raise ValueError(f"{len(scores)} scores for {len(preds)} detections")
    masks = np.asarray(masks)
    if masks.dtype == bool and masks.ndim == 2:
        if masks.shape != (height, width):
            raise ValueError(f"coverage mask is {masks.shape}, frame is {(height, width)}")
        coverage = masks
    else:
        coverage = boxes_coverage(masks.reshape(-1, 4), width, height)
    face_matched, pred_matched = match_one_to_one(truth, preds, scores)
    unmatched = ~pred_matched
    false_positive = unmatched & ~_on_ignore(preds, ignore)
    fractions = covered_fractions(truth, coverage)
    pixels = max(1, width * height)
    anywhere = np.concatenate([truth, ignore]).astype(np.float32)
    on_faces = int((iou_matrix(preds.astype(np.float32), anywhere) > 0).any(axis=1).sum()) \
        if len(anywhere) and len(preds) else 0
    return FrameScore(
        heights=truth[:, 3] - truth[:, 1],
        found=face_matched,
        covered=fractions >= COVERED_FRACTION - 1e-9,
        covered_fraction=fractions,
        true_positives=int(pred_matched.sum()),
        false_positives=int(false_positive.sum()),
        mask_share=float(coverage.sum()) / pixels,
        face_share=float(boxes_coverage(truth, width, height).sum()) / pixels,
        ids=None if ids is None else np.asarray(ids, np.int64).reshape(-1),
        image=image,
        on_faces=on_faces,
        predictions=len(preds),
    )


def score_plan(truth: FrameTruth, detections: Detections, plan: MaskRegions | np.ndarray) -> FrameScore:
    """Score veil's output for one annotated frame; `plan` may be a MaskRegions or a boolean coverage."""
    masks = plan.boxes if isinstance(plan, MaskRegions) else plan
    return score_frame(truth.boxes, truth.ignore, detections.boxes, detections.scores, masks,
                       truth.width, truth.height, ids=truth.ids, image=truth.image)


@dataclass(frozen=True)
class BucketFigures:
    """Counts and recalls for the faces of one size bucket."""

    name: str
    faces: int
    found: int
    covered: int

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else float("nan")

    @property
    def covered_recall(self) -> float:
        return self.covered / self.faces if self.faces else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"faces": self.faces, "recall": _round(self.recall),
                "covered_recall": _round(self.covered_recall)}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


@dataclass(frozen=True)
class EvalReport:
    """Figures over a set of scored frames."""

    buckets: tuple[BucketFigures, ...]  # SIZE_BUCKETS, then ">=32", then "all"
    true_positives: int
    false_positives: int
    mask_share: float  # mean over frames
    face_share: float  # mean over frames
    frames: int
    seconds: float = 0.0
    label: str = ""
    on_faces: int = 0
    predictions: int = 0

    def bucket(self, name: str) -> BucketFigures:
        for b in self.buckets:
            if b.name == name:
                return b
        raise KeyError(name)

    @property
    def precision(self) -> float:
        counted = self.true_positives + self.false_positives
        return self.true_positives / counted if counted else float("nan")

    @property
    def loose_precision(self) -> float:
        """The share of predictions overlapping a face or ignore region at all."""
        return self.on_faces / self.predictions if self.predictions else float("nan")

    @property
    def area_ratio(self) -> float:
        """Masked share over annotated-face share: 1 is a perfect fit; whole-image masks score huge."""
        return self.mask_share / self.face_share if self.face_share > 0 else float("inf")

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "frames": self.frames,
            "buckets": {b.name: b.to_json() for b in self.buckets},
            "precision": _round(self.precision),
            "loose_precision": _round(self.loose_precision),
            "mask_share": round(self.mask_share, 5),
            "face_share": round(self.face_share, 5),
            "area_ratio": _round(self.area_ratio) if math.isfinite(self.area_ratio) else None,
            "seconds": round(self.seconds, 3),
            "images_per_second": _round(self.frames_per_second),
        }


def summarise(scores: Sequence[FrameScore], seconds: float = 0.0, label: str = "") -> EvalReport:
    """Pool frame scores into per-bucket and overall figures."""
    heights = np.concatenate([s.heights for s in scores]) if scores else np.zeros(0)
    found = np.concatenate([s.found for s in scores]) if scores else np.zeros(0, bool)
    covered = np.concatenate([s.covered for s in scores]) if scores else np.zeros(0, bool)
    buckets = []
    for bucket in (*SIZE_BUCKETS, AT_LEAST_32, ALL_SIZES):
        inside = bucket.holds(heights)
        buckets.append(BucketFigures(bucket.name, int(inside.sum()), int(found[inside].sum()),
                                     int(covered[inside].sum())))
    n = len(scores)
    return EvalReport(
        buckets=tuple(buckets),
        true_positives=sum(s.true_positives for s in scores),
        false_positives=sum(s.false_positives for s in scores),
        mask_share=sum(s.mask_share for s in scores) / n if n else 0.0,
        face_share=sum(s.face_share for s in scores) / n if n else 0.0,
        frames=n,
        seconds=seconds,
        label=label,
        on_faces=sum(s.on_faces for s in scores),
        predictions=sum(s.predictions for s in scores),
    )


@dataclass(frozen=True)
class TrackFigures:
    """How often one clip face (by ground-truth id) went unmasked."""

    face_id: int
    frames: int
    uncovered_frames: int
    longest_uncovered_run: int


def per_face_over_time(scores: Sequence[FrameScore]) -> list[TrackFigures]:
    """For clip frames scored in order: per ground-truth id, the frames it was left uncovered."""
    history: dict[int, list[bool]] = {}
    for s in scores:
        if s.ids is None:
            raise ValueError("per-face results need frame scores with ids (clip ground truth)")
        for face_id, ok in zip(s.ids.tolist(), s.covered.tolist()):
            history.setdefault(face_id, []).append(ok)
    out = []
    for face_id, seen in sorted(history.items()):
        run = longest = 0
        for ok in seen:
            run = 0 if ok else run + 1
            longest = max(longest, run)
        out.append(TrackFigures(face_id, len(seen), seen.count(False), longest))
    return out


FramePredictor = Callable[[np.ndarray], tuple[Detections, MaskRegions | np.ndarray]]


def evaluate(truths: Iterable[FrameTruth], images: str | Path, config: Config = Config(),
             predictor: FramePredictor | None = None, label: str = "",
             progress: Callable[[int], None] | None = None) -> EvalReport:
    """Run veil (or `predictor`: pixels -> detections and masks) over annotated images and score it.

    The time counted is detection and planning only, not decoding, so images/second measures the
    detector rather than the JPEG library.
    """
    from .media.image import read_image
    from .pipeline import scan_image

    if predictor is None:
        def predictor(pixels: np.ndarray) -> tuple[Detections, MaskRegions | np.ndarray]:
            return scan_image(pixels, config)

    images = Path(images)
    scores = []
    seconds = 0.0
    for i, truth in enumerate(truths):
        pixels = read_image(images / truth.image, config.max_pixels).pixels
        if pixels.shape[:2] != (truth.height, truth.width):
            raise ValueError(f"{truth.image} is {pixels.shape[1]}x{pixels.shape[0]}, "
                             f"annotated as {truth.width}x{truth.height}")
        started = time.perf_counter()
        detections, plan = predictor(pixels)
        seconds += time.perf_counter() - started
        scores.append(score_plan(truth, detections, plan))
        if progress:
            progress(i + 1)
    return summarise(scores, seconds, label)


def format_table(reports: Sequence[EvalReport]) -> str:
    """A Markdown table, one row per report: covered recall and recall per bucket, then the rest."""
    names = [b.name for b in reports[0].buckets] if reports else []
    head = (["", *[f"covered {n}" for n in names], *[f"IoU.5 {n}" for n in names],
             "precision", "loose precision", "mask/face area", "images/s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [r.label or "-"]
        cells += [_fmt(b.covered_recall) for b in r.buckets]
        cells += [_fmt(b.recall) for b in r.buckets]
        cells += [_fmt(r.precision), _fmt(r.loose_precision), f"{r.area_ratio:.2f}x",
                  f"{r.frames_per_second:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if reports:
        counts = ", ".join(f"{b.name}: {b.faces}" for b in reports[0].buckets)
        lines.append(f"\nfaces per bucket: {counts}; frames: {reports[0].frames}")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


__all__ = [
    "SIZE_BUCKETS", "SizeBucket", "FrameTruth", "FrameScore", "BucketFigures", "EvalReport",
    "TrackFigures", "read_annotations", "read_clip_truth", "score_frame", "score_plan", "summarise",
    "evaluate", "format_table", "per_face_over_time", "match_one_to_one", "covered_fractions",
    "boxes_coverage",
]
