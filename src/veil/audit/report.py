"""The audit's findings and its report: a frozen record, JSON for machines, a short summary for people."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Check(str, enum.Enum):
    """The four independent checks; each can fail on its own."""

    PIXELS = "pixels"
    SECOND_DETECTOR = "second_detector"
    REIDENTIFICATION = "reidentification"
    METADATA = "metadata"


class FindingKind(str, enum.Enum):
    """What exactly was found; each kind belongs to one check."""

    ORIGINAL_PIXELS = "original_pixels"  # a run of the original's pixels survives inside a mask region
    REVERSIBLE_MASK = "reversible_mask"  # the region is blurred or pixelated: recognisers can undo it
    FACE_OUTSIDE_MASKS = "face_outside_masks"  # the second detector sees a face nothing masked
    FACE_THROUGH_MASK = "face_through_mask"  # the second detector still sees a face inside a mask
    # A weak second-detector hit outside the masks that veil's zoomed re-scan does not confirm
    # (confirm.py): listed for a person to look at, never a failure.
    UNCONFIRMED_FACE = "unconfirmed_face"
    MATCHABLE_FACE = "matchable_face"  # the output's face region still matches the original person
    IDENTIFYING_METADATA = "identifying_metadata"  # GPS, time, or camera make/model/serial left in

    @property
    def check(self) -> Check:
        return _CHECK_OF[self]


_CHECK_OF = {
    FindingKind.ORIGINAL_PIXELS: Check.PIXELS,
    FindingKind.REVERSIBLE_MASK: Check.PIXELS,
    FindingKind.FACE_OUTSIDE_MASKS: Check.SECOND_DETECTOR,
    FindingKind.FACE_THROUGH_MASK: Check.SECOND_DETECTOR,
    FindingKind.UNCONFIRMED_FACE: Check.SECOND_DETECTOR,
    FindingKind.MATCHABLE_FACE: Check.REIDENTIFICATION,
    FindingKind.IDENTIFYING_METADATA: Check.METADATA,
}


class RegionStyle(str, enum.Enum):
    """What the output holds inside a mask region, judged from the pixels alone."""

    SOLID = "solid"  # one flat colour
    NOISE = "noise"  # pixels unrelated to the original and to their neighbours
    MOSAIC = "mosaic"  # blocks that keep the original's coarse structure
    BLUR = "blur"  # smoother than the original, keeps its coarse structure
    FILTERED = "filtered"  # changed but not smoothed (e.g. noise added on top): keeps the structure
    UNMASKED = "unmasked"  # most pixels are still the original's
    OTHER = "other"  # replaced by something unrelated to the original (e.g. a sticker)

    @property
    def reversible(self) -> bool:
        return self in (RegionStyle.MOSAIC, RegionStyle.BLUR, RegionStyle.FILTERED)


class MetadataFlag(str, enum.Enum):
    """Why a metadata field identifies someone."""

    GPS = "gps"
    TIME = "time"
    CAMERA = "camera"  # make, model, serial numbers, maker notes, unique image ID
    OWNER = "owner"  # the photographer's or camera owner's name
    THUMBNAIL = "thumbnail"  # an embedded preview, which can show the unmasked picture


Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Finding:
    """One thing that could identify a person, with where it is."""

    kind: FindingKind
    message: str
    frame: int = 0
    box: Box | None = None
    face: int | None = None  # index into AuditReport.faces
    value: float | None = None  # distance, fraction or score, depending on the kind
    field: str | None = None  # metadata field name

    @property
    def check(self) -> Check:
        return self.kind.check

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check.value, "kind": self.kind.value,
                               "message": self.message, "frame": self.frame}
        if self.box is not None:
            out["box"] = list(self.box)
        if self.face is not None:
            out["face"] = self.face
        if self.value is not None:
            out["value"] = round(self.value, 4)
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class FaceAudit:
    """One face of the original and what the pixel and re-identification checks saw there."""

    frame: int
    box: Box  # the face as found in the original
    region: Box | None  # the mask region veil plans for it; None for a face only dlib found
    found_by: str  # "veil", "dlib" or "veil+dlib"
    style: RegionStyle | None = None  # None when the face has no planned region
    surviving_pixels: int = 0  # original pixels inside the region that lie in surviving runs
    region_pixels: int = 0
    distance: float | None = None  # embedding distance original vs output; None: not measured
    # Whether dlib can tell this face from an empty chip at all (see reid.py); None: not measured.
    matchable: bool | None = None
    matched: bool = False  # the re-identification check's finding for this face

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": self.frame, "box": list(self.box),
            "region": list(self.region) if self.region else None,
            "found_by": self.found_by,
            "style": self.style.value if self.style else None,
            "surviving_pixels": self.surviving_pixels, "region_pixels": self.region_pixels,
            "distance": None if self.distance is None else round(self.distance, 4),
            "matchable": self.matchable,
            "matched": self.matched,
        }


@dataclass(frozen=True)
class MetadataField:
    """One metadata field present in the output."""

    group: str  # e.g. "EXIF", "GPS", "XMP", "ICC", "PNG text", "container", "stream 0"
    name: str
    value: str  # shortened for display
    flag: MetadataFlag | None = None

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "name": self.name, "value": self.value,
                "flag": self.flag.value if self.flag else None}


@dataclass(frozen=True)
class AuditReport:
    """Everything the audit checked and found for one original/redacted pair."""

    original: Path
    redacted: Path
    kind: str  # "image" or "video"
    frames_checked: tuple[int, ...]
    faces: tuple[FaceAudit, ...]
    findings: tuple[Finding, ...]
    metadata: tuple[MetadataField, ...]
    tolerance: int  # per-channel difference still counted as "the original's pixel"
    second_detector: str
    seconds: dict[str, float] = field(default_factory=dict)
    frames_total: int = 1
    # Weak, unconfirmed hits for a person to look at: listed, but they leave the report clean.
    review: tuple[Finding, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.findings

    def by_check(self, check: Check) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.check is check)

    def to_json(self) -> dict[str, Any]:
        return {
            "original": str(self.original),
            "redacted": str(self.redacted),
            "kind": self.kind,
            "clean": self.clean,
            "frames_checked": len(self.frames_checked),
            "frames_total": self.frames_total,
            "counts": {c.value: len(self.by_check(c)) for c in Check},
            "findings": [f.to_json() for f in self.findings],
            "review": [f.to_json() for f in self.review],
            "faces": [f.to_json() for f in self.faces],
            "metadata": [m.to_json() for m in self.metadata],
            "tolerance": self.tolerance,
            "second_detector": self.second_detector,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def summary(self, max_lines: int = 12) -> str:
        """A few lines for a terminal: the verdict, then the first findings."""
        head = f"{self.redacted}: "
        frames = (f" ({len(self.frames_checked)} of {self.frames_total} frames checked)"
                  if self.kind == "video" else "")
        review = (f"; {len(self.review)} weak unconfirmed second-detector hit"
                  f"{'s' if len(self.review) != 1 else ''} listed for review" if self.review else "")
        # Review entries are listed too (the review app shows this text), after any findings.
        listed = [f"  [for review]{f' frame {f.frame}' if self.kind == 'video' else ''} "
                  f"{f.message}" for f in self.review[:max(1, max_lines - len(self.findings))]]
        if self.clean:
            return "\n".join([
                head + f"clean{frames}: {len(self.faces)} face{'s' if len(self.faces) != 1 else ''} "
                "checked, no surviving pixels, no confirmed face found by the second detector, "
                "no match, no identifying metadata" + review] + listed)
        counts = ", ".join(f"{len(self.by_check(c))} {c.value.replace('_', ' ')}"
                           for c in Check if self.by_check(c))
        lines = [head + f"{len(self.findings)} finding{'s' if len(self.findings) != 1 else ''}"
                 f"{frames} ({counts}){review}"]
        for finding in self.findings[:max_lines]:
            where = f" frame {finding.frame}" if self.kind == "video" else ""
            lines.append(f"  [{finding.check.value}]{where} {finding.message}")
        if len(self.findings) > max_lines:
            lines.append(f"  ... and {len(self.findings) - max_lines} more (see --json or --report)")
        return "\n".join(lines + listed)
