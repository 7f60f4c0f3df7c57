"""Turns detections into mask regions: margins relative to face size and exact edge clipping."""

from __future__ import annotations

import numpy as np

from ._types import Config, Detections, MaskRegions


# (score at least, factor on Config's margins[, unless the box is at least this share of the
# frame's height]) for boxes the detector is sure of; None: none (presets.SURE_MARGINS).
SureMargins = tuple[float, float] | tuple[float, float, float] | None


def expand_boxes(boxes: np.ndarray, config: Config, grow: np.ndarray | float = 0.0,
                 scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Add the head margins, times `scale`, to xyxy face boxes; `grow` adds a further fraction for
    uncertainty."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    grow = np.asarray(grow, np.float32)
    scale = np.asarray(scale, np.float32)
    mx = (config.margin_x * scale + grow) * w
    return np.stack([
        boxes[:, 0] - mx,
        boxes[:, 1] - (config.margin_top * scale + grow) * h,
        boxes[:, 2] + mx,
        boxes[:, 3] + (config.margin_bottom * scale + grow) * h,
    ], axis=1)


def margin_scale(scores: np.ndarray, sure: SureMargins, heights: np.ndarray | None = None,
                 frame_height: int = 0) -> np.ndarray:
    """Per box, the factor on the margins: the preset's (presets.SURE_MARGINS) for boxes the
    detector is sure of, else 1.

    Why: a high-score box sits on the face (CenterFace's boxes match annotated faces within ~5 %
    at the median, and closest when it is sure), so full margins there only add area; low-score
    and tracker-carried boxes (score 0) are less certain of where the face is and keep them all.
    So does a box filling the given share of the frame's height (box `heights` in a frame
    `frame_height` high): a face that close is past the network's comfortable size, and its box
    is looser.
    """
    scores = np.asarray(scores, np.float32)
    if sure is None:
        return np.ones(len(scores), np.float32)
    threshold, factor = sure[0], sure[1]
    sure_box = scores >= threshold
    if len(sure) > 2 and heights is not None and frame_height > 0:
        sure_box &= np.asarray(heights, np.float32) < sure[2] * frame_height  # type: ignore[misc]
    return np.where(sure_box, np.float32(factor), np.float32(1.0))


def clip_regions(regions: np.ndarray, width: int, height: int, min_px: int = 1) -> np.ndarray:
    """Round outwards to whole pixels and clip to the frame, end-exclusive.

    floor/ceil rounding means a region never shrinks below the float box it came from, and a
    region reaching the right or bottom edge ends at width/height, so the last column and row
    are masked too.
    """
    if len(regions) == 0:
        return np.zeros((0, 4), np.int64)
    x0 = np.floor(regions[:, 0])
    y0 = np.floor(regions[:, 1])
    x1 = np.ceil(regions[:, 2])
    y1 = np.ceil(regions[:, 3])
    # Enforce a minimum size around the centre so a tiny detection still gets a visible mask.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = min_px / 2
    x0 = np.minimum(x0, np.floor(cx - half))
    x1 = np.maximum(x1, np.ceil(cx + half))
    y0 = np.minimum(y0, np.floor(cy - half))
    y1 = np.maximum(y1, np.ceil(cy + half))
    out = np.stack([
        np.clip(x0, 0, width), np.clip(y0, 0, height),
        np.clip(x1, 0, width), np.clip(y1, 0, height),
    ], axis=1).astype(np.int64)
    return out


def face_regions(boxes: np.ndarray, width: int, height: int, config: Config,
                 grow: np.ndarray | float = 0.0, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """The whole-pixel region veil masks for each xyxy face box, one row per box (a box wholly
    outside the frame gets an empty region; `rows_and_regions` drops those)."""
    return clip_regions(expand_boxes(np.asarray(boxes, np.float32).reshape(-1, 4), config, grow,
                                     scale), width, height, config.min_mask_px)


def rows_and_regions(detections: Detections, width: int, height: int, config: Config,
                     grow: np.ndarray | float = 0.0, sure: SureMargins = None
                     ) -> tuple[MaskRegions, Detections]:
    """The regions veil masks for these detections, and the detections they came from, aligned
    row for row (a region wholly outside the frame is dropped with its detection). `sure` scales
    the margins of boxes the detector is sure of (`margin_scale`)."""
    if len(detections) == 0:
        return MaskRegions.empty(config.shape), detections
    boxes = face_regions(detections.boxes, width, height, config, grow,
                         margin_scale(detections.scores, sure, detections.heights, height))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    kept = detections[keep]
    return MaskRegions(boxes[keep], config.shape, kept.track_ids, kept.sources), kept


def mask_regions(detections: Detections, width: int, height: int, config: Config,
                 grow: np.ndarray | float = 0.0, sure: SureMargins = None) -> MaskRegions:
    """The regions veil masks for these detections in a frame of the given size."""
    return rows_and_regions(detections, width, height, config, grow, sure)[0]
