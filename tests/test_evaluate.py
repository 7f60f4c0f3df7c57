"""The evaluation harness itself: hand-built cases where the right figures are known, then real annotations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from veil._types import Detections, MaskRegions
from veil.cli import app
from veil.evaluate import (
    covered_fractions,
    evaluate,
    format_table,
    match_one_to_one,
    per_face_over_time,
    read_annotations,
    read_clip_truth,
    score_frame,
    summarise,
)

W, H = 200, 100


def xyxy(boxes_xywh: list[list[float]]) -> np.ndarray:
    b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def score(truth: list[list[float]], preds_xyxy: np.ndarray, masks: np.ndarray | None = None,
          ignore: list[list[float]] | None = None, scores: list[float] | None = None,
          width: int = W, height: int = H):  # type: ignore[no-untyped-def]
    preds = np.asarray(preds_xyxy, np.float64).reshape(-1, 4)
    masks = preds if masks is None else masks
    return score_frame(np.asarray(truth, np.float64), np.asarray(ignore or [], np.float64), preds,
                       None if scores is None else np.asarray(scores), masks, width, height)


FACES = [[10, 10, 8, 10], [40, 20, 15, 20], [100, 10, 30, 40], [150, 5, 45, 80]]  # heights 10, 20, 40, 80


def test_ground_truth_as_predictions_scores_one() -> None:
    report = summarise([score(FACES, xyxy(FACES))])
    for bucket in report.buckets:
        assert bucket.faces == (4 if bucket.name == "all" else 2 if bucket.name == ">=32" else 1)
        assert bucket.recall == 1.0 and bucket.covered_recall == 1.0
    assert report.precision == 1.0
    assert report.area_ratio == pytest.approx(1.0)


def test_loose_precision_counts_any_box_touching_a_face_or_ignore_region() -> None:
    preds = np.array([
        [12, 12, 40, 40],   # a loose box over face 0 (IoU far under 0.5): on a face
        [0, 60, 10, 70],    # nothing there: a false mask
        [180, 90, 200, 100],  # on the ignore region only
        [60, 60, 70, 70],   # nothing there
    ], np.float64)
    frame = score(FACES[:1], preds, ignore=[[185, 92, 5, 5]])
    assert (frame.on_faces, frame.predictions) == (2, 4)
    report = summarise([frame, score(FACES[:1], np.zeros((0, 4)))])
    assert report.loose_precision == 0.5
    assert report.precision == 0.0  # the strict figure: no box matches at IoU 0.5


def test_no_predictions_scores_zero() -> None:
    report = summarise([score(FACES, np.zeros((0, 4)))])
    assert all(b.recall == 0.0 and b.covered_recall == 0.0 for b in report.buckets)
    assert report.mask_share == 0.0
    assert math.isnan(report.precision)  # nothing predicted: precision is undefined, not 1


def test_whole_image_mask_is_flagged_by_the_area_figure() -> None:
    whole = np.array([[0, 0, W, H]])
    report = summarise([score(FACES, np.zeros((0, 4)), masks=whole)])
    assert report.bucket("all").covered_recall == 1.0  # masking everything covers everything...
    assert report.bucket("all").recall == 0.0  # ...but finds nothing
    assert report.mask_share == 1.0
    face_share = report.face_share
    assert report.area_ratio == pytest.approx(1.0 / face_share)
    assert report.area_ratio > 3.0  # far over the 3x budget: the table shows it


def test_matching_is_one_to_one_and_a_second_box_is_a_false_positive() -> None:
    face = [[50, 20, 40, 40]]
    twice = np.array([[50, 20, 90, 60], [52, 21, 91, 61]], np.float64)
    s = score(face, twice)
    assert s.found.tolist() == [True]
    assert (s.true_positives, s.false_positives) == (1, 1)


def test_the_higher_score_takes_the_face_it_overlaps_most() -> None:
    faces = [[0, 0, 20, 20], [8, 0, 20, 20]]
    # One prediction sits between both faces (IoU 0.6 with the first, 0.74 with the second); the
    # other fits the second face exactly (IoU 0.43 with the first). Score order decides.
    preds = np.array([[5, 0, 25, 20], [8, 0, 28, 20]], np.float64)
    first, pred_matched = match_one_to_one(xyxy(faces), preds, np.array([0.9, 0.8]))
    assert first.tolist() == [False, True] and pred_matched.tolist() == [True, False]
    second, pred_matched = match_one_to_one(xyxy(faces), preds, np.array([0.8, 0.9]))
    assert second.tolist() == [True, True] and pred_matched.tolist() == [True, True]


def test_iou_below_half_is_not_found_but_may_be_covered() -> None:
    face = [[20, 20, 20, 20]]
    big = np.array([[0, 0, 80, 80]], np.float64)  # contains the face, IoU 400/6400
    s = score(face, big)
    assert s.found.tolist() == [False] and s.covered.tolist() == [True]
    assert s.false_positives == 1


def test_covered_needs_eighty_percent_of_the_box() -> None:
    face = [[10, 10, 10, 20]]
    just = np.array([[0, 0, 200, 26]])  # rows 10..26 of 10..30: 16/20 = 80 %
    short = np.array([[0, 0, 200, 25]])  # 15/20 = 75 %
    assert score(face, np.zeros((0, 4)), masks=just).covered.tolist() == [True]
    assert score(face, np.zeros((0, 4)), masks=short).covered.tolist() == [False]
    # Overlapping masks count once: two halves that overlap still cover 100 %, not 150 %.
    halves = np.array([[0, 0, 200, 22], [0, 18, 200, 40]])
    assert score(face, np.zeros((0, 4)), masks=halves).covered_fraction[0] == pytest.approx(1.0)


def test_fractional_boxes_and_boolean_coverage() -> None:
    coverage = np.zeros((10, 10), bool)
    coverage[:, :5] = True
    # A box from x=4.5 to 6.5 has a quarter of its width on masked pixels.
    assert covered_fractions(np.array([[4.5, 0, 6.5, 10]]), coverage)[0] == pytest.approx(0.25)
    # A box partly outside the frame counts its outside part as uncovered.
    assert covered_fractions(np.array([[-5, 0, 5, 10]]), coverage)[0] == pytest.approx(0.5)
    s = score_frame(np.array([[0, 0, 4, 4]]), np.zeros((0, 4)), np.zeros((0, 4)), None, coverage, 10, 10)
    assert s.covered.tolist() == [True] and s.mask_share == 0.5


def test_ignore_regions_are_neither_misses_nor_false_positives() -> None:
    faces = [[100, 20, 30, 30]]
    ignore = [[10, 10, 8, 8]]
    on_ignore = np.array([[9, 9, 19, 19]], np.float64)
    s = score(faces, on_ignore, ignore=ignore)
    assert s.faces == 1  # the ignore region is not a face to find
    assert (s.true_positives, s.false_positives) == (0, 0)
    elsewhere = np.array([[50, 50, 60, 60]], np.float64)
    assert score(faces, elsewhere, ignore=ignore).false_positives == 1
    # A prediction that matches a real face is a true positive even near an ignore region.
    assert score(faces, xyxy(faces), ignore=ignore).true_positives == 1


@pytest.mark.parametrize(("height", "bucket"), [(5, "<16"), (15.9, "<16"), (16, "16-32"), (31, "16-32"),
                                                (32, "32-64"), (63, "32-64"), (64, "64+"), (90, "64+")])
def test_size_buckets_use_box_height(height: float, bucket: str) -> None:
    report = summarise([score([[0, 0, 10, height]], np.zeros((0, 4)))])
    assert {b.name: b.faces for b in report.buckets}[bucket] == 1
    assert sum(b.faces for b in report.buckets[:4]) == 1


def test_real_annotations_as_predictions_score_one(wider_dir: Path) -> None:
    truths = read_annotations(wider_dir / "gt.jsonl")
    assert len(truths) == 183 and sum(len(t.boxes) for t in truths) == 996
    scores = [score_frame(t.boxes, t.ignore, t.boxes_xyxy, None, t.boxes_xyxy, t.width, t.height)
              for t in truths]
    report = summarise(scores)
    assert [b.faces for b in report.buckets] == [140, 353, 260, 243, 503, 996]
    assert all(b.recall == 1.0 and b.covered_recall == 1.0 for b in report.buckets)
    assert report.precision == 1.0 and report.area_ratio == pytest.approx(1.0)


def test_evaluate_reads_images_and_runs_a_predictor(wider_dir: Path) -> None:
    truths = read_annotations(wider_dir / "gt.jsonl")[:3]
    seen = []

    def oracle(pixels: np.ndarray) -> tuple[Detections, MaskRegions]:
        # Frames come in annotation order, decoded at their annotated size.
        seen.append(pixels.shape)
        t = truths[len(seen) - 1]
        assert pixels.shape == (t.height, t.width, 3)
        boxes = t.boxes_xyxy
        return Detections(boxes, np.ones(len(boxes))), MaskRegions(np.ceil(boxes).astype(np.int64))

    report = evaluate(truths, wider_dir, predictor=oracle, label="oracle")
    assert len(seen) == 3
    assert report.bucket("all").covered_recall == 1.0 and report.bucket("all").recall == 1.0
    assert "oracle" in format_table([report])


def test_clip_truth_and_per_face_over_time(tmp_path: Path) -> None:
    path = tmp_path / "clip_0.gt.jsonl"
    rows = [{"frame": 0, "boxes": [[10.5, 10.25, 20.0, 20.0]], "ignore": [], "ids": [7]},
            {"frame": 1, "boxes": [[11.0, 10.0, 20.0, 20.0]], "ignore": [[0, 0, 3, 3]], "ids": [7]},
            {"frame": 2, "boxes": [[12.0, 10.0, 20.0, 20.0]], "ignore": [], "ids": [7]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    truths = read_clip_truth(path, 64, 48)
    assert [t.frame for t in truths] == [0, 1, 2] and truths[0].image == "clip_0#0"
    assert truths[0].boxes_xyxy[0].tolist() == [10.5, 10.25, 30.5, 30.25]
    masks = [np.array([[0, 0, 64, 48]]), np.zeros((0, 4)), np.array([[12, 10, 32, 30]])]
    scores = [score_frame(t.boxes, t.ignore, np.zeros((0, 4)), None, m, t.width, t.height, ids=t.ids)
              for t, m in zip(truths, masks)]
    (face,) = per_face_over_time(scores)
    assert (face.face_id, face.frames, face.uncovered_frames, face.longest_uncovered_run) == (7, 3, 1, 1)


def test_veil_eval_command(wider_dir: Path, tmp_path: Path) -> None:
    rows = (wider_dir / "gt.jsonl").read_text().splitlines()
    gt = tmp_path / "gt.jsonl"
    # Two images with large, clear faces: the real detector must find them.
    picked = [r for r in rows if min(json.loads(r)["boxes"], key=lambda b: b[3])[3] >= 64][:2]
    assert len(picked) == 2
    gt.write_text("\n".join(picked) + "\n")
    result = CliRunner().invoke(app, ["eval", "--annotations", str(gt), "--images", str(wider_dir),
                                      "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["frames"] == 2 and figures["buckets"]["all"]["faces"] >= 2
    assert figures["buckets"]["64+"]["covered_recall"] == 1.0
    assert 0 < figures["area_ratio"] < 10 and figures["images_per_second"] > 0
    table = CliRunner().invoke(app, ["eval", "--annotations", str(gt), "--images", str(wider_dir)])
    assert table.exit_code == 0 and "covered <16" in table.stdout
