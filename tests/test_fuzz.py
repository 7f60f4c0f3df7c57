"""Bounded fuzzing (issue 20): the plan-file parser and media-kind sniffing take whatever bytes a
user, a script or an attacker hands them, and may answer only with their documented errors.

- Plan files (veil.edits): `load_plan` / `parse_plan` and the checks the CLI runs next
  (`check_inputs`, `for_input`, `check_frame_count`, `apply`) raise only InputError, which the
  CLI prints as one line naming the plan and its line (exit 2).
- Media kinds (veil.media.kinds): `media_kind` raises only InputError (UnsupportedMedia is one)
  for any content under any name; `_sniff` never raises at all.

Each property runs a bounded number of examples (seconds in all). Under CI=true the examples
are derandomized, so a failure there reproduces on the next run and on a developer's machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veil._errors import InputError
from veil._types import MaskRegions
from veil.edits import load_plan, parse_plan
from veil.media.kinds import IMAGE_SUFFIXES, VIDEO_SUFFIXES, MediaKind, _sniff, media_kind

settings.register_profile("veil-ci", derandomize=True, database=None, deadline=None,
                          max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("veil-dev", database=None, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("veil-ci" if os.environ.get("CI", "").lower() == "true" else "veil-dev")

# -- plan files ------------------------------------------------------------------------------------

PLAN_KEYS = ["path", "frame", "time", "width", "height", "faces", "box", "score", "mask", "track",
             "keep", "remove", "add", "add_track", "keep_track", "frames"]
NAMES = st.sampled_from(["x.jpg", "./x.jpg", "../x.jpg", "", "x\0.jpg", "/", "x.jpg/..",
                         "\u202ex.jpg", "a" * 300])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), NAMES,
    st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 63, 10 ** 9, 10 ** 9 + 1, 1e9, 1e300, -0.0, 0.5]),
)


def _json_values(depth: int = 3) -> st.SearchStrategy[object]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.sampled_from(PLAN_KEYS) | st.text(max_size=6), inner, max_size=5)),
        max_leaves=20)


# A line shaped like a plan line: mostly the right keys, any values; then also raw text.
PLAN_OBJECTS = st.dictionaries(st.sampled_from(PLAN_KEYS), _json_values(), min_size=1, max_size=6)
FACES = st.lists(st.dictionaries(st.sampled_from(PLAN_KEYS), _json_values(), max_size=5), max_size=4)


# Near-valid values, so that lines reach the checks past the JSON and key checks; and anything.
INT = st.integers(-2, 700)
NUMBER = st.one_of(INT, INT, INT, INT, INT, SCALARS)
BOX = st.one_of(*[st.tuples(INT, INT, st.integers(1, 300), st.integers(1, 300)).map(list)] * 3,
                st.lists(NUMBER, min_size=4, max_size=4), _json_values())
NEAR_NAMES = st.one_of(st.just("x.jpg"), st.just("x.jpg"), NAMES)
FLAG = st.one_of(st.booleans(), st.booleans(), SCALARS)
FACE = st.fixed_dictionaries(
    {"mask": BOX}, optional={"box": BOX, "score": NUMBER, "track": NUMBER, "keep": FLAG,
                             "remove": FLAG})
TRACK_BOXES = st.one_of(st.lists(st.fixed_dictionaries({"frame": NUMBER, "box": BOX}), min_size=1,
                                 max_size=3), _json_values())


@st.composite
def plan_lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["object", "text", "mutated"] + ["frame"] * 4 + ["directive"] * 3))
    if kind == "text":
        return draw(st.text(max_size=200))
    row: dict[str, object]
    if kind == "frame":
        row = {"path": draw(NEAR_NAMES), "frame": draw(NUMBER), "width": draw(NUMBER),
               "height": draw(NUMBER), "faces": draw(st.lists(FACE, max_size=4))}
        if draw(st.booleans()):
            row["width"], row["height"] = 640, 480
        if draw(st.booleans()):
            row["frame"] = 0
        if draw(st.integers(0, 4)) == 0:
            row.update(draw(st.dictionaries(st.sampled_from(PLAN_KEYS), _json_values(), max_size=2)))
    elif kind == "directive":
        key = draw(st.sampled_from(["add", "add_track", "keep_track", "remove"]))
        value = {"add": BOX, "remove": BOX, "keep_track": NUMBER, "add_track": TRACK_BOXES}[key]
        row = {key: draw(value)}
        if draw(st.booleans()):
            row["path"] = draw(NEAR_NAMES)
        if key != "add_track" and draw(st.booleans()):
            row["frames"] = draw(st.one_of(st.lists(NUMBER, min_size=2, max_size=2), _json_values()))
    else:
        row = draw(PLAN_OBJECTS)
    text = json.dumps(row, allow_nan=True)
    if kind == "mutated" and text:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + draw(st.integers(0, 3)):]
    return text


def _use_plan(plan_text_lines: list[str]) -> None:
    """What `veil redact x.jpg --plan P` does with a plan before and while masking one still."""
    plan = parse_plan(plan_text_lines, "<fuzz>", (Path("/nonexistent-base"),))
    plan.check_inputs([Path("x.jpg")])
    edits = plan.for_input("x.jpg")
    edits.check_frame_count(1)
    edits.apply(0, MaskRegions.empty(), 640, 480)


@given(st.lists(plan_lines(), min_size=1, max_size=3))
def test_plan_lines_raise_nothing_but_input_error(lines: list[str]) -> None:
    try:
        _use_plan(lines)
    except InputError as exc:
        assert exc.path == "<fuzz>" or str(exc.path) == "<fuzz>"
        assert "\n" not in exc.message


@given(st.binary(max_size=400))
def test_plan_file_bytes_raise_nothing_but_input_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.jsonl"
        path.write_bytes(data)
        try:
            plan = load_plan(path)
            plan.check_inputs([Path(folder) / "x.jpg"])
            plan.for_input(Path(folder) / "x.jpg").check_frame_count(1)
        except InputError as exc:
            assert Path(exc.path) == path  # type: ignore[arg-type]


# -- media kinds -----------------------------------------------------------------------------------

SIGNATURES = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"RIFF\0\0\0\0WEBP",
              b"RIFF\0\0\0\0AVI ", b"\0\0\0\x18ftypheic", b"\0\0\0\x18ftypisom", b"\x1a\x45\xdf\xa3",
              b"\0\0\0\x08moov", b"GIF89a", b""]
SUFFIXES = sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES) + ["", ".gif", ".txt", ".JPG", ".Mp4", "."]
STEMS = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
                min_size=1, max_size=40).filter(lambda s: s not in (".", ".."))


@given(st.binary(max_size=64))
def test_sniffing_never_raises(head: bytes) -> None:
    assert _sniff(head) in (None, MediaKind.IMAGE, MediaKind.VIDEO)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.sampled_from(SIGNATURES), st.binary(max_size=64), STEMS, st.sampled_from(SUFFIXES))
def test_media_kind_raises_nothing_but_its_documented_errors(signature: bytes, rest: bytes, stem: str,
                                                             suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (stem + suffix)
        if len(os.fsencode(path.name)) > 255:
            return
        path.write_bytes(signature + rest)
        try:
            kind = media_kind(path)
        except InputError as exc:  # UnsupportedMedia included
            assert exc.path == path and "\n" not in exc.message
        else:
            assert kind is _sniff((signature + rest)[:32])
        assert path.read_bytes() == signature + rest


def test_sniffing_keeps_its_known_answers() -> None:
    """The fuzzed properties above would pass a sniffer that refused everything: pin the kinds."""
    for head, kind in [(b"\xff\xd8\xff\xe0", MediaKind.IMAGE), (b"\x89PNG\r\n\x1a\n", MediaKind.IMAGE),
                       (b"\0\0\0\x18ftypheic", MediaKind.IMAGE), (b"\0\0\0\x18ftypisom", MediaKind.VIDEO),
                       (b"\x1a\x45\xdf\xa3", MediaKind.VIDEO), (b"GIF89a", None),
                       (np.zeros(8, np.uint8).tobytes(), None)]:
        assert _sniff(head) is kind
