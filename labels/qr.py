"""QR code as SVG (segno for the encoding, one <path> for the dark modules)."""

from __future__ import annotations

import segno

QUIET_ZONE_MODULES = 4


def qr_matrix(url: str) -> tuple[tuple[bool, ...], ...]:
    """Dark/light modules of the QR symbol (error correction M), without quiet zone."""
    if not url:
        raise ValueError("QR payload must not be empty")
    # boost_error=False: keep exactly level M as specified, never silently upgrade.
    code = segno.make_qr(url, error="m", boost_error=False)
    return tuple(tuple(bool(cell) for cell in row) for row in code.matrix)


def qr_svg(url: str, *, size_mm: float) -> str:
    """Square QR SVG of size_mm including a 4-module quiet zone."""
    if size_mm <= 0:
        raise ValueError("size_mm must be positive")
    matrix = qr_matrix(url)
    total = len(matrix) + 2 * QUIET_ZONE_MODULES
    segments: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                end = x
                while end < len(row) and row[end]:
                    end += 1
                segments.append(f"M{x + QUIET_ZONE_MODULES},{y + QUIET_ZONE_MODULES}h{end - x}v1h-{end - x}z")
                x = end
            else:
                x += 1
    size = f"{size_mm:.3f}".rstrip("0").rstrip(".")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}mm" height="{size}mm" '
        f'viewBox="0 0 {total} {total}" shape-rendering="crispEdges">'
        f'<rect width="{total}" height="{total}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(segments)}"/>'
        "</svg>"
    )


def qr_module_count(url: str) -> int:
    """Width of the symbol in modules, quiet zone excluded (for sizing ZPL magnification)."""
    return len(qr_matrix(url))
