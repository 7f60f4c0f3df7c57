"""Links detections over time and adds masks between and around them; never removes or shrinks one.

The tracker is streaming with a fixed look-ahead: a frame is released only once every later
frame that could change its masks has been seen (`lookahead` frames). Per frame it returns the
detector's own boxes unchanged, followed by the boxes it adds:

- interpolated: a track missing for at most `gap_frames` frames between two detections gets a
  linearly interpolated box in each missing frame;
- extrapolated: `pad_frames` frames before a track's first and after its last detection get its
  box moved with the track's constant velocity, so a face entering or leaving the picture, or
  found only from its second frame on, is covered; where that box touches the frame's edge the
  track is carried up to `gap_frames` (a face half out of the picture is often not detected).

Added boxes carry a `grow` fraction (extra margin) that rises with the distance in frames from the
nearest detection, because the box is less certain the further it is carried.

Camera motion: `push` takes the motion since the previous frame (see `motion.py`). Tracks live in
scene coordinates (the first frame's pixels, moved with the camera), so interpolation and
velocity describe the face's own motion and a pan or zoom between detections is followed exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ._types import Detections, RegionSource
from .detect.nms import iou_matrix
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

    def __post_init__(self) -> None:
        if self.gap_frames < 0 or self.pad_frames < 0:
            raise ValueError("gap_frames and pad_frames must not be negative")

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


@dataclass
class _Observation:
    frame: int
    box: np.ndarray  # xyxy float64, in the frame's pixels
    scene: np.ndarray  # the same box in scene coordinates
    velocity: np.ndarray  # per-frame change of the scene box since the previous observation


@dataclass
class _Track:
    track_id: int
    observations: list[_Observation] = field(default_factory=list)
    hits: int = 0  # detections linked to it so far

    @property
    def last(self) -> _Observation:
        return self.observations[-1]


def _clamp_velocity(velocity: np.ndarray, box: np.ndarray, max_speed: float) -> np.ndarray:
    limit = max_speed * max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    return np.minimum(np.maximum(velocity, -limit), limit)


def _translation(velocity: np.ndarray) -> np.ndarray:
    """The velocity's movement of the box centre, without growth or shrinkage.

    Boxes clipped at the frame edge shrink as a face leaves; carrying that shrinkage on would
    make the mask vanish while part of the face is still in view.
    """
    dx = (velocity[0] + velocity[2]) / 2
    dy = (velocity[1] + velocity[3]) / 2
    return np.array([dx, dy, dx, dy])


class Tracker:
    """Feed frames in order with `push`; collect released frames; call `flush` at the end."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._pending: deque[tuple[int, Detections, bool]] = deque()
        self._last_index = -1
        # Scene -> frame pixels, per frame not yet released; and its inverse for the newest frame.
        self._to_frame: dict[int, np.ndarray] = {}
        self._newest = IDENTITY  # scene -> pixels of the newest frame
        self._to_scene = IDENTITY

    def push(self, index: int, detections: Detections | None,
             motion: np.ndarray | None = None) -> list[TrackedFrame]:
        """Add frame `index` (None: the detector did not run on it); return frames now final.

        `motion`: the 3x3 matrix mapping the previous frame's pixels to this one's (None: a
        still camera).
        """
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
        while self._pending and self._pending[0][0] + self.settings.lookahead <= index:
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
        candidates = [t for t in self._tracks
                      if t.last.frame < index and index - t.last.frame <= s.gap_frames + 1]
        boxes = detections.boxes
        scenes = transform_boxes(boxes, self._to_scene)  # every detection's box in the scene
        if n and candidates:
            since = np.array([index - t.last.frame for t in candidates], np.float64)
            scene = np.array([t.last.scene for t in candidates]) + \
                np.array([t.last.velocity for t in candidates]) * since[:, None]
            predicted = transform_boxes(scene, self._newest).astype(np.float32)
            iou = iou_matrix(predicted, boxes)
            pc = (predicted[:, :2] + predicted[:, 2:]) / 2
            dc = (boxes[:, :2] + boxes[:, 2:]) / 2
            p_size = np.sqrt(np.maximum(
                (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1]), 1.0))
            d_size = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0))
            distance = np.linalg.norm(pc[:, None, :] - dc[None, :, :], axis=2) / p_size[:, None]
            ratio = d_size[None, :] / p_size[:, None]
            # A face unseen for longer may have moved further from where its velocity puts it.
            reach = s.max_centre_distance * np.minimum(2.0, 1.0 + 0.15 * (since - 1))
            allowed = ((iou >= s.min_iou) | (distance <= reach[:, None])) & \
                (ratio <= s.max_size_ratio) & (ratio >= 1 / s.max_size_ratio)
            affinity = np.where(allowed, iou - 0.5 * distance, -np.inf)
            # Greedy one-to-one matching, best affinity first, over the allowed pairs only.
            pairs = np.flatnonzero(allowed)
            pairs = pairs[np.argsort(-affinity.reshape(-1)[pairs], kind="stable")]
            used_tracks: set[int] = set()
            for ti, di in zip(*np.unravel_index(pairs, affinity.shape)):
                if ti in used_tracks or ids[di] >= 0:
                    continue
                used_tracks.add(int(ti))
                track = candidates[ti]
                ids[di] = track.track_id
                self._observe(track, index, boxes[di], scenes[di])
        for di in np.flatnonzero(ids < 0):
            track = _Track(self._next_id)
            self._next_id += 1
            self._tracks.append(track)
            ids[di] = track.track_id
            self._observe(track, index, boxes[di], scenes[di])
        return Detections(detections.boxes, detections.scores, detections.landmarks, ids,
                          np.full(n, int(RegionSource.DETECTED), np.int8))

    def _observe(self, track: _Track, index: int, box: np.ndarray, scene: np.ndarray) -> None:
        box = np.asarray(box, np.float64)
        velocity = np.zeros(4)
        if track.observations:
            prev = track.last
            velocity = _clamp_velocity((scene - prev.scene) / (index - prev.frame), scene,
                                       self.settings.max_speed)
        track.observations.append(_Observation(index, box, scene, velocity))
        track.hits += 1

    # -- releasing -----------------------------------------------------------------------------

    def _release(self) -> TrackedFrame:
        index, detected, ran = self._pending.popleft()
        boxes, ids, grow = [], [], []
        present = set(detected.track_ids.tolist())
        for track in self._tracks:
            if track.track_id in present:
                continue
            carried = self._carry(track, index)
            if carried is not None:
                boxes.append(carried[0])
                grow.append(carried[1])
                ids.append(track.track_id)
        self._forget(index)
        n = len(boxes)
        to_frame = self._to_frame.pop(index)
        added = Detections(transform_boxes(np.asarray(boxes), to_frame).astype(np.float32),
                           np.zeros(n, np.float32),
                           track_ids=np.asarray(ids, np.int64),
                           sources=np.full(n, int(RegionSource.TRACKED), np.int8))
        all_rows = Detections.concat([detected, added])
        grow_all = np.concatenate([np.zeros(len(detected)), np.asarray(grow, np.float64)])
        return TrackedFrame(index, all_rows, grow_all.astype(np.float32), ran)

    def _carry(self, track: _Track, index: int) -> tuple[np.ndarray, float] | None:
        """The scene box a track adds in frame `index` (where it has no detection), and its growth."""
        s = self.settings
        prev = nxt = None
        after = None  # the observation following `nxt`, for the backward velocity
        for k, obs in enumerate(track.observations):
            if obs.frame < index:
                prev = obs
            elif obs.frame > index:
                nxt = obs
                after = track.observations[k + 1] if k + 1 < len(track.observations) else None
                break
        held = s.hold_after_hits > 0 and track.hits >= s.hold_after_hits
        if prev is not None and nxt is not None and nxt.frame - prev.frame - 1 <= s.gap_frames:
            alpha = (index - prev.frame) / (nxt.frame - prev.frame)
            box = prev.scene + (nxt.scene - prev.scene) * alpha
            distance = min(index - prev.frame, nxt.frame - index)
            return box, min(s.max_grow, s.grow_interpolated * distance)
        if prev is not None:
            distance = index - prev.frame
            if distance <= s.pad_frames:
                return prev.scene + prev.velocity * distance, min(s.max_grow, s.grow_extrapolated * distance)
            if distance <= s.gap_frames and (held or self._at_edge(prev.box)):
                return prev.scene + _translation(prev.velocity) * distance, s.max_grow
        if nxt is not None:
            distance = nxt.frame - index
            velocity = after.velocity if after is not None else np.zeros(4)
            if distance <= s.pad_frames:
                return nxt.scene - velocity * distance, min(s.max_grow, s.grow_extrapolated * distance)
            if distance <= s.gap_frames and (held or self._at_edge(nxt.box)):
                return nxt.scene - _translation(velocity) * distance, s.max_grow
        return None

    def _at_edge(self, box: np.ndarray) -> bool:
        if self.settings.frame_size is None:
            return False
        width, height = self.settings.frame_size
        e = self.settings.edge_px
        return bool(box[0] <= e or box[1] <= e or box[2] >= width - e or box[3] >= height - e)

    def _forget(self, released: int) -> None:
        """Drop observations and tracks that can no longer affect frames after `released`."""
        s = self.settings
        keep = []
        for track in self._tracks:
            obs = track.observations
            # Keep the last observation at or before `released` (the `prev` of the next frame).
            while len(obs) > 1 and obs[1].frame <= released:
                obs.pop(0)
            last = obs[-1].frame
            if last >= released - s.lookahead or last >= self._last_index - s.gap_frames:
                keep.append(track)
        self._tracks = keep
