"""Label rendering benchmark: our labels against a bare WeasyPrint page of the same size.

Usage: .venv/bin/python bench/labels.py [--repeat 15] [--batch 100] [--logo]
Target: one label <= 2 x bare baseline + 40 ms (per layout).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labels import Address, LabelData, LabelLine, harfbuzz_subset_available  # noqa: E402
from labels.render import render_pdf, render_pdf_batch  # noqa: E402

PAGE_SIZES = {"thermal": "100mm 150mm", "a4": "A4"}


def sample_logo() -> bytes:
    """A 360 x 120 PNG with transparency, like a typical shop logo."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (360, 120), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, 118), (120, 10), (240, 118)], fill=(46, 94, 62, 255))
    draw.ellipse((250, 8, 306, 64), fill=(232, 163, 23, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


LOGO: bytes | None = None  # set by --logo


def sample_label(index: int = 0) -> LabelData:
    return LabelData(
        rma=f"R7K4-{index % 10000:04d}",
        status_url=f"https://returns.example.se/s/Zq3kP9wXv2LmN8bT{index % 10000:04d}",
        language=("sv", "nb", "da", "fi", "en")[index % 5],
        order_number=f"10{index:04d}",
        merchant_name="Nordvik Outdoor AB",
        carrier_name="PostNord",
        sender=Address("Anna Andersson", ("Storgatan 12 lgh 1102",), "114 55", "Stockholm", "SE", "+46701234567"),
        recipient=Address("Nordvik Outdoor Returer", ("Lagervägen 4", "Port 3"), "553 03", "Jönköping", "SE"),
        lines=tuple(
            LabelLine(f"NV-{line:04d}", f"Merino wool sweater, size M, item {line}", 1, 49_900, "SEK", "Too small")
            for line in range(3)
        ),
        drop_off_deadline=date(2025, 12, 14),
        created_at=datetime(2025, 11, 22, 10, 30, tzinfo=timezone.utc),
        logo=LOGO,
    )


def bare_html(layout: str, pages: int = 1) -> str:
    """A minimal page of the same size: the floor WeasyPrint itself sets."""
    body = '<p style="break-after: page">Return label</p>' * (pages - 1) + "<p>Return label</p>"
    return f"<html><head><style>@page {{ size: {PAGE_SIZES[layout]} }}</style></head><body>{body}</body></html>"


def render_bare(layout: str, pages: int = 1) -> bytes:
    from weasyprint import HTML

    return HTML(string=bare_html(layout, pages)).write_pdf()


def median_seconds(action: Callable[[int], object], repeat: int) -> float:
    """Median wall time of action(i) for i = 1..repeat, after warm-ups with i = -5..0
    (font discovery, templates, stylesheets, Babel locale data for every language)."""
    for warm_up in range(-5, 1):
        action(warm_up)
    timings = []
    for index in range(1, repeat + 1):
        started = time.perf_counter()
        action(index)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def once_seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def cached_download_figures() -> list[str]:
    """Portal-side figures (cached PDF download over HTTP); extend on the portal side."""
    return ["cached download: see bench/labels_http.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="renders per median (default 15)")
    parser.add_argument("--batch", type=int, default=100, help="labels per batch (default 100)")
    parser.add_argument("--logo", action="store_true", help="every label carries the shop's logo")
    args = parser.parse_args()
    global LOGO
    LOGO = sample_logo() if args.logo else None

    print(f"libharfbuzz-subset available: {harfbuzz_subset_available()}")
    print(f"logo on every label: {'yes' if LOGO else 'no'}")
    # Every label differs (RMA, status URL, language), so no cache flatters the figures.
    batch = [sample_label(1000 + index) for index in range(args.batch)]
    all_ok = True
    for layout in ("thermal", "a4"):
        one = median_seconds(lambda index: render_pdf(sample_label(index), layout), args.repeat)
        bare = median_seconds(lambda _index: render_bare(layout), args.repeat)
        per_label = once_seconds(lambda: render_pdf_batch(batch, layout)) / args.batch
        bare_pages = 2 if layout == "a4" else 1  # an A4 label with its packing slip is one or two pages
        bare_per_page = once_seconds(lambda: render_bare(layout, args.batch * bare_pages)) / args.batch
        target = 2 * bare + 0.040
        ok = one <= target
        all_ok &= ok
        print(f"\n[{layout}]")
        print(f"  one label, median of {args.repeat}:          {one * 1000:8.1f} ms")
        print(f"  bare page, median of {args.repeat}:          {bare * 1000:8.1f} ms")
        print(f"  batch of {args.batch}, per label:            {per_label * 1000:8.1f} ms")
        print(f"  bare batch of {args.batch}, per label:       {bare_per_page * 1000:8.1f} ms")
        print(
            f"  target one label <= 2x bare + 40 ms: {one * 1000:.1f} ms <= "
            f"2 x {bare * 1000:.1f} + 40 = {target * 1000:.1f} ms -> {'OK' if ok else 'MISSED'}"
        )
    print()
    for line in cached_download_figures():
        print(line)
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
