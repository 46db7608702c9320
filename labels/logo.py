"""The merchant's logo on a label: a small PNG, flattened on white, fitted into a fixed box.

The portal checks uploads; this module still refuses anything that is not a sane PNG or JPEG
(returns None, and the label is drawn without a logo): a label must never fail over a logo.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger("labels")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
MAX_SOURCE_PIXELS = 4000 * 4000  # far above what the portal accepts; guards against decompression bombs
MM_PER_INCH = 25.4


@dataclass(frozen=True)
class FittedLogo:
    png: bytes
    width_mm: float
    height_mm: float


def logo_format(data: bytes) -> str | None:
    """"png" or "jpeg" from the file's first bytes (its magic number), else None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(JPEG_SIGNATURE):
        return "jpeg"
    return None


@lru_cache(maxsize=16)
def fit_logo(data: bytes, box_width_mm: float, box_height_mm: float, dpi: int, greyscale: bool) -> FittedLogo | None:
    """The logo scaled (never up) to fit the box at `dpi`, keeping its aspect ratio.

    Flattened on white: label paper is white, and an image without an alpha channel is one
    object in the PDF instead of two. `greyscale` for thermal printers, which cannot print colour.
    Cached: every label of a shop carries the same logo.
    """
    if logo_format(data) is None:
        return None
    from PIL import Image, UnidentifiedImageError  # WeasyPrint dependency

    try:
        with Image.open(io.BytesIO(data)) as source:
            width, height = source.size
            if source.format not in ("PNG", "JPEG") or not width or not height or width * height > MAX_SOURCE_PIXELS:
                return None
            scale = min(box_width_mm / width, box_height_mm / height)  # mm per source pixel
            width_mm, height_mm = width * scale, height * scale
            target = (max(1, round(width_mm / MM_PER_INCH * dpi)), max(1, round(height_mm / MM_PER_INCH * dpi)))
            source.draft("RGB", target)  # JPEG: decode at a reduced scale when it can
            image = source.convert("RGBA")
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        log.warning("logo left off the label: %s", exc)
        return None
    if image.width > target[0] or image.height > target[1]:
        image = image.resize(target, Image.Resampling.LANCZOS)
    flat = Image.new("RGBA", image.size, (255, 255, 255, 255))
    flat.alpha_composite(image)
    flat = flat.convert("L" if greyscale else "RGB")
    buffer = io.BytesIO()
    flat.save(buffer, format="PNG")
    return FittedLogo(buffer.getvalue(), width_mm, height_mm)
