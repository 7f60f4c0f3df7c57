"""geometry.py: conversions, IoU and greedy matching, each against a small independent oracle.

The matching oracles are the pair-by-pair loops veil used before the matching was shared (the
tracker's, the plan file's, the audit's and the evaluation's): on random boxes drawn on a coarse
grid, so that equal IoUs (ties) are common, the shared function must take exactly their pairs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from veil.geometry import (
    greedy_match,
    greedy_match_matrix,
    iou_matrix,
    iou_pairs,
    touches_edge,
    xywh_to_pixel_xyxy,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def _random_boxes(rng: np.random.Generator, n: int, grid: int = 3, cell: int = 4) -> np.ndarray:
    """Integer xyxy boxes on a coarse grid: identical and equally overlapping boxes are frequent."""
    x0 = rng.integers(0, grid, n) * cell
    y0 = rng.integers(0, grid, n) * cell
    w = rng.integers(1, 4, n) * cell
    h = rng.integers(1, 4, n) * cell
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1).astype(np.float64)


def _py_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# -- oracles: the loops each caller used before --------------------------------------------------

def _loop_best_first(rows: np.ndarray, cols: np.ndarray, affinity: np.ndarray) -> list[tuple[int, int]]:
    """Tracker: sort by (-affinity, row, col), take each pair whose row and column are free."""
    order = sorted(range(len(rows)), key=lambda k: (-float(affinity[k]), int(rows[k]), int(cols[k])))
    used_r: set[int] = set()
    used_c: set[int] = set()
    out = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            out.append((r, c))
    return out


def _plan_file_match(listed: list[tuple[int, ...]], computed: list[tuple[int, ...]],
                     threshold: float) -> dict[int, int]:
    """Plan file: Python floats, sorted (iou, i, j) descending, stop under the threshold."""
    candidates = sorted(((_py_iou(a, b), i, j) for i, a in enumerate(listed)
                         for j, b in enumerate(computed)), reverse=True)
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for iou, i, j in candidates:
        if iou < threshold:
            break
        if i not in pairs and j not in used:
            pairs[i] = j
            used.add(j)
    return pairs


def _audit_match(iou: np.ndarray, threshold: float) -> dict[int, int]:
    """Audit: repeatedly take the matrix's argmax (first in row-major order) and blank its row and column."""
    iou = iou.copy()
    pairs: dict[int, int] = {}
    while iou.size and iou.max() >= threshold:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        pairs[int(j)] = int(i)
        iou[i, :] = -1
        iou[:, j] = -1
    return pairs


