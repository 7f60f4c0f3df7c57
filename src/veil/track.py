"""Links detections over time and adds masks between and around them; never removes or shrinks one.

The tracker is streaming with a fixed look-ahead: a frame is released only once every later
frame that could change its masks has been seen (`lookahead` frames). Per frame it returns the
detector's own boxes unchanged, followed by the boxes it adds:

- interpolated: a track missing for at most `gap_frames` frames between two detections gets a
  linearly interpolated box in each missing frame;
- extrapolated: `pad_frames` frames before a track's first and after its last detection get its
  box moved with the track's constant velocity, so a face entering or leaving the picture, or
  found only from its second frame on, is covered; where that box touches the frame's edge the
  track is carried up to `gap_frames` (a face half out of the picture is often not detected);
- held: a track detected at least twice is carried up to `gap_frames` after its last detection,
  and up to `hold_frames` if one of its detections scored at least `hold_min_score` (a face the
  detector was sure of and then lost while it turned or blurred).

Added boxes carry a `grow` fraction (extra margin) that rises with the distance in frames from the
nearest detection, because the box is less certain the further it is carried.

Camera motion: `push` takes the motion since the previous frame (see `motion.py`). Tracks live in
scene coordinates (the first frame's pixels, moved with the camera), so interpolation and
velocity describe the face's own motion and a pan or zoom between detections is followed exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ._types import Detections, RegionSource
from .geometry import greedy_match, iou_pairs, touches_edge
from .motion import IDENTITY, transform_boxes


@dataclass(frozen=True)
class TrackerSettings:
    """How detections are linked and how far a track's mask is carried."""

    gap_frames: int = 15  # longest run of frames without a detection bridged by interpolation
    pad_frames: int = 3  # frames masked before a track's first and after its last detection
    min_iou: float = 0.2  # a detection joins a track if it overlaps the prediction this much ...
    max_centre_distance: float = 0.7  # ... or its centre is this close (in predicted-box sizes)
    max_size_ratio: float = 2.0  # and its size is within this factor of the prediction
    # Extra margin for carried boxes: per frame away from a detection, and at most.
    grow_extrapolated: float = 0.06
    grow_interpolated: float = 0.03
    max_grow: float = 0.5
    max_speed: float = 0.3  # per-frame velocity is clamped to this fraction of the box size
    # (width, height) of the frame, if known: a track whose box touches the frame's edge is
    # carried for up to gap_frames (not just pad_frames) beyond its first/last detection, because
    # a face half out of the picture is what the detector misses while it is still recognisable.
    frame_size: tuple[int, int] | None = None
    edge_px: float = 2.0
    # A track detected on this many frames is a face, not a stray box: it too is carried for up
    # to gap_frames beyond its ends (a face turning away or down is what the detector loses
    # first, and one missed on the last detector frames would otherwise show).
    hold_after_hits: int = 2
    # A held track that also scored hold_min_score once is carried on after its last detection
    # for up to hold_frames (at least gap_frames): a face the detector loses for longer than the
    # gap while it is still in view (turned, tilted, blurred) stays masked. Forward only, so the
    # look-ahead does not grow. A score floor, because at the video presets' low thresholds
    # textures are often detected twice too, and holding those for a second masks far more.
    hold_frames: int = 30
    hold_min_score: float = 0.3

    def __post_init__(self) -> None:
        if self.gap_frames < 0 or self.pad_frames < 0 or self.hold_frames < 0:
            raise ValueError("gap_frames, pad_frames and hold_frames must not be negative")

    @property
    def lookahead(self) -> int:
        """Frames the tracker must see beyond a frame before that frame's masks are final."""
        # +1: extrapolating backwards from a first detection needs the velocity from the second.
        return max(self.gap_frames, self.pad_frames) + 1


@dataclass(frozen=True, eq=False)
class TrackedFrame:
    """One frame's regions: the detections (unchanged) first, then the tracker's additions."""

    index: int
    detections: Detections  # sources say DETECTED or TRACKED; every row has a track id
    grow: np.ndarray  # (N,) extra margin fraction per row; 0 for detections
    detector_ran: bool

    @property
    def tracked_rows(self) -> int:
        return int(np.count_nonzero(self.detections.sources == int(RegionSource.TRACKED)))


