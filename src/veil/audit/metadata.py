"""Metadata check: list every metadata field left in the output and flag the identifying ones.

Flagged (each is a finding): GPS position, capture time, camera make/model/serial (and maker
notes, lens serials, unique image IDs), the owner's name, and embedded preview images, which can
show the picture before it was masked. Other fields (resolution, software, colour profile) are
listed but are not findings. Purely structural encoder fields (JFIF version, progressive flag,
pixel density) are not metadata about the picture and are not listed.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import ExifTags, Image

from .report import Finding, FindingKind, MetadataField, MetadataFlag

_TIME_TAGS = {0x0132, 0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9290, 0x9291, 0x9292}
_CAMERA_TAGS = {0x010F, 0x0110, 0x927C, 0xA420, 0xA431, 0xA433, 0xA434, 0xA435, 0xC62F, 0xC614}
_OWNER_TAGS = {0x013B, 0xA430, 0x9C9D}  # Artist, CameraOwnerName, XPAuthor
_POINTER_TAGS = {0x8769, 0x8825, 0xA005, 0x0201, 0x0202}  # sub-IFD offsets, thumbnail offset/length
_STRUCTURAL_INFO = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive",
                    "progression", "adobe", "adobe_transform", "interlace", "transparency",
                    "gamma", "exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment",
                    "photoshop", "compression", "loop", "duration", "background", "lossless",
                    "aspect", "srgb", "chromaticity", "mp", "mpoffset", "mpentry", "bit_depth",
                    "resolution", "resolution_unit", "software", "primary", "save_all"}
_XMP_FLAGS = (
    (re.compile(rb"exif:GPS|GPSLatitude|GPSLongitude", re.I), MetadataFlag.GPS),
    (re.compile(rb"DateTimeOriginal|CreateDate|DateCreated|ModifyDate|MetadataDate", re.I),
     MetadataFlag.TIME),
    (re.compile(rb"tiff:Make|tiff:Model|SerialNumber|LensModel", re.I), MetadataFlag.CAMERA),
    (re.compile(rb"dc:creator|CameraOwnerName|photoshop:AuthorsPosition", re.I), MetadataFlag.OWNER),
)
# IPTC (record, dataset): 2:55/2:60/2:62/2:63 dates and times, 2:80 by-line, 2:110 credit.
_IPTC_FLAGS = {(2, 55): MetadataFlag.TIME, (2, 60): MetadataFlag.TIME, (2, 62): MetadataFlag.TIME,
               (2, 63): MetadataFlag.TIME, (2, 80): MetadataFlag.OWNER}


def _show(value: object, limit: int = 60) -> str:
    if isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tag_name(tag: int, gps: bool = False) -> str:
    names = ExifTags.GPSTAGS if gps else ExifTags.TAGS
    return names.get(tag, f"0x{tag:04X}")


def _exif_flag(tag: int) -> MetadataFlag | None:
    if tag in _TIME_TAGS:
        return MetadataFlag.TIME
    if tag in _CAMERA_TAGS:
        return MetadataFlag.CAMERA
    if tag in _OWNER_TAGS:
        return MetadataFlag.OWNER
    return None


def _exif_fields(exif: Image.Exif) -> list[MetadataField]:
    fields = [MetadataField("EXIF", _tag_name(tag), _show(value), _exif_flag(tag))
              for tag, value in exif.items() if tag not in _POINTER_TAGS]
    for group, ifd in (("EXIF", ExifTags.IFD.Exif), ("EXIF interop", ExifTags.IFD.Interop)):
        for tag, value in exif.get_ifd(ifd).items():
            if tag not in _POINTER_TAGS:
                fields.append(MetadataField(group, _tag_name(tag), _show(value), _exif_flag(tag)))
    for tag, value in exif.get_ifd(ExifTags.IFD.GPSInfo).items():
        fields.append(MetadataField("GPS", _tag_name(tag, gps=True), _show(value), MetadataFlag.GPS))
    thumbnail = exif.get_ifd(ExifTags.IFD.IFD1)
    if thumbnail:
        fields.append(MetadataField("EXIF thumbnail", "IFD1", f"<{len(thumbnail)} tags>",
                                    MetadataFlag.THUMBNAIL))
    return fields


def _xmp_fields(xmp: bytes) -> list[MetadataField]:
    flags = [flag for pattern, flag in _XMP_FLAGS if pattern.search(xmp)]
    if not flags:
        return [MetadataField("XMP", "packet", _show(xmp))]
    return [MetadataField("XMP", f"packet ({flag.value})", _show(xmp), flag) for flag in flags]


def _iptc_fields(img: Image.Image) -> list[MetadataField]:
    from PIL import IptcImagePlugin

    try:
        info = IptcImagePlugin.getiptcinfo(img) or {}
    except (SyntaxError, ValueError, OSError):
        return [MetadataField("IPTC", "block", "<unparsable>")]
    return [MetadataField("IPTC", f"{key[0]}:{key[1]}", _show(value), _IPTC_FLAGS.get(key))
            for key, value in info.items()]


def image_metadata(path: Path) -> list[MetadataField]:
    """Every metadata field in a still image, read with Pillow."""
    from ..media.image import _register_heif

    _register_heif()
    with Image.open(path) as img:
        fields = _exif_fields(img.getexif())
        info = img.info
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
        if xmp:
            fields += _xmp_fields(xmp if isinstance(xmp, bytes) else str(xmp).encode())
        if info.get("icc_profile"):
            fields.append(MetadataField("ICC", "profile", _show(info["icc_profile"])))
        if info.get("comment"):
            fields.append(MetadataField("comment", "COM", _show(info["comment"])))
        if img.format in ("JPEG", "MPO", "TIFF"):
            fields += _iptc_fields(img)
        for key, value in info.items():
            if isinstance(key, str) and key not in _STRUCTURAL_INFO:
                fields.append(MetadataField("text", key, _show(value), _text_flag(key)))
    return fields


def _text_flag(key: str) -> MetadataFlag | None:
    lowered = key.lower()
    if "gps" in lowered or "location" in lowered:
        return MetadataFlag.GPS
    if "time" in lowered or "date" in lowered:
        return MetadataFlag.TIME
    if lowered in ("make", "model", "serial", "camera"):
        return MetadataFlag.CAMERA
    if lowered in ("author", "artist", "owner"):
        return MetadataFlag.OWNER
    return None


def metadata_findings(fields: list[MetadataField], frame: int = 0) -> list[Finding]:
    """One finding per flagged field; unflagged fields are listed in the report but are no leak."""
    return [Finding(FindingKind.IDENTIFYING_METADATA,
                    f"{field.flag.value} metadata left in the output: {field.group} {field.name} = "
                    f"{field.value}", frame=frame, field=f"{field.group}:{field.name}")
            for field in fields if field.flag is not None]