def _evaluate_match(ious: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation: predictions by descending score, each takes its best unmatched face (first on ties)."""
    n_pred, n_truth = ious.shape
    face_matched = np.zeros(n_truth, bool)
    pred_matched = np.zeros(n_pred, bool)
    for p in np.argsort(-scores, kind="stable"):
        candidates = np.where(face_matched, -1.0, ious[p])
        best = int(np.argmax(candidates))
        if candidates[best] >= threshold:
            face_matched[best] = True
            pred_matched[p] = True
    return face_matched, pred_matched


# -- matching ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(60))
def test_best_first_matching_takes_the_tracker_loops_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    k = int(rng.integers(0, n_rows * n_cols + 1))
    flat = rng.choice(n_rows * n_cols, k, replace=False)
    rows, cols = np.divmod(flat, n_cols)
    affinity = (rng.integers(-3, 4, k) / 4).astype(np.float32)  # few values: many ties
    got_rows, got_cols = greedy_match(rows, cols, affinity)
    assert list(zip(got_rows.tolist(), got_cols.tolist())) == _loop_best_first(rows, cols, affinity)


@pytest.mark.parametrize("seed", range(60))
def test_reversed_matrix_matching_takes_the_plan_files_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    listed = _random_boxes(rng, int(rng.integers(0, 12)))
    computed = _random_boxes(rng, int(rng.integers(0, 12)))
    expected = _plan_file_match([tuple(b) for b in listed.astype(int).tolist()],
                                [tuple(b) for b in computed.astype(int).tolist()], 0.5)
    # The plan file prefers the later face among equal overlaps: match the reversed lists.
    iou = iou_matrix(listed[::-1], computed[::-1], np.float64)
    rows, cols = greedy_match_matrix(iou, 0.5)
    got = {len(listed) - 1 - r: len(computed) - 1 - c for r, c in zip(rows.tolist(), cols.tolist())}
    assert got == expected


@pytest.mark.parametrize("seed", range(60))
def test_matrix_matching_takes_the_audits_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    veil = _random_boxes(rng, int(rng.integers(0, 12)))
    dlib = _random_boxes(rng, int(rng.integers(0, 12)))
    iou = iou_matrix(veil, dlib)
    rows, cols = greedy_match_matrix(iou, 0.3)
    assert dict(zip(cols.tolist(), rows.tolist())) == _audit_match(iou, 0.3)
    assert list(zip(cols.tolist(), rows.tolist())) == list(_audit_match(iou, 0.3).items())


@pytest.mark.parametrize("seed", range(60))
def test_prioritised_matching_takes_the_evaluations_pairs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    preds = _random_boxes(rng, int(rng.integers(1, 12)))
    truth = _random_boxes(rng, int(rng.integers(1, 12)))
    scores = rng.integers(0, 3, len(preds)) / 2  # tied scores keep the predictions' order
    ious = iou_matrix(preds, truth).astype(np.float64)
    rank = np.empty(len(preds), np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(len(preds))
    rows, cols = greedy_match_matrix(ious, 0.5, row_priority=rank)
    face_matched, pred_matched = _evaluate_match(ious, scores, 0.5)
    assert np.array_equal(np.isin(np.arange(len(truth)), cols), face_matched)
    assert np.array_equal(np.isin(np.arange(len(preds)), rows), pred_matched)


def test_matching_in_rounds_takes_the_pairs_the_one_by_one_greedy_takes() -> None:
    from veil.geometry import _take_in_order

    rng = np.random.default_rng(5)
    for _ in range(200):
        n_rows, n_cols = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        pairs = rng.integers(0, [n_rows, n_cols], (int(rng.integers(1, 200)), 2))
        pairs = np.unique(pairs, axis=0)[rng.permutation(len(np.unique(pairs, axis=0)))]
        expected, used_r, used_c = [], set(), set()
        for r, c in pairs.tolist():  # the plain loop, best pair first
            if r not in used_r and c not in used_c:
                used_r.add(r)
                used_c.add(c)
                expected.append((r, c))
        rows, cols = _take_in_order(pairs[:, 0], pairs[:, 1])
        assert list(zip(rows.tolist(), cols.tolist())) == expected


def test_priority_lets_a_weaker_overlap_win() -> None:
    # Row 1 overlaps column 0 best, but row 0 is served first and takes it.
    affinity = np.array([[0.6, 0.0], [0.9, 0.7]])
    assert [a.tolist() for a in greedy_match_matrix(affinity, 0.5)] == [[1], [0]]
    rows, cols = greedy_match_matrix(affinity, 0.5, row_priority=np.array([0, 1]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]


def test_matching_without_candidates_is_empty() -> None:
    rows, cols = greedy_match(np.zeros(0), np.zeros(0), np.zeros(0))
    assert rows.dtype == np.int64 and len(rows) == 0 and len(cols) == 0
    rows, cols = greedy_match_matrix(np.zeros((3, 0)), 0.5)
    assert len(rows) == 0 and len(cols) == 0
    rows, cols = greedy_match_matrix(np.full((2, 2), 0.2), 0.5)
    assert len(rows) == 0


# -- IoU -----------------------------------------------------------------------------------------

def test_iou_matches_python_floats_exactly_in_float64() -> None:
    rng = np.random.default_rng(7)
    a, b = _random_boxes(rng, 30, grid=50, cell=1), _random_boxes(rng, 20, grid=50, cell=1)
    got = iou_matrix(a, b, np.float64)
    expected = [[_py_iou(tuple(x), tuple(y)) for y in b.tolist()] for x in a.tolist()]
    assert got.dtype == np.float64 and got.tolist() == expected
    assert iou_matrix(a, b).dtype == np.float32
    assert np.array_equal(iou_pairs(a[:20], b), np.diagonal(iou_matrix(a[:20], b)))


def test_iou_of_known_boxes() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [3, 3, 3, 8]], np.float32)
    assert iou_matrix(a, b).tolist() == [[pytest.approx(50 / 150), 0.0, 1.0, 0.0]]
    assert iou_matrix(a[:0], b).shape == (0, 4)


# -- conversions and edges -----------------------------------------------------------------------

def test_conversions_round_trip_and_keep_the_dtype() -> None:
    xywh = np.array([[1, 2, 3, 4], [0, 0, 10, 20]], np.int64)
    xyxy = xywh_to_xyxy(xywh)
    assert xyxy.tolist() == [[1, 2, 4, 6], [0, 0, 10, 20]] and xyxy.dtype == np.int64
    assert np.array_equal(xyxy_to_xywh(xyxy), xywh)
    assert xywh_to_xyxy(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert xyxy_to_xywh([[1.5, 2.0, 4.0, 6.5]]).tolist() == [[1.5, 2.0, 2.5, 4.5]]


@pytest.mark.parametrize(("box", "expected"), [
    ((1.2, 2.7, 3.0, 0.6), (1, 2, 5, 4)),  # every pixel the box reaches, rounded outwards
    ((4, 5, 6, 7), (4, 5, 10, 12)),
    ((-0.5, 0.0, 1.0, 1.0), (-1, 0, 1, 1)),
])
def test_pixel_box_covers_every_touched_pixel(box: tuple[float, ...], expected: tuple[int, ...]) -> None:
    got = xywh_to_pixel_xyxy(box)
    assert got == expected and all(isinstance(v, int) for v in got)
    x, y, w, h = box
    assert got[0] <= x and got[1] <= y and got[2] >= x + w and got[3] >= y + h
    assert got[2] - got[0] <= math.ceil(w) + 1


def test_touches_edge_within_tolerance() -> None:
    boxes = np.array([[1, 50, 20, 60],  # left, within 1 px
                      [2, 50, 20, 60],  # 2 px in: not at the edge
                      [50, 50, 99, 60],  # right: 100 - 1
                      [50, 50, 60, 79],  # bottom: 80 - 1
                      [50, 0.5, 60, 10]], np.float64)
    assert touches_edge(boxes, 100, 80).tolist() == [True, False, True, True, True]
    assert touches_edge(boxes, 100, 80, tolerance=2.0)[1]
