"""The user's edits to veil's mask regions (`Edits`), read from plan files or made in the review app.

A plan file is `veil scan --json` lines plus directives. A plan never replaces detection: veil
detects every frame again when it redacts, and the plan only edits those regions:

- a frame line (the `veil scan --json` format) lists the faces of one frame; a face may carry
  `"keep": true` (a real face left visible, e.g. an interviewee who consented) or `"remove": true`
  (not a face); other listed faces are masked, and an edited `mask` can grow a region, never
  shrink it;
- `{"keep_track": N}` leaves video track N unmasked (in frames the plan lists, the regions it lists
  as track N, matched by position; elsewhere veil's track N); `{"remove": [x, y, w, h]}` unmasks
  veil's regions that overlap that box;
- `{"add": [x, y, w, h], "frames": [a, b]}` and `{"add_track": [{"frame": a, "box": [...]}, ...]}`
  mask regions veil missed, the latter interpolated between key frames.

Fail safe: a face veil finds that the plan does not explicitly release is masked, whether or not
the plan lists it (deleting a face from a line does not unmask it), and frames or files the plan
does not name keep veil's regions unchanged.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import InputError
from ._types import MaskRegions, RegionSource
from .geometry import greedy_match_matrix, iou_matrix, xywh_to_pixel_xyxy, xywh_to_xyxy
from .regions import clip_regions

# A listed face is the same face as one of veil's regions when their regions overlap this much
# (intersection over union). Identical settings give 1.0; other margins or presets still give
# more than 0.5 for the same face, while two neighbouring faces rarely do.
MATCH_IOU = 0.5

# Plan numbers beyond this are refused: no frame number, pixel coordinate or track id comes near
# it, and every value must fit the int64 arrays the pipelines build from the plan.
LARGEST_VALUE = 1_000_000_000

_FRAME_KEYS = {"path", "frame", "time", "width", "height", "faces"}
_FACE_KEYS = {"box", "score", "mask", "track", "keep", "remove"}
_DIRECTIVE_KEYS = {
    "add": {"add", "frames", "path"},
    "add_track": {"add_track", "path"},
    "keep_track": {"keep_track", "frames", "path"},
    "remove": {"remove", "frames", "path"},
}


class FaceAction(str, enum.Enum):
    """What the plan asks for one listed face."""

    MASK = "mask"
    KEEP = "keep"  # a real face, deliberately left visible
    REMOVE = "remove"  # not a face: a false mask


@dataclass(frozen=True)
class PlannedFace:
    """One face of a frame line: its mask region (x, y, w, h) and what to do with it."""

    mask: tuple[int, int, int, int]
    action: FaceAction = FaceAction.MASK
    track: int = -1
    line: int = 0

    @classmethod
    def checked(cls, check: PlanChecker, mask: Any, width: int, height: int,
                action: FaceAction = FaceAction.MASK, track: Any = -1, where: str = "face") -> PlannedFace:
        """A listed face from untrusted values: a whole-number mask inside the width x height frame."""
        box = check.box(mask, f"{where} mask", integers=True)
        if box[0] + box[2] > width or box[1] + box[3] > height:
            raise check.error(f"{where}: mask {_shown(list(box))} reaches outside the {width}x{height} frame")
        track = check.integer(track, f"{where} track", minimum=-1)
        return cls(tuple(int(v) for v in box), action, track, check.line)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FrameEdit:
    """A frame line: the faces the user reviewed in one frame of one file."""

    frame: int
    width: int
    height: int
    faces: tuple[PlannedFace, ...]
    line: int

    @classmethod
    def checked(cls, check: PlanChecker, frame: Any, width: Any, height: Any,
                faces: Iterable[FaceValues]) -> FrameEdit:
        """A frame's reviewed faces from untrusted values, checked as a plan file's frame line is."""
        frame = check.integer(frame, "frame", minimum=0)
        width = check.integer(width, "width", minimum=1)
        height = check.integer(height, "height", minimum=1)
        listed = tuple(PlannedFace.checked(check, f.mask, width, height, f.action, f.track, f.where)
                       for f in faces)
        return cls(frame, width, height, listed, check.line)


@dataclass(frozen=True)
class FaceValues:
    """One listed face as a plan line or the review page gave it, before FrameEdit.checked."""

    where: str  # how error messages name it: "face 2", "region 5"
    mask: Any
    action: FaceAction = FaceAction.MASK
    track: Any = -1


@dataclass(frozen=True)
class AddedRegion:
    """A region to mask: fixed over a frame range, or interpolated between key frames.

    keys are (frame, x, y, w, h) sorted by frame; `last` None means "to the end".
    """

    keys: tuple[tuple[int, float, float, float, float], ...]
    first: int
    last: int | None
    line: int

    @classmethod
    def fixed(cls, check: PlanChecker, box: Any, frames: Any = None, name: str = "add") -> AddedRegion:
        """A box masked over `frames` ([first, last]; None: every frame), from untrusted values."""
        first, last = check.frames(frames)
        checked = check.box(box, name)
        return cls(((first, *checked),), first, last, check.line)

    @classmethod
    def interpolated(cls, check: PlanChecker, keys: Sequence[tuple[Any, Any]]) -> AddedRegion:
        """A box moving between key frames, from untrusted (frame, [x, y, w, h]) pairs."""
        if not keys:
            raise check.error("\"add_track\" must be a non-empty list of {\"frame\": n, \"box\": [x, y, w, h]}")
        checked = []
        for i, (frame, box) in enumerate(keys, start=1):
            number = check.integer(frame, f"key frame {i} frame", minimum=0)
            checked.append((number, *check.box(box, f"key frame {i} box")))
        checked.sort(key=lambda k: k[0])
        for a, b in zip(checked, checked[1:]):
            if a[0] == b[0]:
                raise check.error(f"two key frames for frame {a[0]}")
        return cls(tuple(checked), checked[0][0], checked[-1][0], check.line)  # type: ignore[arg-type]

    def box_at(self, frame: int) -> tuple[float, float, float, float] | None:
        """The (x, y, w, h) box in this frame, or None outside the region's frames."""
        if frame < self.first or (self.last is not None and frame > self.last):
            return None
        keys = self.keys
        if len(keys) == 1 or frame <= keys[0][0]:
            return keys[0][1:]
        for (f0, *b0), (f1, *b1) in zip(keys, keys[1:]):
            if f0 <= frame <= f1:
                t = (frame - f0) / (f1 - f0)
                return tuple(a + (b - a) * t for a, b in zip(b0, b1))  # type: ignore[return-value]
        return keys[-1][1:]


