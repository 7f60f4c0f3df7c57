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
from .kinds import require_regular_file

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
    require_regular_file(path)
    _register_heif()
    try:
        with warnings.catch_warnings():
            # Our own limit (max_pixels, 150 MP by default: pages of archive scans are large) is
            # checked from the header below; Pillow's lower warning threshold (89.5 MP) would
            # refuse valid scans. Pillow still refuses outright over twice that (179 MP).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
    except InputError as exc:
        if exc.path is None:  # raised by a helper that does not know the file
            raise type(exc)(exc.message, path) from None
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
    grayscale = img.mode in ("1", "L", "LA", "I", "F") or img.mode.startswith("I;16")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].copy()
        rgb = rgba.convert("RGB")
    elif img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # Detection and the written output both use these 8-bit pixels, so what veil checks is
        # exactly what it writes.
        rgb = Image.fromarray(to_8bit(np.asarray(img), img.mode)).convert("RGB")
    else:
        rgb = img.convert("RGB")
    pixels = np.array(rgb, dtype=np.uint8)
    return StillImage(pixels, alpha, fmt, grayscale, icc, exif, lossless)


# Full-scale values of the integer depths stills are stored at (8, 10, 12, 14 and 16 bits).
_FULL_SCALES = (255, 1023, 4095, 16383, 65535)
# Fewer 8-bit grey levels than this between the darkest and lightest pixel: too flat to show or
# check a face (a constant image, or a sliver of a wide range), so such an input is refused.
MIN_GREY_LEVELS = 16


def to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """Map greyscale float ("F"), 32-bit ("I") or 16-bit ("I;16*") samples to (H, W) uint8.

    Why: the detector and the output are 8-bit. Scaling by the mode's nominal range instead
    of the data's leaks: a float image in 0..1 divided by 255 becomes a picture of 0s and 1s in
    which veil finds no face, but which anyone can stretch back into the photo. So the scale is
    the data's own full-scale value:
      - float samples within 0..1 (the convention for float images) are multiplied by 255;
      - otherwise the smallest of 2^8, 2^10, 2^12, 2^14 and 2^16 (minus 1) that holds the
        brightest sample is full scale, so 10-, 12- and 14-bit sensor data kept in 16-bit
        containers fills the 8-bit range the way its camera meant it to (a merely dark 16-bit
        photo comes out brighter; it is never darker than its depth allows).
    Not a min..max stretch: one hot pixel would then squeeze the picture into a few levels.
    Refused, because no mapping can be trusted to show what the file holds: NaN or infinite
    samples, negative ones, samples above 65535, and images that span fewer than MIN_GREY_LEVELS
    8-bit levels after scaling (including a constant image).
    """
    kind = {"F": "32-bit float", "I": "32-bit integer"}.get(mode, "16-bit")
    data = np.asarray(values, np.float64)
    if data.size == 0:
        raise UnsupportedMedia(f"the {kind} image has no pixels")
    finite = np.isfinite(data)
    if not finite.all():
        raise UnsupportedMedia(f"the {kind} image holds {int((~finite).sum())} NaN or infinite "
                               "values; veil cannot tell what they show, so it does not guess")
    low, high = float(data.min()), float(data.max())
    if low < 0:
        raise UnsupportedMedia(f"the {kind} image holds negative values (down to {low:g}); veil "
                               "cannot map them to 8-bit grey levels with confidence")
    if mode == "F" and high <= 1.0:
        full_scale = 1.0
    else:
        fitting = [top for top in _FULL_SCALES if high <= top]
        if not fitting:
            raise UnsupportedMedia(f"the {kind} image holds values up to {high:g}, beyond any "
                                   "16-bit range; veil cannot map them to 8-bit grey levels "
                                   "with confidence")
        full_scale = float(fitting[0])
    grey = np.clip(np.rint(data * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    span = int(grey.max()) - int(grey.min())
    if span < MIN_GREY_LEVELS:
        raise UnsupportedMedia(
            f"the {kind} image spans only {span + 1} of 256 grey levels once scaled to 8 bits "
            f"(values {low:g}..{high:g} of full scale {full_scale:g}); too flat to find faces in")
    return grey


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
