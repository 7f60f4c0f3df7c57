"""The data that flows between veil's stages: Detections, MaskRegions, Config and reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import xyxy_to_xywh


class MaskStyle(str, enum.Enum):
    """How a masked region's pixels are replaced."""

    SOLID = "solid"  # a flat colour: nothing of the face survives
    NOISE = "noise"  # fresh random pixels: nothing of the face survives
    MOSAIC = "mosaic"  # coarse blocks: can be partly reversed by recognition networks
    BLUR = "blur"  # a Gaussian blur: can be partly reversed by recognition networks

    @property
    def reversible(self) -> bool:
        return self in (MaskStyle.MOSAIC, MaskStyle.BLUR)


class MaskShape(str, enum.Enum):
    BOX = "box"
    ELLIPSE = "ellipse"


class DetectPreset(str, enum.Enum):
    """Named speed/recall trade-offs for the face detector."""

    FAST = "fast"
    BALANCED = "balanced"
    THOROUGH = "thorough"


class RegionSource(enum.IntEnum):
    """Why a mask region exists, for reports and the review app."""

    DETECTED = 0
    TRACKED = 1  # interpolated or extrapolated by the tracker between detections
    MANUAL = 2  # added by the user in a plan file


def _as_array(value: Any, dtype: Any, shape_tail: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    return arr


def _column(value: Any, dtype: Any, n: int, fill: float) -> np.ndarray:
    """A per-row column; left empty, it is `fill` on every one of the n rows."""
    arr = _as_array(value, dtype, ())
    return np.full(n, fill, dtype) if len(arr) == 0 and n else arr


@dataclass(frozen=True, eq=False)
class Detections:
    """Faces found in one frame, as parallel arrays with one row per face.

    boxes are (x1, y1, x2, y2) floats in pixels of the upright frame; track_ids are -1 where no
    tracker has run; sources say whether a detector found the face or the tracker carried it.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 10), np.float32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    def __post_init__(self) -> None:
        boxes = _as_array(self.boxes, np.float32, (4,))
        n = len(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
        scores = _as_array(self.scores, np.float32, ())
        landmarks = _as_array(self.landmarks, np.float32, (10,))
        if len(landmarks) == 0 and n:
            landmarks = np.full((n, 10), np.nan, np.float32)
        track_ids = _column(self.track_ids, np.int64, n, -1)
        sources = _column(self.sources, np.int8, n, int(RegionSource.DETECTED))
        for name, arr in (("scores", scores), ("landmarks", landmarks), ("track_ids", track_ids),
                          ("sources", sources)):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows but boxes has {n}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "track_ids", track_ids)
        object.__setattr__(self, "sources", sources)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.track_ids for p in parts]),
            np.concatenate([p.sources for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index],
                          self.track_ids[index], self.sources[index])

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Detections:
        """Map boxes and landmarks by x' = x*sx + dx, y' = y*sy + dy."""
        boxes = self.boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([dx, dy, dx, dy], np.float32)
        lm = self.landmarks.copy()
        lm[:, 0::2] = lm[:, 0::2] * sx + dx
        lm[:, 1::2] = lm[:, 1::2] * sy + dy
        return replace(self, boxes=boxes, landmarks=lm)


@dataclass(frozen=True, eq=False)
class MaskRegions:
    """The regions to mask in one frame, in whole pixels of the upright frame.

    boxes are (x0, y0, x1, y1) integers with x1, y1 exclusive and already clipped to the frame,
    so a region touching an edge includes the last row or column.
    """

    boxes: np.ndarray
    shape: MaskShape = MaskShape.BOX
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sources: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    def __post_init__(self) -> None:
        boxes = _as_array(self.boxes, np.int64, (4,))
        n = len(boxes)
        track_ids = _column(self.track_ids, np.int64, n, -1)
        sources = _column(self.sources, np.int8, n, int(RegionSource.DETECTED))
        if len(track_ids) != n or len(sources) != n:
            raise ValueError("track_ids and sources must have one entry per box")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "track_ids", track_ids)
        object.__setattr__(self, "sources", sources)

    @classmethod
    def empty(cls, shape: MaskShape = MaskShape.BOX) -> MaskRegions:
        return cls(np.zeros((0, 4), np.int64), shape)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> MaskRegions:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return MaskRegions(self.boxes[index], self.shape, self.track_ids[index], self.sources[index])

    def xywh(self) -> list[list[int]]:
        """The regions as x, y, w, h lists of ints: the form reports and plan files use."""
        return xyxy_to_xywh(self.boxes).tolist()

    def mask_area(self, width: int, height: int) -> int:
        """Pixels covered by the union of regions (boxes), for over-masking figures."""
        covered = np.zeros((height, width), bool)
        for x0, y0, x1, y1 in self.boxes:
            covered[y0:y1, x0:x1] = True
        return int(covered.sum())


@dataclass(frozen=True)
class Config:
    """Every setting of a redaction run; frozen so a run cannot change under its own feet."""

    mask: MaskStyle = MaskStyle.SOLID
    shape: MaskShape = MaskShape.BOX
    detect: DetectPreset = DetectPreset.BALANCED
    threshold: float | None = None  # None: the preset's calibrated threshold
    # Margins relative to the detected box, chosen so the mask covers hair, forehead, ears and chin.
    # CenterFace's boxes match WIDER's face boxes (brow to chin, cheek to cheek) within ~5 % at the
    # median, so the head needs most room above (hair) and some at the sides (ears). At these values
    # the balanced preset masks ~2.6x the annotated face area on WIDER dev (benchmarks/eval_recall.py);
    # fast and balanced scale them for boxes they are sure of (presets.SURE_MARGINS): ~2.15x.
    margin_x: float = 0.25
    margin_top: float = 0.40
    margin_bottom: float = 0.20
    min_mask_px: int = 4  # never plan a region smaller than this on a side
    keep_metadata: bool = False
    keep_gps: bool = False
    keep_icc: bool = False  # without it, colour is converted to sRGB and the profile dropped
    max_pixels: int = 150_000_000  # refuse larger images before decoding (decompression bombs)
    jpeg_quality: int = 95
    # Video settings, used by the video pipeline.
    quality: int = 18  # x264 CRF
    drop_audio: bool = False
    track_gap_s: float = 0.5
    # A track detected twice, once with confidence (see track.TrackerSettings.hold_min_score),
    # stays masked this long after the detector loses it; other tracks for track_gap_s.
    track_hold_s: float = 1.0
    track_pad_frames: int = 3
    threads: int = 0  # 0: onnxruntime chooses
    # A video that ends before its container says it should (cut off) fails unless this is set;
    # then the part that decodes is written and the report says how much that was.
    salvage: bool = False
    # Video from a camera that rolls (head-worn, handheld): also look for faces turned 90 and 270
    # degrees (detect/rotate.py), at about 3x the detector's time. Stills: presets.ROTATIONS.
    roll: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", MaskStyle(self.mask))
        object.__setattr__(self, "shape", MaskShape(self.shape))
        object.__setattr__(self, "detect", DetectPreset(self.detect))
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        for name in ("margin_x", "margin_top", "margin_bottom", "track_gap_s", "track_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.keep_gps and not self.keep_metadata:
            raise ValueError("keep_gps needs keep_metadata")


@dataclass(frozen=True)
class FaceRecord:
    """One masked face, as `veil scan` reports it."""

    box: tuple[float, float, float, float]  # x, y, w, h of the detection
    score: float
    mask: tuple[int, int, int, int]  # x, y, w, h of the region veil masks
    track: int = -1
    source: RegionSource = RegionSource.DETECTED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "mask": list(self.mask),
        }
        return out


@dataclass(frozen=True)
class FrameScan:
    """What veil found and would mask in one image or video frame."""

    path: Path
    frame: int
    width: int
    height: int
    faces: tuple[FaceRecord, ...]
    time: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "frame": self.frame}
        if self.time is not None:
            out["time"] = round(self.time, 6)
        out.update({"width": self.width, "height": self.height})
        faces = []
        for f in self.faces:
            d = f.to_json()
            if self.time is not None:
                d["track"] = f.track
            faces.append(d)
        out["faces"] = faces
        return out


@dataclass(frozen=True)
class Salvaged:
    """A cut-off video written as far as it decodes (`--salvage`): how far that was.

    The copy is shorter than the original says it is; the report carries this so that nobody
    takes it for the whole recording.
    """

    decoded_s: float  # the end of the last frame decoded, in seconds
    stated_s: float  # the length the container states
    frames: int  # frames decoded and written

    def to_json(self) -> dict[str, Any]:
        return {"decoded_s": self.decoded_s, "stated_s": self.stated_s, "frames": self.frames}


@dataclass(frozen=True)
class FileReport:
    """The outcome for one input file."""

    path: Path
    output: Path | None
    ok: bool
    kind: str = "image"
    frames: int = 0
    faces: int = 0
    faces_per_frame: tuple[int, ...] = ()
    tracked_frames: int = 0  # frames holding at least one interpolated or extrapolated mask
    low_score_frames: int = 0  # frames with a mask a detection under report.LOW_SCORE made
    lowest_score: float | None = None
    seconds: float = 0.0
    error: str | None = None
    audit: dict[str, Any] | None = None
    salvaged: Salvaged | None = None  # set when --salvage wrote the part of a cut-off video that decodes

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "output": str(self.output) if self.output else None,
            "ok": self.ok,
            "kind": self.kind,
            "frames": self.frames,
            "faces": self.faces,
            "faces_per_frame": list(self.faces_per_frame),
            "frames_with_tracked_masks": self.tracked_frames,
            "frames_with_low_confidence_masks": self.low_score_frames,
            "lowest_score": None if self.lowest_score is None else round(self.lowest_score, 4),
            "seconds": round(self.seconds, 3),
            "error": self.error,
            **({"audit": self.audit} if self.audit is not None else {}),
            **({"salvaged": self.salvaged.to_json()} if self.salvaged is not None else {}),
        }
