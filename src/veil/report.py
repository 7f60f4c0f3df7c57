"""What veil says about its work: one record per masked region, and one report per file.

Stills and video build their records and reports here, from the typed arrays the stages hand
on, so `veil scan`, `--report`, the review app and the audit all read the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._types import Detections, FaceRecord, FileReport, MaskRegions, RegionSource

# The score reported for a region a person added in a plan file: no detector was involved.
MANUAL_SCORE = 1.0

# A frame is reported as holding a low-confidence mask when a detection under this score made one
# of its regions: the same line as the sure-box margins (`presets.SURE_MARGINS`), under which a box
# may be a texture rather than a face, or a face the detector barely saw. Those frames are the ones
# a person should look at first.
LOW_SCORE = 0.3


def face_records(rows: Detections, regions: MaskRegions, origin: np.ndarray | None = None
                 ) -> tuple[FaceRecord, ...]:
    """One record per region masked.

    `rows` are the tracked detections the regions came from; `origin` says, per region, which
    row (-1: none, a region added by hand), or None when the regions are the rows' own, row for
    row. A tracker-carried row reports score 0: no detection was there.
    """
    boxes, scores = rows.boxes.tolist(), rows.scores.tolist()
    row_sources = rows.sources.tolist()
    masks = regions.xywh()
    tracks, sources = regions.track_ids.tolist(), regions.sources.tolist()
    rows_of = range(len(masks)) if origin is None else origin.tolist()
    records = []
    for i, row in enumerate(rows_of):
        mask = tuple(masks[i])
        if row < 0:
            box = tuple(float(v) for v in mask)
            score = MANUAL_SCORE
        else:
            x1, y1, x2, y2 = boxes[row]
            box = (x1, y1, x2 - x1, y2 - y1)
            score = scores[row] if row_sources[row] == RegionSource.DETECTED else 0.0
        records.append(FaceRecord(box, score, mask, tracks[i],  # type: ignore[arg-type]
                                  RegionSource(sources[i])))
    return tuple(records)


def lowest_score(rows: Detections, origin: np.ndarray | None = None) -> float | None:
    """The lowest detector score among the masked regions that a detection made."""
    if origin is not None:
        rows = rows[origin[origin >= 0]]
    detected = rows.scores[rows.sources == int(RegionSource.DETECTED)]
    return float(detected.min()) if len(detected) else None


@dataclass
class Tally:
    """Per-file counts for the report, added up frame by frame."""

    frames: int = 0
    faces_per_frame: list[int] = field(default_factory=list)
    tracked_frames: int = 0
    low_score_frames: int = 0
    lowest: float | None = None
    tracks: set[int] = field(default_factory=set)
    untracked: int = 0

    def add(self, regions: MaskRegions, lowest: float | None) -> None:
        self.frames += 1
        self.faces_per_frame.append(len(regions))
        if np.any(regions.sources == int(RegionSource.TRACKED)):
            self.tracked_frames += 1
        if lowest is not None and lowest < LOW_SCORE:
            self.low_score_frames += 1
        if lowest is not None and (self.lowest is None or lowest < self.lowest):
            self.lowest = lowest
        for track in regions.track_ids.tolist():
            if track >= 0:
                self.tracks.add(track)
            else:
                self.untracked += 1

    def report(self, path: Path, output: Path, kind: str, seconds: float) -> FileReport:
        """A face followed over many frames counts once; a region no track holds counts alone."""
        return FileReport(
            path=path, output=output, ok=True, kind=kind, frames=self.frames,
            faces=len(self.tracks) + self.untracked, faces_per_frame=tuple(self.faces_per_frame),
            tracked_frames=self.tracked_frames,
            low_score_frames=self.low_score_frames, lowest_score=self.lowest, seconds=seconds,
        )


__all__ = ["face_records", "lowest_score", "Tally", "MANUAL_SCORE", "LOW_SCORE"]
