"""Reads stills upright as RGB pixels and writes them back with no metadata unless asked."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .._errors import InputError, UnsupportedMedia
from .._types import Config
from ..scrub import kept_exif

_HEIF_REGISTERED = False


def _register_heif() -> None:
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            pass
        _HEIF_REGISTERED = True


# Pillow format name -> keyword arguments for saving at high quality.
_WRITABLE = {"JPEG", "PNG", "WEBP", "TIFF", "HEIF", "MPO"}


@dataclass(frozen=True, eq=False)
class StillImage:
    """An image decoded upright: RGB pixels, its alpha if any, and what is needed to write it back."""

    pixels: np.ndarray  # (H, W, 3) uint8, EXIF orientation already applied
    alpha: np.ndarray | None  # (H, W) uint8 or None
    format: str  # Pillow format name of the source
    grayscale: bool
    icc_profile: bytes | None
    exif: Image.Exif | None
    lossless: bool = False  # WebP sources written losslessly stay lossless

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def read_image(path: Path, max_pixels: int = Config.max_pixels) -> StillImage:
    """Decode a still; every failure becomes an InputError naming the file and the problem."""
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format or ""
                width, height = img.size
                # Refuse from the header, before a single pixel buffer is allocated.
                if width * height > max_pixels:
                    raise InputError(
                        f"image is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                        f"limit of {max_pixels / 1e6:.0f} megapixels (possible decompression bomb)", path)
                if fmt not in _WRITABLE:
                    raise UnsupportedMedia(f"unsupported image format {fmt or 'unknown'}", path)
                if getattr(img, "n_frames", 1) > 1 and fmt not in ("MPO",):
                    raise UnsupportedMedia(f"multi-frame {fmt} images are not supported", path)
                img.load()
                exif = img.getexif()
                icc = img.info.get("icc_profile")
                lossless = bool(fmt == "WEBP" and img.info.get("lossless"))
                upright = ImageOps.exif_transpose(img) or img
                return _to_still(upright, fmt, icc, exif, lossless)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"image too large, refused as a possible decompression bomb ({exc})", path) from None
    except Image.DecompressionBombWarning as exc:
        raise InputError(f"image too large, refused as a possible decompression bomb ({exc})", path) from None
    except UnidentifiedImageError:
        raise InputError("not a readable image (unknown or corrupt format)", path) from None
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except PermissionError:
        raise InputError("permission denied: cannot read the file", path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc)
        if "truncated" in text.lower():
            raise InputError("the image is truncated (the file ends early)", path) from None
        raise InputError(f"the image is corrupt or unreadable ({text})", path) from None


def _to_still(img: Image.Image, fmt: str, icc: bytes | None, exif: Image.Exif | None,
              lossless: bool) -> StillImage:
    grayscale = img.mode in ("1", "L", "LA", "I", "I;16", "F")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        rgb = rgba.convert("RGB")
    elif img.mode in ("I", "I;16", "I;16B", "F"):
        # 16-bit and float greyscale: scale to 8 bits for detection and output.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        rgb = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    else:
        rgb = img.convert("RGB")
    pixels = np.array(rgb, dtype=np.uint8)
    return StillImage(pixels, alpha, fmt, grayscale, icc, exif, lossless)


def _save_options(still: StillImage, config: Config) -> tuple[str, dict[str, object]]:
    fmt = "JPEG" if still.format == "MPO" else still.format
    if fmt == "JPEG":
        return fmt, {"quality": config.jpeg_quality, "subsampling": 0 if config.jpeg_quality >= 90 else 2}
    if fmt == "WEBP":
        return fmt, ({"lossless": True} if still.lossless else {"quality": config.jpeg_quality})
    if fmt == "TIFF":
        return fmt, {"compression": "tiff_deflate"}
    if fmt == "HEIF":
        return fmt, {"quality": config.jpeg_quality}
    if fmt == "PNG":
        return fmt, {"optimize": False}
    return fmt, {}


def encode_image(pixels: np.ndarray, still: StillImage, config: Config) -> bytes:
    """Encode masked pixels in the source's format with only the metadata the config allows."""
    _register_heif()
    img = Image.fromarray(pixels, "RGB")
    icc = still.icc_profile
    if icc and not (config.keep_icc or config.keep_metadata):
        img = _to_srgb(img, icc)
        icc = None
    if still.grayscale:
        img = img.convert("L")
    if still.alpha is not None:
        img.putalpha(Image.fromarray(still.alpha, "L"))
        if still.grayscale:
            img = img.convert("LA")
    fmt, options = _save_options(still, config)
    if fmt == "JPEG" and img.mode in ("LA", "RGBA"):
        img = img.convert("L" if still.grayscale else "RGB")
    if icc:
        options["icc_profile"] = icc
    if config.keep_metadata and still.exif is not None and len(still.exif):
        options["exif"] = kept_exif(still.exif, config.keep_gps)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """Convert to sRGB so the colours survive dropping the profile (it can name the device)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(img, source, target, outputMode="RGB")
        return converted if converted is not None else img
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img