@dataclass(frozen=True)
class Release:
    """A directive that unmasks veil's regions: a whole track, or whatever overlaps a box."""

    action: FaceAction
    track: int | None
    box: tuple[float, float, float, float] | None
    first: int
    last: int | None
    line: int

    @classmethod
    def keep_track(cls, check: PlanChecker, track: Any, frames: Any = None) -> Release:
        """Leave a video track visible over `frames`, from untrusted values."""
        first, last = check.frames(frames)
        number = check.integer(track, "keep_track", minimum=0)
        return cls(FaceAction.KEEP, number, None, first, last, check.line)

    @classmethod
    def remove_box(cls, check: PlanChecker, box: Any, frames: Any = None) -> Release:
        """Unmask veil's regions overlapping a box over `frames`, from untrusted values."""
        first, last = check.frames(frames)
        checked = check.box(box, "remove")
        return cls(FaceAction.REMOVE, None, checked, first, last, check.line)

    def active(self, frame: int) -> bool:
        return frame >= self.first and (self.last is None or frame <= self.last)


@dataclass(frozen=True)
class Edits:
    """The edits that apply to one input file; `regions_for` is what the pipelines call."""

    source: str = "<plan>"
    frames: dict[int, FrameEdit] = field(default_factory=dict)
    adds: tuple[AddedRegion, ...] = ()
    releases: tuple[Release, ...] = ()

    @classmethod
    def empty(cls) -> Edits:
        return cls()

    def __bool__(self) -> bool:
        return bool(self.frames or self.adds or self.releases)

    def check_frame_count(self, frames: int) -> None:
        """Refuse frame lines past the end of the input (a plan made for another file)."""
        for edit in self.frames.values():
            if edit.frame >= frames:
                raise InputError(f"line {edit.line}: frame {edit.frame} does not exist; the input has "
                                 f"{frames} frame{'s' if frames != 1 else ''}", self.source)

    def regions_for(self, frame_index: int, computed: MaskRegions, width: int, height: int) -> MaskRegions:
        """The regions to mask in this frame, given the regions veil computed for it."""
        return self.apply(frame_index, computed, width, height)[0]

    def apply(self, frame_index: int, computed: MaskRegions, width: int,
              height: int) -> tuple[MaskRegions, np.ndarray]:
        """As regions_for, plus for each returned region the row of `computed` it came from (-1: none)."""
        masked = [r for r in self.review(frame_index, computed, width, height)
                  if r.action is FaceAction.MASK]
        boxes = np.asarray([r.box for r in masked], np.int64).reshape(-1, 4)
        plan = MaskRegions(boxes, computed.shape, np.asarray([r.track for r in masked], np.int64),
                        np.asarray([int(r.source) for r in masked], np.int8))
        return plan, np.asarray([r.origin for r in masked], np.int64)

    def review(self, frame_index: int, computed: MaskRegions, width: int,
               height: int) -> list[ReviewedRegion]:
        """Every region of the frame with the plan's decision, released ones included (for the app)."""
        boxes = [tuple(int(v) for v in b) for b in computed.boxes]
        tracks = [int(t) for t in computed.track_ids]
        sources = [int(s) for s in computed.sources]
        origin = list(range(len(boxes)))
        actions = [FaceAction.MASK] * len(boxes)
        ignored: list[ReviewedRegion] = []  # released faces veil did not find this time
        pairs: dict[int, int] = {}  # listed face -> row of veil's regions it matches
        appended: dict[int, int] = {}  # listed faces veil did not find: their new row

        edit = self.frames.get(frame_index)
        if edit is not None:
            if (edit.width, edit.height) != (width, height):
                raise InputError(f"line {edit.line}: the plan describes frame {frame_index} as "
                                 f"{edit.width}x{edit.height} but the input is {width}x{height}; "
                                 "was the plan made for another file?", self.source)
            listed = [xywh_to_pixel_xyxy(f.mask) for f in edit.faces]
            pairs = _match(listed, boxes)
            for face_index, face in enumerate(edit.faces):
                row = pairs.get(face_index)
                region = listed[face_index]
                if face.action is not FaceAction.MASK:
                    if row is not None:
                        actions[row] = face.action
                    else:
                        ignored.append(ReviewedRegion(region, face.action, RegionSource.MANUAL,
                                                      face.track, -1))
                    continue
                if row is None:
                    appended[face_index] = len(boxes)
                    boxes.append(region)
                    tracks.append(face.track)
                    sources.append(int(RegionSource.MANUAL))
                    origin.append(-1)
                    actions.append(FaceAction.MASK)
                else:  # grow to cover both: an edit can enlarge a mask, never shrink one
                    a = boxes[row]
                    boxes[row] = (min(a[0], region[0]), min(a[1], region[1]),
                                  max(a[2], region[2]), max(a[3], region[3]))

        # Rows that hold each listed track in this frame, found by position: track numbers depend
        # on the detection settings, so in a frame the plan lists, "track N" means the regions the
        # plan showed as track N, wherever veil's numbering now puts them.
        listed_rows: dict[int, set[int]] = {}
        if edit is not None:
            for face_index, face in enumerate(edit.faces):
                row = pairs.get(face_index, appended.get(face_index))
                if face.track >= 0 and row is not None:
                    listed_rows.setdefault(face.track, set()).add(row)
        for release in self.releases:
            if not release.active(frame_index):
                continue
            if release.box is not None:
                overlap = iou_matrix(np.array([xywh_to_pixel_xyxy(release.box)], np.float64),
                                     np.asarray(boxes, np.float64).reshape(-1, 4), np.float64)[0]
            for i in range(len(boxes)):
                if actions[i] is not FaceAction.MASK:
                    continue
                if release.track is not None:
                    if edit is not None:
                        if i in listed_rows.get(release.track, ()):
                            actions[i] = release.action
                    elif tracks[i] == release.track:
                        actions[i] = release.action
                elif release.box is not None and overlap[i] >= MATCH_IOU:
                    actions[i] = release.action

        regions = [ReviewedRegion(boxes[i], actions[i], RegionSource(sources[i]), tracks[i], origin[i])
                   for i in range(len(boxes))]
        for add in self.adds:
            box = add.box_at(frame_index)
            if box is None:
                continue
            region = clip_regions(xywh_to_xyxy(np.array([box], np.float64)), width, height)[0]
            if region[2] <= region[0] or region[3] <= region[1]:
                raise InputError(f"line {add.line}: the added region lies outside the "
                                 f"{width}x{height} frame", self.source)
            regions.append(ReviewedRegion(tuple(int(v) for v in region), FaceAction.MASK,  # type: ignore[arg-type]
                                          RegionSource.MANUAL, -1, -1))
        clipped = clip_regions(np.asarray([r.box for r in regions], np.float64).reshape(-1, 4),
                               width, height)
        out = [replace(r, box=tuple(int(v) for v in c)) for r, c in zip(regions, clipped)]
        return out + ignored


