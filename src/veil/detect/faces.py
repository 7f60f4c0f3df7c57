"""The CenterFace detector (ONNX, via onnxruntime), run over scales, tiles and flips."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._errors import ModelError
from .._types import Detections
from ..geometry import iou_matrix, touches_edge
from .model import fp32_model, network_input
from .nms import nms

# Face-height edges (frame pixels) of the score-threshold tiers: the README's size buckets.
SIZE_EDGES: tuple[float, ...] = (16.0, 32.0, 64.0)


@dataclass(frozen=True)
class DetectorSettings:
    """How hard the detector looks: which scales, tiles and flips it runs and what it keeps.

    thresholds hold one score threshold per detected face height (frame pixels): < 16, 16-32,
    32-64 and >= 64 px. Small faces get low thresholds because CenterFace scores them low and a
    false mask on a small box costs little image area; large false boxes cost a lot, so they need
    more evidence. The tuned values per preset are in `veil.presets`.
    """

    thresholds: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.2)
    scales: tuple[float, ...] = (1.0,)  # image scale factors; 1.5-2.0 look for faces under ~16 px
    max_side: int = 0  # if > 0, the image is first downscaled so its longer side is at most this
    large_face_side: int = 640  # an extra pass at this longer side finds faces too big for the net
    # Coarser passes still, at these longer sides, for a face that fills the frame: a 720 px
    # close-up is still 360 px tall at 640, past where CenterFace scores faces well.
    coarse_sides: tuple[int, ...] = ()
    # The coarse passes' boxes are kept only from this score on: they are large, so a false one
    # masks much of the picture, and a face filling the frame scores high there.
    coarse_min_score: float = 0.0
    # An up-scaled pass (scale > 1) drops its boxes at least this tall (frame pixels; 0: off). It
    # runs to find faces under ~16 px; a face this tall is one the passes at and under full scale
    # see at a size the network scores well, while the up-scaled pass sees it past that size, and
    # what it frames that large is mostly texture (thorough: dev area 3.07x -> 2.99x in
    # benchmarks/thorough_replay.py, every face kept on the dev, rotated and close-up sets).
    upscaled_max_height: float = 0.0
    tile: int = 1536  # a scaled image larger than this on a side is cut into overlapping tiles
    tile_overlap: int = 192
    # Drop a tile's boxes that reach one of its inner edges (a seam with the next tile). A face up
    # to tile_overlap px tall that the seam cuts lies whole in the next tile, and a larger one is
    # the coarser passes' to find; what a tile sees cut at its seam is half an object, and the
    # network takes half a torso for a large face (a phone selfie with thorough: mean masked share
    # 0.424 -> 0.338, every dev bucket as before; docs/benchmarks.md, "Video and real footage").
    seam_drop: bool = True
    # Also run on the mirrored image (test-time augmentation). A box's score becomes the mean of its
    # best match in each view, so a face seen twice outranks a texture seen once.
    flip: bool = False
    nms_iou: float = 0.4
    # The INT8 graph (detect/quantize.py): about 0.6x the time, with its own thresholds (video).
    int8: bool = False
    # A box touching the image's edge is kept at this fraction of its tier's threshold: a face
    # cut off by the frame shows only part of itself and scores lower (1.0: no difference).
    edge_scale: float = 1.0
    # Support across passes (0: off). A box at least support_min_height px tall that scores under
    # its tier's threshold is still kept when at least this many passes hold a box over it (IoU
    # >= 0.5, its own included, each from support_floor) and their best scores together,
    # 1 - prod(1 - best), reach the threshold. A blurred or unusual large face scores low in
    # every pass but is seen in each; a texture mostly in one or two.
    support_passes: int = 0
    support_floor: float = 0.02
    support_min_height: float = 64.0
    # Support for faces cut off by the image's edge (0: off). A box touching the edge, at least
    # edge_support_min_height px tall, from any pass (the coarse ones too, whatever their floor),
    # under what it would need, is kept when at least this many passes hold a box over it at IoU
    # >= edge_support_iou and their best scores together reach its tier's threshold. Why looser
    # than support_passes: the network sees only part of a cut face, scores it low and frames
    # that part differently at each scale, and the coarse passes, which see a cut close-up at
    # their comfortable size, are often its best witness.
    edge_support_passes: int = 0
    edge_support_iou: float = 0.4
    edge_support_min_height: float = 48.0

    def __post_init__(self) -> None:
        thresholds = tuple(float(t) for t in self.thresholds)
        if len(thresholds) != len(SIZE_EDGES) + 1 or not all(0.0 < t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be {len(SIZE_EDGES) + 1} scores in (0, 1), got {thresholds}")
        if not 0.0 < self.edge_scale <= 1.0:
            raise ValueError(f"edge_scale must be in (0, 1], got {self.edge_scale}")
        if self.support_passes < 0 or not 0.0 < self.support_floor < 1.0:
            raise ValueError(f"support_passes must be >= 0 and support_floor in (0, 1), got "
                             f"{self.support_passes} and {self.support_floor}")
        if self.edge_support_passes < 0 or not 0.0 < self.edge_support_iou <= 1.0:
            raise ValueError(f"edge_support_passes must be >= 0 and edge_support_iou in (0, 1], got "
                             f"{self.edge_support_passes} and {self.edge_support_iou}")
        if self.upscaled_max_height < 0:
            raise ValueError(f"upscaled_max_height must be >= 0, got {self.upscaled_max_height}")
        object.__setattr__(self, "thresholds", thresholds)

    @property
    def threshold(self) -> float:
        """The lowest score a face away from the image's edge can be kept at."""
        return min(self.thresholds)

    @property
    def decode_floor(self) -> float:
        """The lowest score a pass decodes a box at, away from the edge: with flip, half the lowest
        threshold, so a face just under it in one view still adds to the fused score; with
        support (across passes or at the edge), support_floor, so weak boxes can vouch for a box
        in another pass."""
        floor = self.threshold / 2 if self.flip else self.threshold
        return min(floor, self.support_floor) if self.support_passes or self.edge_support_passes else floor

    def tier_thresholds(self, heights: np.ndarray) -> np.ndarray:
        """Each box height's size-tier threshold."""
        return np.asarray(self.thresholds, np.float32)[np.searchsorted(np.asarray(SIZE_EDGES), heights, side="right")]

    def keep(self, detections: Detections, width: int | None = None, height: int | None = None
             ) -> np.ndarray:
        """Boolean mask of detections whose score reaches their size tier's threshold (scaled by
        edge_scale for boxes touching the edge of a width x height image, when given)."""
        needed = self.tier_thresholds(detections.heights)
        if self.edge_scale < 1.0 and width is not None and height is not None:
            edge = touches_edge(detections.boxes, width, height)
            needed = np.where(edge, needed * np.float32(self.edge_scale), needed)
        return detections.scores >= needed




