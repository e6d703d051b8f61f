"""Reading image files with PIL: cheap header checks, and decoding to a common format.

Shared by the folder loader, the zip import and Explain's uploads, so an image accepted
on upload is read the same way when the dataset is loaded.

Files are hostile on a classroom server. Pillow recognises some forty formats by
content, whatever the file's name (PostScript named x.png would be handed to
Ghostscript), so every open names the formats allowed. And a small file can hold a
huge image (a 4096x4096 1-bit PNG is 2 KB), so what decoding will cost is known from
the header before any pixel is decoded (:func:`decode_pixels`).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".ppm", ".pgm", ".pbm"})
# Pillow's names for what IMAGE_SUFFIXES hold (PPM covers .pgm and .pbm); nothing else is ever opened.
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
MAX_SIDE, MIN_SIDE = 64, 8  # bounds of the common size a folder's images are resized to, by default
# The most a run's image_size may ask for: the side ImageNet backbones are trained at.
LARGEST_SIDE = 224
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"})

# Reasons a file is skipped, as shown to the user in import and load reports.
NOT_IMAGE = "not an image"
CORRUPT = "corrupt or unreadable image"
HIDDEN = "hidden or system file"


class SkipImage(Exception):
    """This file cannot be used; str(self) is the reason shown to the user."""


def _too_large(max_side: int) -> str:
    return f"image larger than {max_side} px"


def is_hidden(parts: tuple[str, ...]) -> bool:
    """Dot files and macOS zip debris (__MACOSX, ._name) are never data."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


@dataclass(frozen=True)
class Found:
    """A usable image file, known from its header (and its pixels, when small)."""

    path: Path
    size: tuple[int, int]  # (width, height)
    mode: str  # PIL mode
    pixels: np.ndarray | None = None  # uint8 (1 or 3, H, W) at the native size, or None
    format: str = ""  # Pillow's format name, one of ALLOWED_FORMATS


def open_image(path: Path) -> Image.Image:
    """Image.open restricted to ALLOWED_FORMATS: another format raises UnidentifiedImageError."""
    return Image.open(path, formats=ALLOWED_FORMATS)


def decode_pixels(found: Found, size: tuple[int, int]) -> int:
    """Pixels Pillow will decode to bring ``found`` to ``size``: a JPEG is decoded reduced by libjpeg
    (draft mode, up to 1/8 a side), every other format at full size."""
    width, height = found.size
    if found.pixels is not None and found.size == size:
        return 0  # decoded already, during the scan
    scale = 1
    if found.format == "JPEG":
        while scale < 8 and width // (scale * 2) >= size[0] and height // (scale * 2) >= size[1]:
            scale *= 2
    return -(-width // scale) * -(-height // scale)


def probe(path: Path, max_side: int, keep_pixels_up_to: int = 0) -> Found:
    """Read the header (cheap) or SkipImage with the reason; decode the pixels too when
    both sides are at most keep_pixels_up_to, which saves opening small files twice.

    max_side is settings.limits().max_image_side, read once by the caller per folder.
    PIL's pixel guard is set from it, so even an image whose header slips past the
    size check cannot be decoded into gigabytes.
    """
    Image.MAX_IMAGE_PIXELS = max_side * max_side
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise SkipImage(NOT_IMAGE)
    try:
        with open_image(path) as img:
            if max(img.size) > max_side:
                raise SkipImage(_too_large(max_side))
            pixels = None
            if max(img.size) <= keep_pixels_up_to:
                pixels = to_array(img, 1 if img.mode in GREY_MODES else 3, img.size)
            return Found(path, img.size, img.mode, pixels, img.format or "")
    except Image.DecompressionBombError as exc:
        raise SkipImage(_too_large(max_side)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SkipImage(CORRUPT) from exc


def target_size(sizes: list[tuple[int, int]], largest: int = MAX_SIDE,
                smallest: int = MIN_SIDE) -> tuple[int, int]:
    """The most common (width, height), scaled down to fit largest and up to smallest.

    Keeping the usual size means most images are not resampled at all; the cap keeps
    a folder of photos trainable on a CPU.
    """
    values, counts = np.unique(np.array(sizes), axis=0, return_counts=True)
    w, h = (int(v) for v in values[counts.argmax()])
    shrink = min(1.0, largest / max(w, h))
    return max(smallest, round(w * shrink)), max(smallest, round(h * shrink))


def decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """The image as uint8 (channels, H, W) at size (W, H); transparency becomes white."""
    try:
        with open_image(path) as img:
            img.draft("RGB" if channels == 3 else "L", size)  # JPEG: let libjpeg shrink for free
            return to_array(img, channels, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SkipImage(CORRUPT) from exc


def to_array(img: Image.Image, channels: int, size: tuple[int, int]) -> np.ndarray:
    """An image in a dataset's channels and size, converted exactly as imported files are."""
    img = _flatten(img, channels)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _flatten(img: Image.Image, channels: int) -> Image.Image:
    """Composite any alpha on white, then convert to L or RGB."""
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB" if channels == 3 else "L")


def png_data_url(image: np.ndarray) -> str:
    """An RGB uint8 (H, W, 3) array as a ``data:image/png;base64`` URL: the picture travels inside the page
    (the HTML report, the training film)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