def _clamp_velocity(velocity: np.ndarray, boxes: np.ndarray, max_speed: float) -> np.ndarray:
    """Per-frame velocities (N, 4) clamped to `max_speed` of each box's larger side (at least 1 px)."""
    sides = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1.0)
    limit = (max_speed * sides)[:, None]
    return np.minimum(np.maximum(velocity, -limit), limit)


def _translation(velocity: np.ndarray) -> np.ndarray:
    """The velocities' movement of the box centre, without growth or shrinkage.

    Boxes clipped at the frame edge shrink as a face leaves; carrying that shrinkage on would
    make the mask vanish while part of the face is still in view.
    """
    dx = (velocity[:, 0] + velocity[:, 2]) / 2
    dy = (velocity[:, 1] + velocity[:, 3]) / 2
    return np.stack([dx, dy, dx, dy], axis=1)


def _near_pairs(predicted: np.ndarray, boxes: np.ndarray, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(track, detection) index pairs that may be linked: every pair whose boxes overlap or whose
    centres are within `reach` predicted-box sizes, plus some that are not (they are tested next).

    A crowd gives hundreds of tracks and detections a frame; comparing only nearby pairs keeps
    linking from growing with their product.
    """
    pc = (predicted[:, :2] + predicted[:, 2:]) / 2
    dc = (boxes[:, :2] + boxes[:, 2:]) / 2
    p_half = (predicted[:, 2:] - predicted[:, :2]) / 2
    p_size = np.sqrt(np.maximum(np.prod(2 * p_half, axis=1), 1.0))
    # Per track, how far (x, y) a linkable detection's centre can be: overlapping boxes are
    # within the two half-sizes, near centres within reach; +1 px against rounding.
    d_half = ((boxes[:, 2:] - boxes[:, :2]) / 2).max(axis=0)
    limit = np.maximum(p_half + d_half, (reach * p_size)[:, None]) + 1.0
    by_x = np.argsort(dc[:, 0], kind="stable")
    xs = dc[by_x, 0]
    lo = np.searchsorted(xs, pc[:, 0] - limit[:, 0], "left")
    hi = np.searchsorted(xs, pc[:, 0] + limit[:, 0], "right")
    counts = hi - lo
    ti = np.repeat(np.arange(len(predicted)), counts)
    di = by_x[np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - lo, counts)]
    near = np.abs(pc[ti, 1] - dc[di, 1]) <= limit[ti, 1]
    return ti[near], di[near]


class _Observations:
    """Every detection linked to a track that can still matter, as arrays (one row each).

    Rows are appended frame by frame, so each track's rows are in frame order. Kept as arrays
    (not one object per detection) because a crowd or textured scene carries hundreds of tracks
    a frame, and each released frame asks every one of them for its neighbouring detections.
    """

    def __init__(self) -> None:
        self.track = np.zeros(0, np.int64)
        self.frame = np.zeros(0, np.int64)
        self.box = np.zeros((0, 4))  # xyxy float64, in the frame's pixels
        self.scene = np.zeros((0, 4))  # the same box in scene coordinates
        self.velocity = np.zeros((0, 4))  # per-frame change of the scene box since the previous row

    def append(self, track: np.ndarray, frame: int, box: np.ndarray, scene: np.ndarray,
               velocity: np.ndarray) -> None:
        self.track = np.concatenate([self.track, track])
        self.frame = np.concatenate([self.frame, np.full(len(track), frame, np.int64)])
        self.box = np.concatenate([self.box, box])
        self.scene = np.concatenate([self.scene, scene])
        self.velocity = np.concatenate([self.velocity, velocity])

    def keep(self, rows: np.ndarray) -> None:
        self.track, self.frame = self.track[rows], self.frame[rows]
        self.box, self.scene, self.velocity = self.box[rows], self.scene[rows], self.velocity[rows]


class Tracker:
    """Feed frames in order with `push`; collect released frames; call `flush` at the end."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        # The live tracks, in the order they were made (ids ascending): id, detections so far,
        # and their newest detection (frame, scene box, velocity) for predicting the next.
        self._ids = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int64)
        self._best = np.zeros(0, np.float32)  # highest detection score
        self._last_frame = np.zeros(0, np.int64)
        self._last_scene = np.zeros((0, 4))
        self._last_velocity = np.zeros((0, 4))
        self._obs = _Observations()
        self._next_id = 0
        self._pending: deque[tuple[int, Detections, bool]] = deque()
        self._last_index = -1
        # Scene -> frame pixels, per frame not yet released; and its inverse for the newest frame.
        self._to_frame: dict[int, np.ndarray] = {}
        self._newest: np.ndarray = IDENTITY  # scene -> pixels of the newest frame
        self._to_scene: np.ndarray = IDENTITY

    def push(self, index: int, detections: Detections | None,
             motion: np.ndarray | None = None) -> list[TrackedFrame]:
        """Add frame `index` (None: the detector did not run on it); return frames now final.

        `motion`: the 3x3 matrix mapping the previous frame's pixels to this one's (None: a
        still camera).
        """
        if self._last_index < 0:  # the first frame: a segment of a long video starts mid-way
            self._last_index = index - 1
        if index != self._last_index + 1:
            raise ValueError(f"frames must be pushed in order: expected {self._last_index + 1}, got {index}")
        if motion is not None and index > 0:
            self._newest = motion @ self._newest
            self._to_scene = np.linalg.inv(self._newest)
        self._to_frame[index] = self._newest
        self._last_index = index
        ran = detections is not None
        linked = self._associate(index, detections) if detections is not None else Detections.empty()
        self._pending.append((index, linked, ran))
        released = []
        lookahead = self.settings.lookahead
        while self._pending and self._pending[0][0] + lookahead <= index:
            released.append(self._release())
        return released

    def flush(self) -> list[TrackedFrame]:
        """Release every frame still held back (end of the video)."""
        return [self._release() for _ in range(len(self._pending))]

    # -- linking -------------------------------------------------------------------------------

    def _associate(self, index: int, detections: Detections) -> Detections:
        s = self.settings
        n = len(detections)
        ids = np.full(n, -1, np.int64)
        boxes = detections.boxes
        scenes = transform_boxes(boxes, self._to_scene)  # every detection's box in the scene
        waited = index - self._last_frame
        candidates = np.flatnonzero((waited > 0) & (waited <= s.gap_frames + 1))
        matched_tracks = np.zeros(0, np.int64)  # positions in the track table
        matched_rows = np.zeros(0, np.int64)
        if n and len(candidates):
            since = waited[candidates].astype(np.float64)
            scene = self._last_scene[candidates] + self._last_velocity[candidates] * since[:, None]
            predicted = transform_boxes(scene, self._newest).astype(np.float32)
            # A face unseen for longer may have moved further from where its velocity puts it.
            reach = s.max_centre_distance * np.minimum(2.0, 1.0 + 0.15 * (since - 1))
            if s.min_iou > 0:
                ti, di = _near_pairs(predicted, boxes, reach)
            else:  # any overlap, however far, may link: every pair
                ti, di = np.divmod(np.arange(len(predicted) * n), n)
            p, d = predicted[ti], boxes[di]
            iou = iou_pairs(p, d)
            pc = (p[:, :2] + p[:, 2:]) / 2
            dc = (d[:, :2] + d[:, 2:]) / 2
            p_size = np.sqrt(np.maximum((p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]), 1.0))
            d_size = np.sqrt(np.maximum((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]), 1.0))
            distance = np.linalg.norm(pc - dc, axis=1) / p_size
            ratio = d_size / p_size
            allowed = ((iou >= s.min_iou) | (distance <= reach[ti])) & \
                (ratio <= s.max_size_ratio) & (ratio >= 1 / s.max_size_ratio)
            # Greedy one-to-one matching, best affinity first (ties: track, then detection order).
            affinity = iou[allowed] - 0.5 * distance[allowed]
            picked_tracks, matched_rows = greedy_match(ti[allowed], di[allowed], affinity)
            matched_tracks = candidates[picked_tracks]
            ids[matched_rows] = self._ids[matched_tracks]
        new_rows = np.flatnonzero(ids < 0)
        ids[new_rows] = self._next_id + np.arange(len(new_rows))
        self._next_id += len(new_rows)
        self._observe(index, matched_tracks, matched_rows, new_rows, ids, boxes, scenes, detections.scores)
        return Detections(detections.boxes, detections.scores, detections.landmarks, ids,
                          np.full(n, int(RegionSource.DETECTED), np.int8))

    def _observe(self, index: int, tracks: np.ndarray, matched: np.ndarray, new: np.ndarray,
                 ids: np.ndarray, boxes: np.ndarray, scenes: np.ndarray, scores: np.ndarray) -> None:
        """Record frame `index`'s detections: `matched` rows extend `tracks`, `new` rows start tracks."""
        s = self.settings
        velocity = np.zeros((len(ids), 4))
        if len(matched):
            elapsed = (index - self._last_frame[tracks]).astype(np.float64)
            velocity[matched] = _clamp_velocity(
                (scenes[matched] - self._last_scene[tracks]) / elapsed[:, None], scenes[matched],
                s.max_speed)
            self._hits[tracks] += 1
            self._best[tracks] = np.maximum(self._best[tracks], scores[matched])
            self._last_frame[tracks] = index
            self._last_scene[tracks] = scenes[matched]
            self._last_velocity[tracks] = velocity[matched]
        if len(new):
            self._ids = np.concatenate([self._ids, ids[new]])
            self._hits = np.concatenate([self._hits, np.ones(len(new), np.int64)])
            self._best = np.concatenate([self._best, scores[new].astype(np.float32)])
            self._last_frame = np.concatenate([self._last_frame, np.full(len(new), index, np.int64)])
            self._last_scene = np.concatenate([self._last_scene, scenes[new]])
            self._last_velocity = np.concatenate([self._last_velocity, velocity[new]])
        self._obs.append(ids, index, np.asarray(boxes, np.float64), scenes, velocity)

    # -- releasing -----------------------------------------------------------------------------

    def _release(self) -> TrackedFrame:
        index, detected, ran = self._pending.popleft()
        # Each detection's track, as a position in the track table (ids ascending).
        position = np.searchsorted(self._ids, self._obs.track)
        ids, scene, grow = self._carry(index, position)
        self._forget(index, position)
        to_frame = self._to_frame.pop(index)
        n = len(ids)
        added = Detections(transform_boxes(scene, to_frame).astype(np.float32),
                           np.zeros(n, np.float32),
                           track_ids=ids,
                           sources=np.full(n, int(RegionSource.TRACKED), np.int8))
        all_rows = Detections.concat([detected, added])
        grow_all = np.concatenate([np.zeros(len(detected)), grow])
        return TrackedFrame(index, all_rows, grow_all.astype(np.float32), ran)

    def _carry(self, index: int, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scene boxes tracks add in frame `index` (where they have no detection): ids, boxes, growth.

        Per track: its detections just before and after the frame, bridged by interpolation if
        the gap is short enough; otherwise the nearer one carried on with its velocity.
        """
        s = self.settings
        obs = self._obs
        count = len(self._ids)
        # The rows grouped by track (table order), each track's in frame order.
        order = np.argsort(position, kind="stable")
        per_track = np.bincount(position, minlength=count)
        start = np.cumsum(per_track) - per_track
        before = np.bincount(position[obs.frame < index], minlength=count)
        at = np.bincount(position[obs.frame == index], minlength=count)
        has_prev = before > 0
        has_next = before + at < per_track
        has_after = before + at + 1 < per_track
        # Each track's row before, after and after-next the frame (clamped into the table where
        # the track has none: the has_* flags mask those).
        last = len(order) - 1
        prev = order[np.minimum(start + before - 1, last)]
        nxt = order[np.minimum(start + before + at, last)]
        after = order[np.minimum(start + before + at + 1, last)]
        carried = (at == 0) & (has_prev | has_next)
        keep = np.flatnonzero(carried)
        prev, nxt, after = prev[keep], nxt[keep], after[keep]
        has_prev, has_next, has_after = has_prev[keep], has_next[keep], has_after[keep]
        held = self._held()[keep]
        held_long = self._held_long()[keep]

        box = np.zeros((len(keep), 4))
        grow = np.zeros(len(keep))
        done = np.zeros(len(keep), bool)

        def take(rows: np.ndarray, boxes: np.ndarray, growth: np.ndarray | float) -> None:
            nonlocal done
            rows = rows & ~done
            box[rows] = boxes[rows]
            grow[rows] = growth[rows] if isinstance(growth, np.ndarray) else growth
            done |= rows

        pf = np.where(has_prev, obs.frame[prev], index)
        nf = np.where(has_next, obs.frame[nxt], index)
        prev_scene, next_scene = obs.scene[prev], obs.scene[nxt]
        # Interpolated between two detections no more than gap_frames apart.
        span = np.maximum(nf - pf, 1)
        alpha = ((index - pf) / span)[:, None]
        near = np.minimum(index - pf, nf - index)
        take(has_prev & has_next & (nf - pf - 1 <= s.gap_frames),
             prev_scene + (next_scene - prev_scene) * alpha,
             np.minimum(s.max_grow, s.grow_interpolated * near))
        # Carried on after the last detection: with its velocity over the padding; beyond it, up
        # to gap_frames for a face held long enough or at the frame's edge, without resizing.
        distance = index - pf
        velocity = obs.velocity[prev]
        take(has_prev & (distance <= s.pad_frames), prev_scene + velocity * distance[:, None],
             np.minimum(s.max_grow, s.grow_extrapolated * distance))
        hold = max(s.gap_frames, s.hold_frames)
        take(has_prev & (((distance <= s.gap_frames) & (held | self._at_edge(obs.box[prev])))
                         | ((distance <= hold) & held_long)),
             prev_scene + _translation(velocity) * distance[:, None], s.max_grow)
        # Carried back before the first detection, with the velocity of the one after it.
        distance = nf - index
        velocity = np.where(has_after[:, None], obs.velocity[after], 0.0)
        take(has_next & (distance <= s.pad_frames), next_scene - velocity * distance[:, None],
             np.minimum(s.max_grow, s.grow_extrapolated * distance))
        take(has_next & (distance <= s.gap_frames) & (held | self._at_edge(obs.box[nxt])),
             next_scene - _translation(velocity) * distance[:, None], s.max_grow)
        return self._ids[keep][done], box[done], grow[done]

    def _held(self) -> np.ndarray:
        """Per track in the table: detected often enough to be carried for the whole gap."""
        s = self.settings
        return (s.hold_after_hits > 0) & (self._hits >= s.hold_after_hits)

    def _held_long(self) -> np.ndarray:
        """Per track in the table: held, and once detected with confidence: carried for hold_frames."""
        return self._held() & (self._best >= self.settings.hold_min_score)

    def _at_edge(self, boxes: np.ndarray) -> np.ndarray:
        if self.settings.frame_size is None:
            return np.zeros(len(boxes), bool)
        width, height = self.settings.frame_size
        return touches_edge(boxes, width, height, self.settings.edge_px)

    def _forget(self, released: int, position: np.ndarray) -> None:
        """Drop detections and tracks that can no longer affect frames after `released`."""
        s = self.settings
        obs = self._obs
        # A track's detections up to `released` matter only through the last of them (the
        # `prev` of the next frame).
        settled = obs.frame <= released
        newest_settled = np.full(len(self._ids), -1, np.int64)
        np.maximum.at(newest_settled, position[settled], obs.frame[settled])
        keep_track = (self._last_frame >= released - s.lookahead) | \
            (self._last_frame >= self._last_index - s.gap_frames)
        if s.hold_frames > s.lookahead:  # confident faces are carried longer
            keep_track |= self._held_long() & (self._last_frame >= released - s.hold_frames)
        rows = (~settled | (obs.frame == newest_settled[position])) & keep_track[position]
        if not rows.all():
            obs.keep(np.flatnonzero(rows))
        if not keep_track.all():
            kept = np.flatnonzero(keep_track)
            self._ids, self._hits, self._best = self._ids[kept], self._hits[kept], self._best[kept]
            self._last_frame, self._last_scene = self._last_frame[kept], self._last_scene[kept]
            self._last_velocity = self._last_velocity[kept]
