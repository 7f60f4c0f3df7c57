"""Also looks for faces turned on their side or upside down: runs the detector on the frame turned
90 and 270 degrees (and 180, where asked).

Why: CenterFace was trained on upright faces. A face photographed with the camera on its side, or
filmed by a head-worn or handheld camera that rolls, lies at 90 degrees in the frame and is scored
low or not at all; upside down (a photo taken with the phone the wrong way up, whose orientation
tag is gone), it is found about as rarely (thorough covered 0.77 of faces >= 32 px in the dev photos
turned 180 degrees, against 0.99 upright). Turning the frame so that such a face stands upright
and mapping the boxes back finds it (rotation test-time augmentation). The passes cost one
detector call each, so the presets choose where they run (`veil.presets.ROTATIONS`).
"""

from __future__ import annotations

import numpy as np

from .._types import Detections
from ..geometry import iou_matrix
from .base import Detector
from .nms import nms

# Quarter turns, counter-clockwise as np.rot90 turns: 1 is 90 degrees, 3 is 270 degrees.
SIDEWAYS: tuple[int, ...] = (1, 3)
UPSIDE_DOWN = 2
# A box at least this sure is a face, not a texture: the view holding most such faces (by summed
# score) is the one in which the picture stands upright.
SURE_FACE_SCORE = 0.5
# A turned view is taken for upright when its sure faces outweigh the frame's as given this many
# times, and add up to at least this (two faces at 0.5, in one frame). In video a view's evidence
# is the most any recent detector frame gave it, each earlier one weighing `MEMORY` times less per
# frame: the camera rolls slowly next to the detector's rate, and faces dip in score now and then.
# The most, not the sum: a texture one view scores as a sure face frame after frame would add up.
STANDING_MARGIN = 2.0
STANDING_LEAST = 1.0
MEMORY = 0.7
# A large box seen only in a turned view (LARGE_HEIGHT px tall and more), scoring under the
# caller's `large_min_score`, needs the upright passes to see something over it too: a box of
# theirs at IoU >= EVIDENCE_IOU scoring at least UPRIGHT_EVIDENCE.
LARGE_HEIGHT = 64.0
UPRIGHT_EVIDENCE = 0.2
EVIDENCE_IOU = 0.3


def rotate_frame(frame: np.ndarray, turns: int) -> np.ndarray:
    """The frame turned `turns` quarter turns counter-clockwise (np.rot90), contiguous."""
    return np.ascontiguousarray(np.rot90(frame, turns % 4))


