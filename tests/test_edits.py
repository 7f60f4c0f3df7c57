"""Plan files: strict validation, fail-safe editing of veil's regions, and `veil redact --plan`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_face_shows, boxes_overlap, most_exposed, run_cli
from PIL import Image

from veil import Config, InputError, MaskRegions, StaticDetector
from veil._types import RegionSource
from veil.media.image import read_image
from veil.pipeline import redact_file, scan_file
from veil.edits import Edits, FaceAction, load_plan, parse_plan

W, H = 200, 100


def computed(*boxes: tuple[int, int, int, int], tracks: tuple[int, ...] = ()) -> MaskRegions:
    """A MaskRegions as veil would compute it, from (x0, y0, x1, y1) boxes."""
    return MaskRegions(np.asarray(boxes, np.int64).reshape(-1, 4),
                    track_ids=np.asarray(tracks or [-1] * len(boxes), np.int64))


def plan_of(*rows: dict[str, object], path: str = "a.jpg") -> Edits:
    lines = [json.dumps(r) for r in rows]
    return parse_plan(lines, "plan.jsonl", [Path("/data")]).for_input(Path("/data") / path)


def frame_line(faces: list[dict[str, object]], frame: int = 0, path: str = "a.jpg") -> dict[str, object]:
    return {"path": path, "frame": frame, "width": W, "height": H, "faces": faces}


def boxes(plan: MaskRegions) -> list[list[int]]:
    return sorted(plan.boxes.tolist())


A, B = (10, 10, 40, 50), (100, 20, 140, 70)  # two computed regions, xyxy
A_XYWH, B_XYWH = [10, 10, 30, 40], [100, 20, 40, 50]


def test_frames_the_plan_does_not_name_keep_veils_regions() -> None:
    plan = plan_of(frame_line([{"mask": A_XYWH, "remove": True}], frame=3))
    assert boxes(plan.regions_for(0, computed(A, B), W, H)) == sorted([list(A), list(B)])
    assert boxes(plan.regions_for(3, computed(A, B), W, H)) == [list(B)]


def test_empty_plan_changes_nothing() -> None:
    result = Edits.empty().regions_for(0, computed(A, B), W, H)
    assert boxes(result) == sorted([list(A), list(B)])


@pytest.mark.parametrize("flag", ["remove", "keep"])
def test_flagged_face_is_unmasked_and_the_others_stay(flag: str) -> None:
    plan = plan_of(frame_line([{"mask": A_XYWH, flag: True}, {"mask": B_XYWH}]))
    assert boxes(plan.regions_for(0, computed(A, B), W, H)) == [list(B)]


def test_deleting_a_face_from_its_line_does_not_unmask_it() -> None:
    plan = plan_of(frame_line([{"mask": B_XYWH}]))  # A was deleted by hand
    assert boxes(plan.regions_for(0, computed(A, B), W, H)) == sorted([list(A), list(B)])


def test_a_release_needs_real_overlap_with_veils_region() -> None:
    # The flagged box overlaps A by less than MATCH_IOU, so A stays masked.
    plan = plan_of(frame_line([{"mask": [25, 10, 30, 40], "keep": True}]))
    assert boxes(plan.regions_for(0, computed(A, B), W, H)) == sorted([list(A), list(B)])


def test_an_edited_mask_grows_a_region_but_never_shrinks_it() -> None:
    grown = plan_of(frame_line([{"mask": [5, 5, 40, 50]}]))
    assert boxes(grown.regions_for(0, computed(A), W, H)) == [[5, 5, 45, 55]]
    shrunk = plan_of(frame_line([{"mask": [12, 12, 26, 36]}]))
    assert boxes(shrunk.regions_for(0, computed(A), W, H)) == [list(A)]


def test_a_listed_face_veil_did_not_find_is_masked_as_manual() -> None:
    plan = plan_of(frame_line([{"mask": [150, 60, 20, 30]}]))
    result = plan.regions_for(0, computed(A), W, H)
    assert boxes(result) == sorted([list(A), [150, 60, 170, 90]])
    manual = result.sources[result.boxes[:, 0] == 150]
    assert manual.tolist() == [int(RegionSource.MANUAL)]


def test_keep_track_leaves_that_track_visible_in_its_frames_only() -> None:
    plan = plan_of({"keep_track": 7, "frames": [2, 4]})
    regions = computed(A, B, tracks=(7, 8))
    assert boxes(plan.regions_for(1, regions, W, H)) == sorted([list(A), list(B)])
    for frame in (2, 3, 4):
        result = plan.regions_for(frame, regions, W, H)
        assert boxes(result) == [list(B)] and result.track_ids.tolist() == [8]
    assert len(plan.regions_for(5, regions, W, H)) == 2


def test_add_masks_a_region_in_its_frame_range() -> None:
    plan = plan_of({"add": [150.5, 60, 20, 30], "frames": [1, 2]})
    assert len(plan.regions_for(0, computed(), W, H)) == 0
    result = plan.regions_for(2, computed(), W, H)
    assert boxes(result) == [[150, 60, 171, 90]]  # rounded outwards, never inwards
    assert result.sources.tolist() == [int(RegionSource.MANUAL)]
    assert len(plan.regions_for(3, computed(), W, H)) == 0


def test_add_without_frames_applies_to_every_frame() -> None:
    plan = plan_of({"add": [0, 0, 10, 10]})
    assert all(len(plan.regions_for(f, computed(), W, H)) == 1 for f in (0, 1, 500))


def test_add_track_interpolates_between_key_frames() -> None:
    plan = plan_of({"add_track": [{"frame": 20, "box": [100, 40, 20, 20]},
                                  {"frame": 10, "box": [0, 0, 10, 10]}]})
    assert len(plan.regions_for(9, computed(), W, H)) == 0
    assert boxes(plan.regions_for(10, computed(), W, H)) == [[0, 0, 10, 10]]
    assert boxes(plan.regions_for(15, computed(), W, H)) == [[50, 20, 65, 35]]
    assert boxes(plan.regions_for(20, computed(), W, H)) == [[100, 40, 120, 60]]
    assert len(plan.regions_for(21, computed(), W, H)) == 0


def test_added_region_is_clipped_to_the_frame_edge() -> None:
    plan = plan_of({"add": [190, 90, 50, 50]}, {"add": [-10.5, -5, 20, 20]})
    assert boxes(plan.regions_for(0, computed(), W, H)) == [[0, 0, 10, 15], [190, 90, W, H]]


def test_a_detection_box_past_the_edge_is_accepted() -> None:
    plan = plan_of(frame_line([{"box": [-3.5, -1.2, 20.0, 30.0], "score": 0.4, "mask": [0, 0, 22, 34]}]))
    assert plan.frames[0].faces[0].mask == (0, 0, 22, 34)


def test_added_region_outside_the_frame_is_an_error() -> None:
    plan = plan_of({"add": [500, 500, 10, 10]})
    with pytest.raises(InputError, match="line 1: the added region lies outside"):
        plan.regions_for(0, computed(), W, H)


def test_remove_directive_drops_overlapping_regions() -> None:
    plan = plan_of({"remove": [11, 10, 30, 40]})
    assert boxes(plan.regions_for(0, computed(A, B), W, H)) == [list(B)]


def test_added_regions_survive_releases() -> None:
    plan = plan_of({"remove": A_XYWH}, {"add": A_XYWH})
    result = plan.regions_for(0, computed(A), W, H)
    assert boxes(result) == [list(A)] and result.sources.tolist() == [int(RegionSource.MANUAL)]


def test_frame_size_mismatch_names_the_line() -> None:
    plan = plan_of({"add": [0, 0, 5, 5]}, frame_line([{"mask": A_XYWH}]))
    with pytest.raises(InputError, match=r"line 2: .* 200x100 but the input is 300x100") as info:
        plan.regions_for(0, computed(A), 300, H)
    assert str(info.value.path) == "plan.jsonl"


def test_scan_output_reads_back_as_a_plan() -> None:
    line = {"path": "a.mp4", "frame": 4, "time": 0.16, "width": W, "height": H,
            "faces": [{"box": [12.0, 14.0, 26.0, 30.0], "score": 0.91, "mask": A_XYWH, "track": 3}]}
    plan = plan_of(line, path="a.mp4")
    assert plan.frames[4].faces[0].track == 3
    assert plan.frames[4].faces[0].action is FaceAction.MASK


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"path": "a.jpg"}', "frame line"),
    ('{"add": [0, 0, 5, 5], "remove": [0, 0, 5, 5]}', "exactly one directive"),
    ('{"keep_trak": 3}', "frame line"),
    ('{"keep_track": 3, "frame": 2}', "unknown key frame"),
    ('{"keep_track": -2}', "at least 0"),
    ('{"keep_track": true}', "whole number"),
    ('{"add": [0, 0, 0, 5]}', "positive width"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [-1, 0, 5, 5]}]}',
     "must not start left"),
    ('{"add": [0, 0, 5]}', "[x, y, w, h]"),
    ('{"add": [0, 0, 5, "5"]}', "must be a number"),
    ('{"add": [0, 0, 5, 5], "frames": [4, 2]}', "must not end before"),
    ('{"add": [0, 0, 5, 5], "frames": [1]}', "[first, last]"),
    ('{"add_track": []}', "non-empty list"),
    ('{"add_track": [{"frame": 1, "box": [0, 0, 5, 5]}, {"frame": 1, "box": [1, 1, 5, 5]}]}',
     "two key frames"),
    ('{"add_track": [{"frame": 1}]}', "key frame 1"),
    ('{"frame": 0, "width": 200, "height": 100, "faces": []}', 'needs "path"'),
    ('{"path": "a.jpg", "width": 200, "height": 100, "faces": []}', 'needs "frame"'),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": {}}', "must be a list"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"box": [0, 0, 5, 5]}]}',
     'needs "mask"'),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5.5, 5]}]}',
     "whole number"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [190, 0, 20, 5]}]}',
     "reaches outside"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5, 5], '
     '"keep": true, "remove": true}]}', "cannot both"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5, 5], '
     '"keep": 1}]}', "true or false"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5, 5], '
     '"colour": 1}]}', "unknown key colour"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5, 5], '
     '"score": 3}]}', "between 0.0 and 1.0"),
]


@pytest.mark.parametrize(("text", "message"), BAD_LINES)
def test_bad_lines_are_refused_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    plan_path = tmp_path / "plan.jsonl"
    plan_path.write_text("# a comment line\n\n" + text + "\n")
    with pytest.raises(InputError) as info:
        load_plan(plan_path)
    assert info.value.path == plan_path
    assert info.value.message.startswith("line 3: ")
    assert message in info.value.message


def test_the_same_frame_twice_is_refused() -> None:
    line = json.dumps(frame_line([]))
    with pytest.raises(InputError, match="line 2: frame 0 of a.jpg is already described on line 1"):
        parse_plan([line, line], "plan.jsonl")


def test_unmasking_directive_needs_a_path_when_the_plan_names_several_files() -> None:
    lines = [json.dumps(frame_line([], path="a.jpg")), json.dumps(frame_line([], path="b.jpg")),
             json.dumps({"keep_track": 1})]
    with pytest.raises(InputError, match="line 3: .*must say which one"):
        parse_plan(lines, "plan.jsonl")


def test_paths_match_relative_to_the_plan_folder_and_must_be_inputs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    plan_path = tmp_path / "sub" / "plan.jsonl"
    plan_path.write_text(json.dumps(frame_line([{"mask": A_XYWH, "remove": True}], path="../a.jpg"))
                         + "\n" + json.dumps({"add": [0, 0, 5, 5], "path": "b.jpg"}) + "\n")
    plan = load_plan(plan_path)
    plan.check_inputs([tmp_path / "a.jpg", tmp_path / "sub" / "b.jpg"])
    assert 0 in plan.for_input(tmp_path / "a.jpg").frames
    assert not plan.for_input(tmp_path / "c.jpg")
    assert len(plan.for_input(tmp_path / "sub" / "b.jpg").adds) == 1
    with pytest.raises(InputError, match="line 1: names ../a.jpg, which is not among the inputs"):
        plan.check_inputs([tmp_path / "sub" / "b.jpg"])


def test_pathless_release_with_several_inputs_is_refused() -> None:
    plan = parse_plan([json.dumps({"keep_track": 1})], "plan.jsonl")
    plan.check_inputs([Path("a.mp4")])
    with pytest.raises(InputError, match="line 1: .*needs a \"path\""):
        plan.check_inputs([Path("a.mp4"), Path("b.mp4")])


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="plan file not found"):
        load_plan(tmp_path / "nope.jsonl")


# ---- through the still pipeline, with a fixed detector and real files ----


def test_redact_file_applies_the_plan(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pixels = rng.integers(40, 220, (H, W, 3), dtype=np.uint8)
    source = tmp_path / "a.png"
    Image.fromarray(pixels).save(source)
    detector = StaticDetector([(20, 20, 40, 50), (120, 30, 150, 70)])
    config = Config(margin_x=0, margin_top=0, margin_bottom=0)
    [scan] = scan_file(source, config, detector)
    first, second = scan.to_json()["faces"]
    line = {**scan.to_json(), "faces": [{**first, "keep": True}, second]}
    lines = [json.dumps(line), json.dumps({"add": [170, 5, 20, 20]})]
    plan = parse_plan(lines, "plan.jsonl", [tmp_path]).for_input(source)

    [edited] = scan_file(source, config, detector, plan=plan)
    assert sorted(f.mask for f in edited.faces) == sorted([tuple(second["mask"]), (170, 5, 20, 20)])
    assert {f.source for f in edited.faces} == {RegionSource.DETECTED, RegionSource.MANUAL}

    out = tmp_path / "a.redacted.png"
    report = redact_file(source, out, config, detector=detector, plan=plan)
    result = np.asarray(Image.open(out).convert("RGB"))
    assert report.faces == 2
    assert np.array_equal(result[20:50, 20:40], pixels[20:50, 20:40])  # kept visible
    assert (result[30:70, 120:150] == 0).all()  # still masked
    assert (result[5:25, 170:190] == 0).all()  # added
    untouched = np.ones((H, W), bool)
    untouched[30:70, 120:150] = untouched[5:25, 170:190] = False
    assert np.array_equal(result[untouched], pixels[untouched])


def test_plan_for_a_frame_a_still_does_not_have(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(source)
    plan = parse_plan([json.dumps(frame_line([], frame=2, path="a.png"))], "plan.jsonl", [tmp_path]).for_input(source)
    with pytest.raises(InputError, match="line 1: frame 2 does not exist"):
        redact_file(source, tmp_path / "out.png", detector=StaticDetector([]), plan=plan)
    assert not (tmp_path / "out.png").exists()


# ---- the real CLI and detector on a real photo ----


def test_cli_scan_edit_redact_round_trip(tmp_path: Path, wider_dir: Path, wider_gt) -> None:  # type: ignore[no-untyped-def]
    truth = next(t for t in wider_gt if 3 <= len(t.boxes) <= 8 and t.boxes[:, 2].min() >= 30)
    photo = tmp_path / "photo.jpg"
    shutil.copyfile(wider_dir / truth.image, photo)  # a temporary copy, deleted with tmp_path
    scanned = run_cli("scan", "--json", photo)
    assert scanned.exit_code == 0, scanned.stderr
    [line] = [json.loads(t) for t in scanned.stdout.splitlines()]
    faces = line["faces"]
    assert len(faces) >= 2
    masks = [tuple(f["mask"]) for f in faces]

    decoded = read_image(photo).pixels
    # Keep visible the face with most pixels no other mask covers: those must come through.
    kept = most_exposed(decoded.shape, masks)
    faces[kept]["keep"] = True
    # Add a region on a bright patch away from every face, so masking it shows.
    added = next([x, y, 40, 40] for y in range(0, decoded.shape[0] - 40, 20)
                 for x in range(0, decoded.shape[1] - 40, 20)
                 if decoded[y:y + 40, x:x + 40].mean() > 60
                 and not any(boxes_overlap((x, y, 40, 40), m) for m in masks))
    plan_path = tmp_path / "plan.jsonl"
    plan_path.write_text(json.dumps(line) + "\n" + json.dumps({"add": added}) + "\n")

    out = tmp_path / "photo.redacted.jpg"
    done = run_cli("redact", photo, "-o", out, "--plan", plan_path)
    assert done.exit_code == 0, done.stderr
    result = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    # The output is a fresh JPEG (quality 95), compared with veil's own decode (sRGB).
    assert_one_face_shows(decoded, result, masks, kept, inset=4, brighter_than=20)
    x, y = added[:2]
    assert result[y + 4:y + 36, x + 4:x + 36].mean() < 4

    wrong = run_cli("redact", photo, "-o", tmp_path / "x.png", "--plan", plan_path.with_name("none.jsonl"))
    assert wrong.exit_code == 2 and "plan file not found" in wrong.stderr
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**line, "path": str(tmp_path / "elsewhere.jpg")}) + "\n")
    refused = run_cli("redact", photo, "-o", tmp_path / "y.png", "--plan", other)
    assert refused.exit_code == 2 and "line 1: names" in refused.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_review_reports_released_regions_with_their_decision() -> None:
    plan = plan_of(frame_line([{"mask": A_XYWH, "keep": True}, {"mask": [150, 60, 20, 30], "remove": True}]),
                   {"add": [0, 0, 5, 5]})
    reviewed = plan.review(0, computed(A, B), W, H)
    by_action = {r.action: r for r in reviewed}
    assert by_action[FaceAction.KEEP].box == A and by_action[FaceAction.KEEP].origin == 0
    assert by_action[FaceAction.REMOVE].box == (150, 60, 170, 90)  # listed, not found: shown, not masked
    masked = [r.box for r in reviewed if r.action is FaceAction.MASK]
    assert sorted(masked) == sorted([B, (0, 0, 5, 5)])


def test_the_readme_example_plan_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```jsonl\n", 1)[1].split("```", 1)[0]
    rows, buffer = [], ""
    for text in block.splitlines():  # the first example line is wrapped for reading
        buffer += text
        try:
            rows.append(json.loads(buffer))
            buffer = ""
        except json.JSONDecodeError:
            continue
    assert buffer == "" and len(rows) == 6
    plan = parse_plan([json.dumps(r) for r in rows], "README.md", [Path("/x")])
    assert {FaceAction.KEEP, FaceAction.REMOVE} <= {f.action for f in plan.frame_lines["photo.jpg"][0].faces}
    clip = plan.for_input(Path("/x/clip.mp4"))
    assert len(clip.adds) == 3 and len(clip.releases) == 2


@pytest.mark.slow  # renders a clip and runs the real detector on it
def test_cli_video_plan_keep_track_and_add_track(tmp_path: Path, make_clips_module) -> None:  # type: ignore[no-untyped-def]
    import av
    from fractions import Fraction

    [entry] = make_clips_module.make_clips(str(tmp_path), count=1, seconds=1.0, fps=Fraction(10),
                                           size=(480, 270))
    clip = tmp_path / Path(entry["video"]).name
    scanned = run_cli("scan", "--json", clip)
    assert scanned.exit_code == 0, scanned.stderr
    lines = [json.loads(t) for t in scanned.stdout.splitlines()]
    assert len(lines) == 10 and all("time" in line for line in lines)

    def apart(track: int) -> bool:
        return all(not boxes_overlap(f["mask"], o["mask"]) for line in lines for f in line["faces"]
                   if f["track"] == track for o in line["faces"] if o["track"] != track)

    tracks = sorted({f["track"] for line in lines for f in line["faces"] if f["track"] >= 0})
    # Prefer a track that never touches another; the pixel checks below skip overlaps anyway.
    kept = max([t for t in tracks if apart(t)] or tracks,
               key=lambda t: sum(f["track"] == t for line in lines for f in line["faces"]))
    plan_lines = [json.dumps(line) for line in lines]  # the scan itself, unedited: changes nothing
    plan_lines.append(json.dumps({"keep_track": kept}))
    plan_lines.append(json.dumps({"add_track": [{"frame": 0, "box": [4, 200, 30, 30]},
                                                {"frame": 9, "box": [94, 200, 30, 30]}]}))
    plan_path = tmp_path / "plan.jsonl"
    plan_path.write_text("\n".join(plan_lines) + "\n")
    out = tmp_path / "out.mp4"
    done = run_cli("redact", clip, "-o", out, "--plan", plan_path)
    assert done.exit_code == 0, done.stderr

    with av.open(str(clip)) as a, av.open(str(out)) as b:
        pairs = list(zip((f.to_ndarray(format="rgb24") for f in a.decode(video=0)),
                         (f.to_ndarray(format="rgb24") for f in b.decode(video=0))))
    assert len(pairs) == 10
    seen_kept = 0
    for index, (before, after) in enumerate(pairs):
        before, after = before.astype(np.int16), after.astype(np.int16)
        x_added = 4 + 10 * index  # the added box moves 10 px a frame
        covered = np.zeros(before.shape[:2], bool)  # pixels other masks hide whatever the plan says
        covered[199:231, x_added - 1:x_added + 31] = True
        for face in lines[index]["faces"]:
            if face["track"] != kept:
                x, y, w, h = face["mask"]
                covered[y:y + h, x:x + w] = True
        for face in lines[index]["faces"]:
            x, y, w, h = face["mask"]
            if face["track"] == kept:
                visible = ~covered[y:y + h, x:x + w]
                if visible.sum() >= 20:
                    seen_kept += 1
                    diff = np.abs(after[y:y + h, x:x + w] - before[y:y + h, x:x + w])[visible]
                    assert diff.mean() < 6, f"kept track altered in frame {index}"
            elif w > 8 and h > 8:
                assert after[y + 3:y + h - 3, x + 3:x + w - 3].mean() < 12
        assert after[204:226, x_added + 4:x_added + 26].mean() < 12, f"added track not masked in frame {index}"
    assert seen_kept >= 1


def test_keep_track_follows_the_listed_positions_not_the_number() -> None:
    # The scan showed track 7 at A; this run numbers the face at A as 9 and someone else at B as 7.
    plan = plan_of(frame_line([{"mask": A_XYWH, "track": 7}, {"mask": B_XYWH, "track": 8}], frame=0),
                   {"keep_track": 7})
    regions = computed(A, B, tracks=(9, 7))
    assert boxes(plan.regions_for(0, regions, W, H)) == [list(B)]  # A released, B still masked
    # In a frame the plan does not list, the number is all there is.
    assert boxes(plan.regions_for(1, regions, W, H)) == [list(A)]


def test_keep_track_in_a_listed_frame_without_that_track_releases_nothing() -> None:
    plan = plan_of(frame_line([{"mask": B_XYWH, "track": 8}]), {"keep_track": 7})
    assert len(plan.regions_for(0, computed(A, B, tracks=(7, 8)), W, H)) == 2


# ---- hostile plan files: every one is a usage error naming the file and line, never a traceback ----

HOSTILE_LINES = [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"add": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    ('{"keep_track": ' + "7" * 5000 + "}", "too many digits"),
    ('{"keep_track": ' + "7" * 4000 + "}", "at most 1000000000"),
    ('{"add": [0, 0, 5, ' + "9" * 400 + "]}", "from -1000000000 to 1000000000"),
    ('{"add": [0, 0, 5, 1e400]}', "from -1000000000 to 1000000000"),
    ('{"add": [0, 0, 5, 2000000000.5]}', "from -1000000000 to 1000000000"),
    ('{"path": "a.jpg", "frame": 0, "width": 200, "height": 100, "faces": [{"mask": [0, 0, 5, 5], '
     '"track": 9223372036854775808}]}', "at most 1000000000"),
    ('{"path": "a.jpg", "frame": 99999999999, "width": 200, "height": 100, "faces": []}', "at most"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
def test_hostile_lines_are_input_errors_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_plan(["# header", text], "plan.jsonl")
    assert info.value.message.startswith("line 2: ") and message in info.value.message
    assert len(info.value.message) < 200  # a value is quoted cut short, never echoed whole


def test_a_deeply_nested_value_in_an_error_is_quoted_cut_short() -> None:
    nested = "[" * 900 + "]" * 900  # under the decoder's limit, so the checks see it
    with pytest.raises(InputError, match=r"line 1: \"add\" must be \[x, y, w, h\], got \[\[\[\[") as info:
        parse_plan(['{"add": ' + nested + "}"], "plan.jsonl")
    assert len(info.value.message) < 200


@pytest.mark.parametrize("text", [HOSTILE_LINES[0][0], HOSTILE_LINES[2][0]], ids=["nested", "digits"])
def test_cli_refuses_a_hostile_plan_as_a_usage_error(tmp_path: Path, text: str) -> None:
    source = tmp_path / "a.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(source)
    plan_path = tmp_path / "plan.jsonl"
    plan_path.write_text('{"add": [0, 0, 5, 5]}\n' + text + "\n")
    result = run_cli("redact", source, "--plan", plan_path)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and "line 2:" in result.stderr
    assert "plan.jsonl" in result.stderr
    assert not (tmp_path / "a.redacted.png").exists()


def test_constructors_hold_values_to_the_parsers_rules() -> None:
    from veil.edits import AddedRegion, FaceValues, FrameEdit, PlanChecker, Release

    check = PlanChecker("review app")
    edit = FrameEdit.checked(check, 0, W, H, [FaceValues("region 1", A_XYWH, FaceAction.KEEP)])
    parsed = plan_of(frame_line([{"mask": A_XYWH, "keep": True}])).frames[0]
    assert (edit.frame, edit.width, edit.height) == (parsed.frame, parsed.width, parsed.height)
    assert [(f.mask, f.action, f.track) for f in edit.faces] == [(f.mask, f.action, f.track) for f in parsed.faces]
    with pytest.raises(InputError, match="review app: region 2: mask .* reaches outside the 200x100 frame$"):
        FrameEdit.checked(check, 0, W, H, [FaceValues("region 1", A_XYWH), FaceValues("region 2", [190, 0, 20, 5])])
    with pytest.raises(InputError, match="\"region 1 mask\" must be a whole number"):
        FrameEdit.checked(check, 0, W, H, [FaceValues("region 1", [0, 0, 5.5, 5])])
    with pytest.raises(InputError, match="\"frame\" must be at least 0"):
        FrameEdit.checked(check, -1, W, H, [])
    with pytest.raises(InputError, match="two key frames for frame 1"):
        AddedRegion.interpolated(check, [(1, [0, 0, 5, 5]), (1, [1, 1, 5, 5])])
    with pytest.raises(InputError, match="\"keep_track\" must be a whole number"):
        Release.keep_track(check, "3")
    assert AddedRegion.fixed(check, [1, 2, 3, 4]).box_at(7) == (1.0, 2.0, 3.0, 4.0)