@dataclass(frozen=True)
class ReviewedRegion:
    """One region of a frame after the plan: its (x0, y0, x1, y1) box and the decision for it."""

    box: tuple[int, int, int, int]
    action: FaceAction
    source: RegionSource
    track: int
    origin: int  # the row of veil's computed regions it came from, -1 if none


@dataclass(frozen=True)
class PlanFile:
    """A whole plan file: frame lines grouped by the file they name, and the directives."""

    source: str
    frame_lines: dict[str, dict[int, FrameEdit]]  # raw path as written -> frame -> edit
    adds: tuple[tuple[str | None, AddedRegion], ...]
    releases: tuple[tuple[str | None, Release], ...]
    base_dirs: tuple[Path, ...] = ()

    @property
    def paths(self) -> list[str]:
        """Every path the plan names, as written."""
        named = list(self.frame_lines)
        for path, _ in (*self.adds, *self.releases):
            if path is not None and path not in named:
                named.append(path)
        return named

    def _resolve(self, raw: str) -> list[Path]:
        path = Path(raw).expanduser()
        if path.is_absolute():
            return [path.resolve()]
        return [(base / path).resolve() for base in self.base_dirs]

    def _matches(self, raw: str, target: Path) -> bool:
        return target.resolve() in self._resolve(raw)

    def check_inputs(self, inputs: Sequence[Path]) -> None:
        """Refuse a plan that names files not being processed, or that is ambiguous for a batch.

        A path that matches no input is almost always a plan for other files or a typo, and
        silently ignoring it would publish faces the user meant to handle.
        """
        for raw in self.paths:
            if not any(self._matches(raw, p) for p in inputs):
                raise InputError(f"{_first_line(self, raw)}names {raw}, which is not among the inputs "
                                 "(paths are read relative to the current folder or the plan's folder)",
                                 self.source)
        if len(inputs) > 1:
            for path, release in self.releases:
                if path is None:
                    raise InputError(f"line {release.line}: a directive that unmasks needs a \"path\" "
                                     "when several files are redacted", self.source)

    def for_input(self, path: str | Path) -> Edits:
        """The edits that apply to one input: its frame lines and the directives for it or for all."""
        target = Path(path)
        frames: dict[int, FrameEdit] = {}
        for raw, edits in self.frame_lines.items():
            if self._matches(raw, target):
                for frame, edit in edits.items():
                    if frame in frames:
                        raise InputError(f"lines {frames[frame].line} and {edit.line} both describe "
                                         f"frame {frame} of {target}", self.source)
                    frames[frame] = edit
        adds = tuple(a for p, a in self.adds if p is None or self._matches(p, target))
        releases = tuple(r for p, r in self.releases if p is None or self._matches(p, target))
        return Edits(self.source, frames, adds, releases)


