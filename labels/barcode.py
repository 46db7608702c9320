"""Code128 as SVG, sized for the printer: every bar a whole number of modules (printer dots)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from html import escape

from barcode.codex import Code128

MIN_QUIET_ZONE_MODULES = 10
# Dot pitch of a 203 dpi thermal printer; modules that are whole dots keep every bar whole.
THERMAL_DOT_MM = 25.4 / 203


@dataclass(frozen=True)
class BarRun:
    start: int  # first module of the bar
    width: int  # bar width in modules


def code128_modules(payload: str) -> str:
    """The Code128 symbol (start, data, check, stop) as a string of '1' (bar) and '0' (space)."""
    if not payload:
        raise ValueError("Code128 payload must not be empty")
    if any(ord(char) > 127 for char in payload):
        # python-barcode would silently re-encode; a label must carry the RMA exactly.
        raise ValueError(f"Code128 payload must be ASCII, got {payload!r}")
    return Code128(payload).build()[0]


def bar_runs(modules: str) -> list[BarRun]:
    """Run-length encode the bars: consecutive '1' modules become one rectangle."""
    runs: list[BarRun] = []
    index = 0
    while index < len(modules):
        if modules[index] == "1":
            end = index
            while end < len(modules) and modules[end] == "1":
                end += 1
            runs.append(BarRun(start=index, width=end - index))
            index = end
        else:
            index += 1
    return runs


def symbol_width_modules(payload: str, quiet_zone_modules: int = MIN_QUIET_ZONE_MODULES) -> int:
    """Total width of the symbol including both quiet zones, in modules."""
    return len(code128_modules(payload)) + 2 * max(quiet_zone_modules, MIN_QUIET_ZONE_MODULES)


def _fmt(value: float) -> str:
    """Compact number for SVG attributes (no trailing zeros, no float noise)."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def code128_svg(
    payload: str,
    *,
    module_mm: float = 0.375,
    bar_height_mm: float = 18,
    quiet_zone_modules: int = 10,
    human_readable: bool = True,
) -> str:
    """Code128 SVG with all bars in ONE <path>, sized in mm, quiet zone >= 10 modules each side.

    The viewBox is in module units, so every bar edge sits on a whole module and the
    drawing scales exactly to module_mm per module.
    """
    if module_mm <= 0 or bar_height_mm <= 0:
        raise ValueError("module_mm and bar_height_mm must be positive")
    quiet = max(quiet_zone_modules, MIN_QUIET_ZONE_MODULES)
    modules = code128_modules(payload)
    total_modules = len(modules) + 2 * quiet
    bar_height = bar_height_mm / module_mm  # in module units
    text_size = 3.2 / module_mm if human_readable else 0.0  # ~3.2 mm tall digits
    text_gap = 1.0 / module_mm if human_readable else 0.0
    total_height = bar_height + (text_gap + text_size * 1.15 if human_readable else 0.0)

    path = "".join(
        f"M{quiet + run.start},0h{run.width}v{_fmt(bar_height)}h-{run.width}z" for run in bar_runs(modules)
    )
    width_mm = total_modules * module_mm
    height_mm = total_height * module_mm
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_fmt(width_mm)}mm" height="{_fmt(height_mm)}mm" '
        f'viewBox="0 0 {total_modules} {_fmt(total_height)}" shape-rendering="crispEdges" '
        f'role="img" aria-label="{escape(payload)}">',
        f'<rect width="{total_modules}" height="{_fmt(total_height)}" fill="#fff"/>',
        f'<path fill="#000" d="{path}"/>',
    ]
    if human_readable:
        baseline = bar_height + text_gap + text_size * 0.9
        parts.append(
            f'<text x="{_fmt(total_modules / 2)}" y="{_fmt(baseline)}" text-anchor="middle" '
            f'font-family="DejaVu Sans Mono, monospace" font-size="{_fmt(text_size)}" fill="#000">'
            f"{escape(payload)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def code128_png(payload: str, *, quiet_zone_modules: int = 10) -> bytes:
    """Code128 as an 8-bit greyscale PNG, ONE pixel per module and one pixel tall (quiet zones included).

    Meant to be stretched to module_mm per pixel with `image-rendering: pixelated` (no
    interpolation): every bar edge then falls exactly on a module edge at any printer
    resolution, like the SVG, but WeasyPrint embeds a tiny image instead of parsing and
    drawing a vector path, which makes a label noticeably faster to render.
    """
    from PIL import Image  # WeasyPrint dependency

    quiet = "0" * max(quiet_zone_modules, MIN_QUIET_ZONE_MODULES)
    modules = quiet + code128_modules(payload) + quiet
    row = modules.replace("0", "\xff").replace("1", "\x00").encode("latin-1")
    buffer = io.BytesIO()
    Image.frombytes("L", (len(modules), 1), row).save(buffer, format="PNG")
    return buffer.getvalue()


def largest_fitting_module_mm(payload: str, max_width_mm: float, candidates_mm: tuple[float, ...]) -> float:
    """Largest module (from printer-friendly candidates, biggest first) whose symbol fits the width."""
    width_modules = symbol_width_modules(payload)
    for module in sorted(candidates_mm, reverse=True):
        if width_modules * module <= max_width_mm:
            return module
    return min(candidates_mm)
