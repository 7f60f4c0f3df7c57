"""Reading and writing media files; each backend is its own module."""

from .kinds import MediaKind, media_kind, IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["MediaKind", "media_kind", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]
