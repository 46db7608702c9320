"""QR code as SVG or PNG (segno for the encoding, labels.qrmask for a faster mask choice)."""

from __future__ import annotations

import io
from functools import lru_cache

from .qrmask import fast_qr_matrix

QUIET_ZONE_MODULES = 4


@lru_cache(maxsize=256)
def qr_matrix(url: str) -> tuple[tuple[bool, ...], ...]:
    """Dark/light modules of the QR symbol (error correction M), without quiet zone.

    Exactly segno.make_qr(url, error="m", boost_error=False).matrix (boost_error=False: keep
    level M as specified, never silently upgrade), with the mask chosen faster (qrmask.py).
    Cached: the portal draws the same status URL on the thermal label, the A4 page and
    the status page.
    """
    if not url:
        raise ValueError("QR payload must not be empty")
    return tuple(tuple(bool(cell) for cell in row) for row in fast_qr_matrix(url))


def dark_runs(matrix: tuple[tuple[bool, ...], ...]) -> list[tuple[int, int, int]]:
    """Horizontal runs of dark modules as (x, y, length), quiet zone offset included."""
    runs: list[tuple[int, int, int]] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                end = x
                while end < len(row) and row[end]:
                    end += 1
                runs.append((x + QUIET_ZONE_MODULES, y + QUIET_ZONE_MODULES, end - x))
                x = end
            else:
                x += 1
    return runs


def qr_svg(url: str, *, size_mm: float) -> str:
    """Square QR SVG of size_mm including a 4-module quiet zone.

    Each run of dark modules is one horizontal stroke, 1 module wide with butt caps: the
    same squares as filled rectangles, in 2 path commands instead of 5. WeasyPrint parses
    SVG paths in Python, so this makes the label noticeably faster to render.
    """
    if size_mm <= 0:
        raise ValueError("size_mm must be positive")
    matrix = qr_matrix(url)
    total = len(matrix) + 2 * QUIET_ZONE_MODULES
    path = "".join(f"M{x} {y}.5h{length}" for x, y, length in dark_runs(matrix))
    size = f"{size_mm:.3f}".rstrip("0").rstrip(".")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}mm" height="{size}mm" '
        f'viewBox="0 0 {total} {total}" shape-rendering="crispEdges">'
        f'<rect width="{total}" height="{total}" fill="#fff"/>'
        f'<path fill="none" stroke="#000" stroke-width="1" stroke-linecap="butt" d="{path}"/>'
        "</svg>"
    )


def qr_png(url: str) -> bytes:
    """The QR symbol as an 8-bit greyscale PNG, ONE pixel per module, 4-module quiet zone included.

    Meant to be scaled up with `image-rendering: pixelated` (no interpolation), so every
    module stays a sharp square at any resolution; far cheaper for WeasyPrint than an SVG.
    """
    from PIL import Image  # WeasyPrint dependency

    matrix = qr_matrix(url)
    quiet = QUIET_ZONE_MODULES
    total = len(matrix) + 2 * quiet
    light_rows = b"\xff" * (total * quiet)
    margin = b"\xff" * quiet
    body = b"".join(margin + bytes(0 if dark else 255 for dark in row) + margin for row in matrix)
    buffer = io.BytesIO()
    Image.frombytes("L", (total, total), light_rows + body + light_rows).save(buffer, format="PNG")
    return buffer.getvalue()


def qr_module_count(url: str) -> int:
    """Width of the symbol in modules, quiet zone excluded (for sizing ZPL magnification)."""
    return len(qr_matrix(url))
