"""Decides which metadata survives: nothing by default, an allow-list when the user asks to keep it."""

from __future__ import annotations

from PIL import Image

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
INTEROP_IFD = 0xA005
ORIENTATION = 0x0112
MAKER_NOTE = 0x927C
# Tags kept by --keep-metadata from IFD0; offsets and thumbnails are never copied.
_IFD0_KEEP = {
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
    0x011A, 0x011B, 0x0128,  # resolution
}
# Exif sub-IFD tags that are not pointers or opaque blobs (MakerNote holds serials and offsets).
_EXIF_DROP = {MAKER_NOTE, INTEROP_IFD, 0x9286}  # 0x9286 UserComment
GPS_TAG_NAMES = {"GPSInfo"}


def kept_exif(source: Image.Exif, keep_gps: bool) -> bytes:
    """A fresh EXIF block with the allowed tags of `source`; never a thumbnail or maker note.

    Orientation is left out because veil has already applied it to the pixels.
    """
    out = Image.Exif()
    for tag, value in source.items():
        if tag in _IFD0_KEEP:
            out[tag] = value
    exif_ifd = source.get_ifd(EXIF_IFD)
    if exif_ifd:
        sub = out.get_ifd(EXIF_IFD)
        for tag, value in exif_ifd.items():
            if tag not in _EXIF_DROP and not isinstance(value, dict):
                sub[tag] = value
    if keep_gps:
        gps = source.get_ifd(GPS_IFD)
        if gps:
            out.get_ifd(GPS_IFD).update(gps)
    return out.tobytes()
