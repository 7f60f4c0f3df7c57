"""Box geometry every stage shares: xywh/xyxy conversions, IoU, greedy one-to-one matching, edge tests.

It sits at the bottom of the data flow and imports nothing from veil, so the detector, the
tracker, the plan file, the audit and the evaluation all measure overlap and pair boxes the same
way: a tie broken differently in two places would make `veil scan` and `veil audit` disagree about
which face is which. Boxes are (N, 4) NumPy arrays; xyxy boxes are end-exclusive in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, w, h -> x0, y0, x1, y1, in the boxes' own dtype (annotations and reports use xywh)."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 -> x, y, w, h, in the boxes' own dtype (the form reports and OpenCV use)."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:4] - b[:, :2]], axis=1)


def xywh_to_pixel_xyxy(box: Sequence[float]) -> tuple[int, int, int, int]:
    """One x, y, w, h box -> the integer xyxy box of every pixel it touches (rounded outwards).

    A person drawing a mask in fractional pixels means every pixel the box reaches to be
    masked; rounding to nearest would leave a partly covered row or column of the face.
    """
    x, y, w, h = box
    return (int(math.floor(x)), int(math.floor(y)), int(math.ceil(x + w)), int(math.ceil(y + h)))


def _iou(a: np.ndarray, b: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """IoU of xyxy boxes along the last axis, broadcast over the others; computed in the boxes' dtype."""
    ix0 = np.maximum(a[..., 0], b[..., 0])
    iy0 = np.maximum(a[..., 1], b[..., 1])
    ix1 = np.minimum(a[..., 2], b[..., 2])
    iy1 = np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(dtype)


def iou_matrix(a: np.ndarray, b: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """IoU of every box in a (N, 4) against every box in b (M, 4), xyxy; (N, M).

    float32 is plenty for thresholds on detector boxes; pass float64 boxes and dtype=np.float64
    where integer boxes must be compared exactly (the plan file), since rounding IoUs to float32
    can tie two that differ or push one across a threshold.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype)
    return _iou(a[:, None, :], b[None, :, :], dtype)


def iou_pairs(a: np.ndarray, b: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """IoU of each box in a (N, 4) with the box in the same row of b (N, 4), xyxy; (N,).

    For callers that already know which pairs can overlap (the tracker): the full matrix of a
    crowd would be mostly zeros.
    """
    return _iou(a, b, dtype).reshape(len(a))


def greedy_match(rows: np.ndarray, cols: np.ndarray, affinity: np.ndarray, *,
                 min_affinity: float | None = None,
                 row_priority: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching of candidate pairs (rows[k], cols[k]) scored affinity[k].

    Pairs are taken best first, and a pair is skipped when an earlier taken pair holds its row
    or its column. "Best first" is the highest affinity, ties broken by row then column
    (ascending); with `row_priority` (one number per row, lower first) the rows are served in
    that order instead, each taking its highest-affinity free column (ties: lowest column), which
    is how detections are scored against ground truth (most confident prediction first).
    Pairs under `min_affinity` are never taken. Returns the taken rows and columns, in the order
    they were taken.

    Greedy rather than optimal (Hungarian) matching: it is what the WIDER FACE scoring rules and
    the tracker were tuned with, and the same pairs must come out everywhere.
    """
    rows = np.asarray(rows, np.int64).reshape(-1)
    cols = np.asarray(cols, np.int64).reshape(-1)
    affinity = np.asarray(affinity).reshape(-1)
    if min_affinity is not None:
        keep = affinity >= min_affinity
        rows, cols, affinity = rows[keep], cols[keep], affinity[keep]
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if row_priority is None:
        order = np.lexsort((cols, rows, -affinity))
    else:
        order = np.lexsort((cols, -affinity, np.asarray(row_priority)[rows]))
    return _take_in_order(rows[order], cols[order])


def greedy_match_matrix(affinity: np.ndarray, min_affinity: float, *,
                        row_priority: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`greedy_match` over every (row, column) of a dense (N, M) affinity matrix, e.g. iou_matrix's."""
    affinity = np.asarray(affinity)
    rows, cols = np.nonzero(affinity >= min_affinity)
    return greedy_match(rows, cols, affinity[rows, cols], row_priority=row_priority)


def _take_in_order(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching over pairs sorted best first: a pair is taken unless an earlier taken
    pair has its row or its column. Returns the taken pairs' rows and columns, in list order.

    Worked in rounds rather than pair by pair (a crowd gives thousands of candidate pairs a
    frame): a pair that comes first for both its row and its column among the pairs left is taken
    (nothing before it can block it), and the pairs it blocks are dropped. This takes exactly the
    pairs the one-by-one loop would.
    """
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    all_rows, all_cols = rows, cols
    position = np.arange(len(rows))
    taken: list[np.ndarray] = []
    while len(rows):
        first_row = np.zeros(len(rows), bool)
        first_row[np.unique(rows, return_index=True)[1]] = True
        first_col = np.zeros(len(rows), bool)
        first_col[np.unique(cols, return_index=True)[1]] = True
        take = first_row & first_col
        taken.append(position[take])
        row_used = np.zeros(n_rows, bool)
        row_used[rows[take]] = True
        col_used = np.zeros(n_cols, bool)
        col_used[cols[take]] = True
        left = ~(row_used[rows] | col_used[cols])
        rows, cols, position = rows[left], cols[left], position[left]
    in_order = np.sort(np.concatenate(taken))
    return all_rows[in_order], all_cols[in_order]


def touches_edge(boxes: np.ndarray, width: int, height: int, tolerance: float = 1.0) -> np.ndarray:
    """Which xyxy boxes reach (within `tolerance` px) the edge of a width x height image.

    A face cut off by the frame shows only part of itself: the detector scores it lower and the
    tracker carries it longer, so both need the same notion of "at the edge".
    """
    return ((boxes[:, 0] <= tolerance) | (boxes[:, 1] <= tolerance)
            | (boxes[:, 2] >= width - tolerance) | (boxes[:, 3] >= height - tolerance))
