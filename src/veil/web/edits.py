"""The page's edits as an Edits, built from the values it sent through the plan file's own checks.

Nothing is written out as plan text and parsed back: each value goes straight into edits.py's
constructors (FrameEdit.checked, AddedRegion.interpolated, Release.keep_track, ...), which hold it
to the same rules as a line of a plan file. A refused value becomes a 400 with the check's message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .._errors import InputError
from ..edits import AddedRegion, Edits, FaceAction, FaceValues, FrameEdit, PlanChecker, Release
from .errors import RequestError
from .video import VideoAnalysis

SOURCE = "review app"  # what a plan built here calls itself in messages
MAX_REGIONS = 5000  # per still export request; more is not a real photo
MAX_VIDEO_EDITS = 20_000  # kept tracks, removed boxes and key frames in one video export request
_ACTIONS = {a.value: a for a in FaceAction}


def _action(value: Any) -> FaceAction:
    if not isinstance(value, str) or value not in _ACTIONS:
        raise RequestError(f"unknown action {str(value)[:40]!r}")
    return _ACTIONS[value]


def still_plan(regions: Any, width: int, height: int) -> Edits:
    """The plan for a picture from the page's regions: [{mask: [x, y, w, h], action, added}, ...].

    veil's regions become one listed frame (released ones keep or remove them, the others stay
    masked); regions the user drew and left masked become added regions.
    """
    if not isinstance(regions, list):
        raise RequestError("regions must be a list")
    if len(regions) > MAX_REGIONS:
        raise RequestError(f"at most {MAX_REGIONS} regions", 413)
    check = PlanChecker(SOURCE)
    faces, adds = [], []
    try:
        for number, region in enumerate(regions, start=1):
            if not isinstance(region, dict):
                raise RequestError("each region must be an object")
            where = f"region {number}"
            action = _action(region.get("action"))
            if check.flag(region.get("added", False), f"{where} added"):
                if action is FaceAction.MASK:  # a drawn box the user then dropped is just gone
                    adds.append(AddedRegion.fixed(check, region.get("mask"), name=f"{where} mask"))
                continue
            faces.append(FaceValues(where, region.get("mask"), action))
        frame = FrameEdit.checked(check, 0, width, height, faces)
    except InputError as exc:
        raise RequestError(exc.message) from None
    return Edits(SOURCE, {0: frame}, tuple(adds), ())


def _list(request: dict[str, Any], name: str) -> list[Any]:
    value = request.get(name, [])
    if not isinstance(value, list):
        raise RequestError(f"{name} must be a list")
    return value


def video_plan(analysis: VideoAnalysis, request: dict[str, Any]) -> tuple[Edits, int, int]:
    """The plan for a reviewed video; returns (plan, tracks kept, boxes removed).

    The page sends {"keep_tracks": [N, ...], "removed": [{"frame": f, "mask": [x, y, w, h]}],
    "added": [{"keys": [{"frame": f, "box": [x, y, w, h]}, ...]}]}.
    """
    with analysis.lock:
        frames, width, height = len(analysis.regions), analysis.width, analysis.height
        regions = list(analysis.regions)
    keep, removed, added = _list(request, "keep_tracks"), _list(request, "removed"), _list(request, "added")
    keys = sum(len(a["keys"]) if isinstance(a, dict) and isinstance(a.get("keys"), list) else 1 for a in added)
    if len(keep) + len(removed) + keys > MAX_VIDEO_EDITS:
        raise RequestError(f"at most {MAX_VIDEO_EDITS} edits per export", 413)
    check = PlanChecker(SOURCE)
    try:
        kept = sorted({check.integer(track, "keep_tracks", minimum=0) for track in keep})
        releases = tuple(Release.keep_track(check, track) for track in kept)
        by_frame: dict[int, dict[tuple[int, ...], FaceValues]] = {}  # frame -> mask -> face
        # List where each kept track was in every frame: the plan then releases those regions by
        # position, so a track numbered differently on export cannot unmask someone else.
        for frame, row in enumerate(regions):
            for x, y, w, h, track, _score, _source in row:
                if int(track) in kept:
                    mask = (int(x), int(y), int(w), int(h))
                    by_frame.setdefault(frame, {})[mask] = FaceValues(
                        f"frame {frame} track {int(track)}", list(mask), FaceAction.MASK, int(track))
        for number, item in enumerate(removed, start=1):
            if not isinstance(item, dict):
                raise RequestError("each removed box must be an object")
            frame = _frame(check, item.get("frame"), frames)
            where = f"removed box {number}"
            mask = tuple(int(v) for v in check.box(item.get("mask"), f"{where} mask", integers=True))
            # One listed face per region: a kept person's box marked "not a face" here is released
            # either way, and two entries for one region would pair only one of them.
            faces = by_frame.setdefault(frame, {})
            listed = faces.get(mask)
            faces[mask] = (replace(listed, action=FaceAction.REMOVE) if listed is not None
                           else FaceValues(where, list(mask), FaceAction.REMOVE))
        edits = {frame: FrameEdit.checked(check, frame, width, height, faces.values())
                 for frame, faces in sorted(by_frame.items())}
        adds = []
        for item in added:
            if not isinstance(item, dict) or not isinstance(item.get("keys"), list) or not item["keys"]:
                raise RequestError("each added box needs key frames")
            if not all(isinstance(key, dict) for key in item["keys"]):
                raise RequestError("each key frame must be an object")
            for key in item["keys"]:
                _frame(check, key.get("frame"), frames)
            adds.append(AddedRegion.interpolated(check, [(k.get("frame"), k.get("box")) for k in item["keys"]]))
    except InputError as exc:
        raise RequestError(exc.message) from None
    return Edits(SOURCE, edits, tuple(adds), releases), len(kept), len(removed)


def _frame(check: PlanChecker, value: Any, frames: int) -> int:
    """A frame number the review pass saw (the plan alone would allow any)."""
    frame = check.integer(value, "frame", minimum=0)
    if frame >= frames:
        raise RequestError(f"frame {frame} does not exist; the video has {frames} frames")
    return frame


__all__ = ["still_plan", "video_plan", "MAX_REGIONS", "MAX_VIDEO_EDITS", "SOURCE"]