def rotate_points(xs: np.ndarray, ys: np.ndarray, turns: int, width: int, height: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Continuous pixel coordinates of a width x height frame, in the frame turned `turns` times.

    One counter-clockwise quarter turn sends (x, y) to (y, width - x); the turned frame is
    height x width, so each further turn uses the swapped size.
    """
    for _ in range(turns % 4):
        xs, ys = ys, width - xs
        width, height = height, width
    return xs, ys


def rotate_boxes(boxes: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """xyxy boxes of a width x height frame, as boxes of that frame turned `turns` times."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    xs, ys = rotate_points(boxes[:, [0, 2]], boxes[:, [1, 3]], turns, width, height)
    return np.stack([xs.min(axis=1), ys.min(axis=1), xs.max(axis=1), ys.max(axis=1)],
                    axis=1).astype(np.float32)


def unrotate(found: Detections, turns: int, width: int, height: int) -> Detections:
    """Detections made on the frame turned `turns` times, in the upright width x height frame."""
    turns %= 4
    if turns == 0 or len(found) == 0:
        return found
    back = 4 - turns  # the turned frame is (height x width) for odd turns
    tw, th = (height, width) if turns % 2 else (width, height)
    boxes = rotate_boxes(found.boxes, back, tw, th)
    lm = found.landmarks.copy()
    lx, ly = rotate_points(found.landmarks[:, 0::2], found.landmarks[:, 1::2], back, tw, th)
    lm[:, 0::2], lm[:, 1::2] = lx, ly
    return Detections(boxes, found.scores, lm, found.track_ids, found.sources)


def view_evidence(views: list[Detections], sure: float = SURE_FACE_SCORE) -> np.ndarray:
    """Per view, the summed score of its boxes scoring at least `sure`: how many faces the
    detector is sure of stand upright in it."""
    return np.array([float(v.scores[v.scores >= sure].sum()) if len(v) else 0.0 for v in views])


def standing_view(evidence: np.ndarray, margin: float = STANDING_MARGIN,
                  least: float = STANDING_LEAST) -> int:
    """The index of the view in which the picture stands upright: a turned view whose evidence
    (`view_evidence`) is at least `least` and `margin` times the first view's; else 0 (the frame
    as given).

    Why: a camera that rolls, or a photo taken with the camera on its side, turns every face in
    the picture alike, so the faces the detector is sure of show which way is up for the rest.
    The margin, because a sideways view now and then scores a texture as a sure face too.
    """
    if len(evidence) < 2:
        return 0
    best = 1 + int(np.argmax(evidence[1:]))
    return best if evidence[best] >= least and evidence[best] >= margin * evidence[0] else 0


def merge_views(views: list[Detections], iou: float = 0.4) -> Detections:
    """All views' boxes, one per face: greedy NMS keeps the best-scored box of each overlap.

    The view in which a face stands upright scores it highest and gives the best-fitting box, so
    the best score decides; the others' boxes on the same face are dropped.
    """
    merged = Detections.concat(views)
    if len(merged) == 0:
        return merged
    return merged[nms(merged.boxes, merged.scores, iou)]


class Rotated:
    """A detector that also runs on the frame turned by each of `turns` quarter turns.

    Boxes found only in a turned view are kept when their score reaches `min_score` (0: whatever
    the wrapped detector keeps): a sideways view shows the detector textures it has never been
    trained to reject, and a large false box costs much image area. The exception is the turned
    view in which the picture stands upright (`standing_view`: the camera was on its side): there
    the faces are upright, so it keeps all the wrapped detector keeps, as the frame as given
    does. Without that, a face the preset finds at a low score upright was lost in footage filmed
    sideways (benchmarks/roll_clips.py).

    `upside_down`, if given, replaces (`min_score`, `large_min_score`) in the view turned 180
    degrees (stills): there the detector takes textures for faces more often still, and a real
    upside-down face either scores high or shares its photo with others that make that view the
    standing one.

    With `large_min_score` (stills), a large box seen only sideways that scores under it is kept
    only where the upright passes also see something (`UPRIGHT_EVIDENCE`). A face tilted part-way
    is seen, weakly, in both the upright and the turned view; a texture the turned view takes for a
    large face, in that view alone, and a large false box costs the most image area (thorough on
    the dev photos: 3.11x -> 3.07x the face area with every face kept; dropping such boxes
    without the upright evidence lost a tilted face).
    """

    def __init__(self, detector: Detector, turns: tuple[int, ...] = SIDEWAYS,
                 min_score: float = 0.0, iou: float = 0.4, memory: float = 0.0,
                 large_min_score: float = 0.0, upside_down: tuple[float, float] | None = None) -> None:
        if any(t % 4 == 0 for t in turns):
            raise ValueError(f"turns must not include the upright view, got {turns}")
        self.detector = detector
        self.turns = tuple(turns)
        self.min_score = min_score
        self.iou = iou
        self.memory = memory  # 0 for stills; video: MEMORY (one Rotated per video)
        self.large_min_score = large_min_score
        self.upside_down = upside_down
        self._evidence = np.zeros(1 + len(self.turns))

    def __call__(self, frame: np.ndarray) -> Detections:
        height, width = frame.shape[:2]
        first, seen = self._upright(frame)
        views = [first]
        for turns in self.turns:
            views.append(unrotate(self.detector(rotate_frame(frame, turns)), turns, width, height))
        if self.min_score > 0:
            self._evidence = np.maximum(self.memory * self._evidence, view_evidence(views))
            upright = standing_view(self._evidence)
            views = [found if i in (0, upright) else self._sideways(found, seen, self._floors(i))
                     for i, found in enumerate(views)]
        return merge_views(views, self.iou)

    def _upright(self, frame: np.ndarray) -> tuple[Detections, Detections]:
        """The frame's own faces, and what its passes saw (veil's detector: every box each pass
        decoded; another detector: its faces)."""
        with_evidence = getattr(self.detector, "with_evidence", None)
        large = max(self.large_min_score, self.upside_down[1] if self.upside_down else 0.0)
        if large > 0 and with_evidence is not None:
            return with_evidence(frame)
        found = self.detector(frame)
        return found, found

    def _floors(self, view: int) -> tuple[float, float]:
        """(min_score, large_min_score) of the view at this index (0 is the frame as given)."""
        if self.upside_down is not None and self.turns[view - 1] % 4 == UPSIDE_DOWN:
            return self.upside_down
        return self.min_score, self.large_min_score

    def _sideways(self, found: Detections, seen: Detections, floors: tuple[float, float]) -> Detections:
        """What a turned view keeps when the picture does not stand upright in it (`seen`: what the
        upright passes saw; `floors`: the view's (min_score, large_min_score), `_floors`)."""
        min_score, large_min_score = floors
        keep = found.scores >= min_score
        large = keep & (found.heights >= LARGE_HEIGHT) & (found.scores < large_min_score)
        if large.any():
            backed = np.zeros(len(found), bool)
            if len(seen):
                near = iou_matrix(found.boxes[large], seen.boxes) >= EVIDENCE_IOU
                backed[large] = np.where(near, seen.scores[None, :], 0.0).max(axis=1) >= UPRIGHT_EVIDENCE
            keep &= ~large | backed
        return found[keep]


__all__ = ["SIDEWAYS", "UPSIDE_DOWN", "SURE_FACE_SCORE", "STANDING_MARGIN", "STANDING_LEAST", "MEMORY", "LARGE_HEIGHT",
           "UPRIGHT_EVIDENCE", "EVIDENCE_IOU", "Rotated",
           "view_evidence", "standing_view", "rotate_frame", "rotate_points", "rotate_boxes",
           "unrotate", "merge_views"]