@lru_cache(maxsize=1)
def _int8_bytes() -> bytes | None:
    """The checked INT8 graph, or None where fp32 must run (a CPU without exact 8-bit sums, or a
    graph that differs from the measured one)."""
    from .quantize import int8_model, int8_suits_cpu

    if not int8_suits_cpu():
        return None  # expected on such CPUs, so no warning: only the speed differs
    data = int8_model(fp32_model())
    if data is None:
        warnings.warn("the INT8 face detector built here differs from the one veil measured "
                      "(onnxruntime or onnx is not the pinned version); using fp32, which is slower",
                      RuntimeWarning, stacklevel=4)
    return data


def int8_available() -> bool:
    """Whether the hash-checked INT8 graph runs here (else INT8 settings run fp32)."""
    return _int8_bytes() is not None


@lru_cache(maxsize=4)
def _session(threads: int, int8: bool = False):  # type: ignore[no-untyped-def]
    """One onnxruntime session per thread count and precision."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a hard dependency
        raise ModelError(f"onnxruntime is required: {exc}") from exc
    model = _int8_bytes() if int8 else None
    if int8 and model is None:
        return _session(threads, False)  # the fp32 fallback: one fp32 session, not a second copy
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
    # Idle worker threads sleep instead of spinning: in video the detector shares the CPU with
    # the decoder and x264, and spinning cost ~20% of throughput (10.5 vs 12.5-13.1 fps, 720p, fast).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model if int8 else fp32_model().SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def _tiles(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _at_seam(boxes: np.ndarray, x0: int, y0: int, width: int, height: int, image_width: int,
             image_height: int, tolerance: float = 2.0) -> np.ndarray:
    """Which boxes of the tile at (x0, y0), width x height (boxes in the tile's pixels), reach one
    of its inner edges: an edge that is not also the image's."""
    seam = np.zeros(len(boxes), bool)
    if x0 > 0:
        seam |= boxes[:, 0] <= tolerance
    if y0 > 0:
        seam |= boxes[:, 1] <= tolerance
    if x0 + width < image_width:
        seam |= boxes[:, 2] >= width - tolerance
    if y0 + height < image_height:
        seam |= boxes[:, 3] >= height - tolerance
    return seam


def _from_coarse(passes: list[Detections], scales: list[float], coarse: list[float]) -> np.ndarray:
    """Per box of the passes concatenated in order, whether a coarse pass found it."""
    return np.concatenate([np.full(len(p), scale in coarse) for scale, p in zip(scales, passes)])


class FaceDetector:
    """CenterFace over a configurable set of passes; merges the passes with NMS."""

    def __init__(self, settings: DetectorSettings | None = None, threads: int = 0) -> None:
        self.settings = settings or DetectorSettings()
        self._session = _session(threads, self.settings.int8)
        self._lock = threading.Lock()

    def __call__(self, frame: np.ndarray) -> Detections:
        return self.with_evidence(frame)[0]

    def with_evidence(self, frame: np.ndarray) -> tuple[Detections, Detections]:
        """The faces kept, and every box each pass decoded (at `decode_floor`, before thresholds
        and NMS): what the passes saw, for a caller that weighs a box against them (`Rotated`)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        s = self.settings
        height, width = frame.shape[:2]
        coarse = self._coarse_scales(width, height)
        scales = self.passes(width, height)
        raw = [self._capped(self._detect_pass(frame, scale), scale) for scale in scales]
        everything = Detections.concat(raw)
        parts = []
        for scale, found in zip(scales, raw):
            if scale in coarse and s.coarse_min_score > 0:
                found = found[found.scores >= s.coarse_min_score]
            parts.append(found)
        merged = Detections.concat(parts)
        if len(merged) == 0:
            return merged, everything
        normal = s.keep(merged)
        kept = merged[normal]
        found = kept[nms(kept.boxes, kept.scores, s.nms_iou)] if len(kept) else kept
        if s.support_passes:
            from_coarse = _from_coarse(parts, scales, coarse)
            weak = merged[~normal & ~from_coarse & (merged.heights >= s.support_min_height)]
            count, support = pass_support(weak.boxes, raw)
            backed = (count >= s.support_passes) & (support >= s.tier_thresholds(weak.heights))
            found = Detections.concat([found, self._added(weak[backed], found)])
        if s.edge_support_passes:
            cut = self._cut_faces(raw, everything, scales, coarse, width, height)
            found = Detections.concat([found, self._added(cut, found)])
        if s.edge_scale < 1.0:
            extra = merged[s.keep(merged, width, height) & ~normal]
            found = Detections.concat([found, self._added(extra, found)])
        return found, everything

    def _capped(self, found: Detections, scale: float) -> Detections:
        """An up-scaled pass's boxes less those of `upscaled_max_height` and more."""
        cap = self.settings.upscaled_max_height
        if cap > 0 and scale > 1.0 + 1e-6 and len(found):
            return found[found.heights < cap]
        return found

    def _cut_faces(self, raw: list[Detections], boxes: Detections, scales: list[float], coarse: list[float],
                   width: int, height: int) -> Detections:
        """Boxes at the image's edge that the thresholds and the coarse floor dropped but that
        enough passes hold (DetectorSettings.edge_support_passes); `boxes` is `raw` concatenated."""
        s = self.settings
        if len(boxes) == 0:
            return boxes
        from_coarse = _from_coarse(raw, scales, coarse)
        kept = s.keep(boxes) & (~from_coarse | (boxes.scores >= s.coarse_min_score))
        weak = boxes[~kept & touches_edge(boxes.boxes, width, height)
                     & (boxes.heights >= s.edge_support_min_height)]
        count, support = pass_support(weak.boxes, raw, s.edge_support_iou)
        return weak[(count >= s.edge_support_passes) & (support >= s.tier_thresholds(weak.heights))]

    def _added(self, extra: Detections, found: Detections) -> Detections:
        """Boxes a rule keeps beyond the thresholds (the edge rule, support across passes and at
        the edge), less those over a face found.

        They are added after the others' NMS, so that one never suppresses a box that the
        thresholds alone would keep: these rules only add boxes.
        """
        s = self.settings
        if len(extra) == 0:
            return extra
        extra = extra[nms(extra.boxes, extra.scores, s.nms_iou)]
        if len(found):
            extra = extra[iou_matrix(extra.boxes, found.boxes).max(axis=1) < s.nms_iou]
        return extra

    def _coarse_scales(self, width: int, height: int) -> list[float]:
        """The scales of the coarse passes that run on their own (not shared with another pass)."""
        without = self.passes(width, height, coarse=False)
        return [p for p in self.passes(width, height)
                if all(abs(p - q) > 1e-6 for q in without)]

    def passes(self, width: int, height: int, coarse: bool = True) -> list[float]:
        """The image scales this detector runs on a frame of this size, smallest first."""
        s = self.settings
        base = 1.0
        if s.max_side and max(height, width) > s.max_side:
            base = s.max_side / max(height, width)
        passes = sorted({base * scale for scale in s.scales})
        for side in (s.large_face_side, *(s.coarse_sides if coarse else ())):
            if side and max(height, width) > side * 1.25:
                large = side / max(height, width)
                if all(abs(large - p) > 1e-6 for p in passes):
                    passes.append(large)
        return sorted(passes)

    def _detect_pass(self, frame: np.ndarray, scale: float) -> Detections:
        """One scale, and with flip on its mirror too, the two views' scores fused."""
        found = self._detect_scaled(frame, scale)
        if not self.settings.flip:
            return found
        mirrored = self._detect_scaled(np.ascontiguousarray(frame[:, ::-1]), scale)
        return fuse_views([found, _unflip(mirrored, frame.shape[1])])

    def _detect_scaled(self, frame: np.ndarray, scale: float) -> Detections:
        height, width = frame.shape[:2]
        if abs(scale - 1.0) > 1e-6:
            sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
            image = _resize(frame, sw, sh)
            sx, sy = width / sw, height / sh
        else:
            image, sx, sy = frame, 1.0, 1.0
        ih, iw = image.shape[:2]
        parts = []
        tile, overlap = self.settings.tile, self.settings.tile_overlap
        for y0 in _tiles(ih, tile, overlap):
            for x0 in _tiles(iw, tile, overlap):
                crop = image[y0:y0 + tile, x0:x0 + tile]
                found = self._run(crop)
                if self.settings.seam_drop and (iw > tile or ih > tile):
                    found = found[~_at_seam(found.boxes, x0, y0, crop.shape[1], crop.shape[0], iw, ih)]
                parts.append(found.scaled(1.0, 1.0, x0, y0))
        found = Detections.concat(parts)
        return found.scaled(sx, sy)

    def _run(self, image: np.ndarray) -> Detections:
        """One forward pass on an RGB image; boxes in that image's pixels."""
        h, w = image.shape[:2]
        blob = network_input(image)
        with self._lock:  # one session is shared; onnxruntime parallelises inside the call
            heatmap, scale, offset, lms = self._session.run(None, {"input.1": blob})
        s = self.settings
        floor = s.decode_floor
        return _decode(heatmap, scale, offset, lms, w, h, floor, floor * s.edge_scale)


def _decode(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray,
            width: int, height: int, threshold: float, edge_threshold: float | None = None
            ) -> Detections:
    """Boxes from CenterFace's maps: every cell over `threshold`, or over `edge_threshold` where
    its box reaches the image's edge; NMS at IoU 0.3."""
    floor = threshold if edge_threshold is None else min(threshold, edge_threshold)
    ys, xs = np.nonzero(heatmap[0, 0] > floor)
    if len(ys) == 0:
        return Detections.empty()
    score = heatmap[0, 0, ys, xs]
    bh = np.exp(scale[0, 0, ys, xs]) * 4
    bw = np.exp(scale[0, 1, ys, xs]) * 4
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
    x1 = np.clip(cx - bw / 2, 0, width)
    y1 = np.clip(cy - bh / 2, 0, height)
    x2 = np.clip(cx + bw / 2, 0, width)
    y2 = np.clip(cy + bh / 2, 0, height)
    boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
    landmarks = np.empty((len(ys), 10), np.float32)
    landmarks[:, 0::2] = lms[0][1::2][:, ys, xs].T * bw[:, None] + (cx - bw / 2)[:, None]
    landmarks[:, 1::2] = lms[0][0::2][:, ys, xs].T * bh[:, None] + (cy - bh / 2)[:, None]
    # A box wholly in the zero padding clips to nothing: not in the picture (the INT8 graph's
    # low thresholds let some through, and a zero-width box is no valid plan-file region).
    inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if floor < threshold:  # cells under the threshold count only for boxes at the edge
        inside &= (score > threshold) | touches_edge(boxes, width, height)
    boxes, score, landmarks = boxes[inside], score[inside], landmarks[inside]
    keep = nms(boxes, score, 0.3)
    return Detections(boxes[keep], score[keep].astype(np.float32), landmarks[keep])


def pass_support(boxes: np.ndarray, passes: list[Detections], match_iou: float = 0.5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per box (N, 4): how many passes hold a box over it (IoU >= match_iou), and the passes'
    best scores there combined as 1 - prod(1 - best), the chance that at least one is right if
    each pass were an independent witness."""
    count = np.zeros(len(boxes), np.int64)
    miss = np.ones(len(boxes), np.float64)
    if len(boxes) == 0:
        return count, 1.0 - miss
    for found in passes:
        if len(found) == 0:
            continue
        best = np.where(iou_matrix(boxes, found.boxes) >= match_iou, found.scores[None, :], 0.0).max(axis=1)
        count += best > 0
        miss *= 1.0 - best
    return count, 1.0 - miss


def fuse_views(views: list[Detections], match_iou: float = 0.4) -> Detections:
    """Every box of every view, scored by the mean over views of its best match there (0 if none).

    A face found in the image and its mirror keeps about its score; a one-view blip is halved.
    """
    merged = Detections.concat(views)
    if len(merged) == 0:
        return merged
    fused = np.zeros(len(merged), np.float64)
    for view in views:
        if len(view) == 0:
            continue
        ious = iou_matrix(merged.boxes, view.boxes)
        fused += np.where(ious >= match_iou, view.scores[None, :], 0.0).max(axis=1)
    return Detections(merged.boxes, (fused / len(views)).astype(np.float32), merged.landmarks,
                      merged.track_ids, merged.sources)


def _unflip(found: Detections, width: int) -> Detections:
    boxes = found.boxes.copy()
    boxes[:, [0, 2]] = width - found.boxes[:, [2, 0]]
    lm = found.landmarks.copy()
    lm[:, 0::2] = width - lm[:, 0::2]
    return Detections(boxes, found.scores, lm, found.track_ids, found.sources)