def load_plan(path: str | Path) -> PlanFile:
    """Read and strictly validate a plan file; every problem is an InputError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("plan file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the plan file: {exc}", path) from None
    return parse_plan(text.splitlines(), str(path), (Path.cwd(), path.resolve().parent))


def parse_plan(lines: Iterable[str], source: str = "<plan>",
               base_dirs: Sequence[Path] = ()) -> PlanFile:
    """Validate plan lines (JSON objects; blank lines and lines starting with # are skipped)."""
    base = tuple(base_dirs) or (Path.cwd(),)
    frame_lines: dict[str, dict[int, FrameEdit]] = {}
    adds: list[tuple[str | None, AddedRegion]] = []
    releases: list[tuple[str | None, Release]] = []
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        check = PlanChecker(source, number)
        try:
            row = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise check.error(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise check.error("JSON nested too deeply") from None
        except ValueError:  # Python refuses integers of more than 4300 digits (int_max_str_digits)
            raise check.error("a number in this line has too many digits") from None
        if not isinstance(row, dict):
            raise check.error("each line must be a JSON object")
        kinds = [k for k in ("faces", *_DIRECTIVE_KEYS) if k in row]
        if len(kinds) != 1:
            raise check.error("a line must be a frame line (with \"faces\") or exactly one directive: "
                              + ", ".join(f'"{k}"' for k in _DIRECTIVE_KEYS)
                              + (f"; found {', '.join(kinds)}" if kinds else ""))
        kind = kinds[0]
        allowed = _FRAME_KEYS if kind == "faces" else _DIRECTIVE_KEYS[kind]
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise check.error(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                              f"(allowed here: {', '.join(sorted(allowed))})")
        path = check.text(row["path"], "path") if "path" in row else None
        if kind == "faces":
            if path is None:
                raise check.error("a frame line needs \"path\"")
            edit = _frame_line(row, check)
            per_file = frame_lines.setdefault(path, {})
            if edit.frame in per_file:
                raise check.error(f"frame {edit.frame} of {path} is already described on line "
                                  f"{per_file[edit.frame].line}")
            per_file[edit.frame] = edit
        elif kind == "add":
            adds.append((path, AddedRegion.fixed(check, row["add"], row.get("frames"))))
        elif kind == "add_track":
            adds.append((path, _add_track(row["add_track"], check)))
        elif kind == "keep_track":
            releases.append((path, Release.keep_track(check, row["keep_track"], row.get("frames"))))
        else:
            releases.append((path, Release.remove_box(check, row["remove"], row.get("frames"))))
    plan = PlanFile(source, frame_lines, tuple(adds), tuple(releases), base)
    if len(plan.paths) > 1:
        for path, release in releases:
            if path is None:
                raise InputError(f"line {release.line}: this plan names several files, so a directive "
                                 "that unmasks must say which one with \"path\"", source)
    return plan


def _frame_line(row: dict[str, Any], check: PlanChecker) -> FrameEdit:
    for key in ("frame", "width", "height"):
        if key not in row:
            raise check.error(f"a frame line needs \"{key}\"")
    if "time" in row:
        check.number(row["time"], "time")
    if not isinstance(row["faces"], list):
        raise check.error("\"faces\" must be a list")
    faces = []
    for i, face in enumerate(row["faces"], start=1):
        where = f"face {i}"
        if not isinstance(face, dict):
            raise check.error(f"{where} must be a JSON object")
        unknown = sorted(set(face) - _FACE_KEYS)
        if unknown:
            raise check.error(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(unknown)} (allowed: {', '.join(sorted(_FACE_KEYS))})")
        if "mask" not in face:
            raise check.error(f"{where} needs \"mask\": [x, y, w, h]")
        if "box" in face:
            check.box(face["box"], f"{where} box")
        if "score" in face:
            check.number(face["score"], f"{where} score", 0.0, 1.0)
        keep = check.flag(face.get("keep", False), f"{where} keep")
        remove = check.flag(face.get("remove", False), f"{where} remove")
        if keep and remove:
            raise check.error(f"{where}: \"keep\" and \"remove\" cannot both be true")
        action = FaceAction.KEEP if keep else FaceAction.REMOVE if remove else FaceAction.MASK
        faces.append(FaceValues(where, face["mask"], action, face.get("track", -1)))
    return FrameEdit.checked(check, row["frame"], row["width"], row["height"], faces)


def _add_track(value: Any, check: PlanChecker) -> AddedRegion:
    if not isinstance(value, list) or not value:
        raise check.error("\"add_track\" must be a non-empty list of {\"frame\": n, \"box\": [x, y, w, h]}")
    for i, key in enumerate(value, start=1):
        if not isinstance(key, dict) or set(key) != {"frame", "box"}:
            raise check.error(f"key frame {i} must be {{\"frame\": n, \"box\": [x, y, w, h]}}")
    return AddedRegion.interpolated(check, [(key["frame"], key["box"]) for key in value])


@dataclass(frozen=True)
class PlanChecker:
    """Value checks for one plan line, raising InputError with the plan's source and line number.

    The parser and the review app both build plans through these checks, so an edit made on the
    page is held to exactly the rules of a plan file. Line 0: not from a file; no line is named.
    """

    source: str
    line: int = 0

    def error(self, message: str) -> InputError:
        return InputError(f"line {self.line}: {message}" if self.line > 0 else message, self.source)

    def text(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(f"\"{name}\" must be a non-empty string")
        return value

    def number(self, value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"\"{name}\" must be a number, got {_shown(value)}")
        # Magnitude first: math.isfinite cannot convert an integer of over 308 digits to a float.
        if abs(value) > LARGEST_VALUE or not math.isfinite(value):
            raise self.error(f"\"{name}\" must be a number from -{LARGEST_VALUE} to {LARGEST_VALUE}, "
                             f"got {_shown(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(f"\"{name}\" must be between {low} and {high}, got {_shown(value)}")
        return float(value)

    def integer(self, value: Any, name: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"\"{name}\" must be a whole number, got {_shown(value)}")
        if minimum is not None and value < minimum:
            raise self.error(f"\"{name}\" must be at least {minimum}, got {_shown(value)}")
        if value > LARGEST_VALUE:
            raise self.error(f"\"{name}\" must be at most {LARGEST_VALUE}, got {_shown(value)}")
        return value

    def flag(self, value: Any, name: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"\"{name}\" must be true or false")
        return value

    def box(self, value: Any, name: str, integers: bool = False) -> tuple[float, float, float, float]:
        """[x, y, w, h] with a positive size; integer mask regions must also start inside the frame
        (detections and added boxes may reach past an edge and are clipped)."""
        if not isinstance(value, list) or len(value) != 4:
            raise self.error(f"\"{name}\" must be [x, y, w, h], got {_shown(value)}")
        if integers:
            x, y, w, h = (self.integer(v, name) for v in value)
        else:
            x, y, w, h = (self.number(v, name) for v in value)
        if integers and (x < 0 or y < 0):
            raise self.error(f"\"{name}\" must not start left of or above the picture, got {_shown(value)}")
        if w <= 0 or h <= 0:
            raise self.error(f"\"{name}\" must have a positive width and height, got {_shown(value)}")
        return (x, y, w, h)

    def frames(self, value: Any) -> tuple[int, int | None]:
        if value is None:
            return 0, None
        if not isinstance(value, list) or len(value) != 2:
            raise self.error(f"\"frames\" must be [first, last], got {_shown(value)}")
        first = self.integer(value[0], "frames", minimum=0)
        last = self.integer(value[1], "frames", minimum=0)
        if last < first:
            raise self.error(f"\"frames\" must not end before it starts, got {_shown(value)}")
        return first, last


def _shown(value: Any) -> str:
    """A value for an error message, cut short: a hostile line can hold megabytes or deep nesting."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:56] + " ..."


def _first_line(plan: PlanFile, raw: str) -> str:
    edits = plan.frame_lines.get(raw)
    if edits:
        return f"line {min(e.line for e in edits.values())}: "
    for path, item in (*plan.adds, *plan.releases):
        if path == raw:
            return f"line {item.line}: "
    return ""


def _match(listed: list[tuple[int, int, int, int]], computed: list[tuple[int, ...]]) -> dict[int, int]:
    """Pair listed faces with computed regions one to one, best overlap first, at MATCH_IOU or more.

    Among equal overlaps the later listed face and then the later region win, as they always
    have here; matching the reversed lists under the shared earliest-first tie rule keeps that.
    IoUs are compared in float64: the boxes are whole pixels, so equal overlaps stay exactly equal.
    """
    a = np.asarray(listed[::-1], np.float64).reshape(-1, 4)
    b = np.asarray(computed[::-1], np.float64).reshape(-1, 4)
    rows, cols = greedy_match_matrix(iou_matrix(a, b, np.float64), MATCH_IOU)
    return {len(listed) - 1 - r: len(computed) - 1 - c for r, c in zip(rows.tolist(), cols.tolist())}


__all__ = ["Edits", "PlanFile", "FaceAction", "ReviewedRegion", "load_plan", "parse_plan", "MATCH_IOU",
           "PlanChecker", "PlannedFace", "FaceValues", "FrameEdit", "AddedRegion", "Release", "LARGEST_VALUE"]
