"""Confirmation of a second-detector hit: a zoomed re-scan of that spot by veil's own detector.

dlib's HOG fires, now and then, on mission patches, printed signs and the backs of ears. Outside
every mask, such a hit made the audit fail a clean output, and an audit that cries wolf gets
ignored. A real face, cropped with its surroundings and enlarged to the size CenterFace likes
best, is found again by veil's detector even at a very low threshold; a texture that fooled HOG
(another model family, other features) almost never is. So a hit counts as "a face is probably
visible" when it is strong by HOG's own score, or when the zoomed re-scan confirms it; otherwise it
is listed for review and does not fail the audit.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..detect.faces import DetectorSettings
from ..geometry import iou_matrix

# The hit is enlarged (or shrunk) so its longer side is this many pixels: well inside the range
# where CenterFace scores faces highest, whatever the face's size in the frame.
ZOOM_FACE_PX = 80
# Context kept around the hit, in hit widths/heights on each side: the detector needs a head's
# surroundings (hair, neck) to score it as a face.
CONTEXT = 1.0
# One plain pass over the small crop, at a threshold far below any preset's: a texture scores
# under it, a face seen at a good size scores far above (see CONFIRM_SCORE).
ZOOM_SETTINGS = DetectorSettings(thresholds=(0.02, 0.02, 0.02, 0.02), scales=(1.0,),
                                 large_face_side=0)
# A zoomed re-scan box is the hit's face when the two overlap at least this much.
SAME_FACE_IOU = 0.3
# A hit is confirmed when veil's zoomed score reaches this. On the 183 dev photos' originals
# (`benchmarks/bench_audit.py --hog-hits`), dlib HOG's 226 hits on ground-truth faces zoom-score
# 0.41 to 0.97 (a tenth of them under 0.8), its 2 hits elsewhere 0.13 and 0.0; the demo photo's
# mission patch scores 0.0. The bound sits between, nearer the non-faces.
CONFIRM_SCORE = 0.25
# A HOG hit scoring at least this is a finding without confirmation, in case the re-scan misses a
# real face. HOG's non-face hits above scored 0.08 and 0.15, the mission patch 0.11-0.16; about
# three quarters of its hits on true faces score higher than this.
STRONG_HOG_SCORE = 0.5


def zoomed_crop(pixels: np.ndarray, box: np.ndarray | tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """The hit with CONTEXT around it, scaled so the hit is ZOOM_FACE_PX: (crop, hit's xyxy in it)."""
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    cx0, cy0 = max(0, x0 - int(CONTEXT * w)), max(0, y0 - int(CONTEXT * h))
    cx1, cy1 = min(width, x1 + int(CONTEXT * w)), min(height, y1 + int(CONTEXT * h))
    crop = pixels[cy0:cy1, cx0:cx1]
    scale = ZOOM_FACE_PX / max(w, h)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    zoomed = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    hit = np.array([[x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0]], np.float64) * scale
    return np.ascontiguousarray(zoomed), hit


def zoom_score(pixels: np.ndarray, box: np.ndarray | tuple[int, ...]) -> float:
    """veil's best score for a face at the hit's place in a zoomed crop of `pixels`; 0: none found."""
    from ..pipeline import cached_detector

    crop, hit = zoomed_crop(pixels, box)
    found = cached_detector(ZOOM_SETTINGS, 0)(crop)
    if len(found) == 0:
        return 0.0
    same = iou_matrix(hit, np.asarray(found.boxes, np.float64))[0] >= SAME_FACE_IOU
    return float(np.max(np.where(same, found.scores, 0.0)))


def confirmed(pixels: np.ndarray, box: np.ndarray | tuple[int, ...], hog_score: float
              ) -> tuple[bool, float | None]:
    """Whether a hit outside the masks is probably a face, and veil's zoomed score (None: not needed)."""
    if hog_score >= STRONG_HOG_SCORE:
        return True, None
    score = zoom_score(pixels, box)
    return score >= CONFIRM_SCORE, score
