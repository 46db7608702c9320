"""Label PDFs with WeasyPrint: Jinja2 templates in templates/labels/, one document per call."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jinja2
import jinja2.ext
from babel import Locale
from markupsafe import Markup

from .barcode import code128_png, code128_svg, largest_fitting_module_mm, symbol_width_modules
from .columns import Column, format_row
from .fit import fit_block
from .i18n import NORWEGIAN, LabelLocale, label_locale
from .logo import fit_logo
from .model import Address, LabelData, LabelLine
from .qr import qr_png, qr_svg

Layout = Literal["a4", "thermal"]
LAYOUTS: tuple[Layout, ...] = ("a4", "thermal")
DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "labels"
DEFAULT_BRAND_COLOUR = "#1f4e79"
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class Box:
    """A fixed text box on the label, in mm; text in it is shrunk to fit."""

    width_mm: float
    height_mm: float
    max_pt: float
    min_pt: float
    bold: bool = False


@dataclass(frozen=True)
class LogoBox:
    """Where the merchant's logo goes: the right-hand end of the sender block."""

    width_mm: float
    height_mm: float
    dpi: int  # the printer's: no point embedding more pixels than it prints
    greyscale: bool


@dataclass(frozen=True)
class Geometry:
    barcode_max_width_mm: float
    barcode_module_candidates_mm: tuple[float, ...]
    barcode_bar_height_mm: float
    qr_size_mm: float
    recipient: Box
    sender: Box
    logo: LogoBox
    sender_beside_logo: Box  # the sender's box when a logo takes the end of it


# Module sizes are whole dots at 203 dpi (3 and 2 dots) and, for home printers, 0.5 mm.
GEOMETRY: dict[str, Geometry] = {
    "thermal": Geometry(
        barcode_max_width_mm=92,
        barcode_module_candidates_mm=(0.375, 0.25),
        barcode_bar_height_mm=16,
        qr_size_mm=32,
        recipient=Box(width_mm=92, height_mm=38, max_pt=16, min_pt=6, bold=True),
        sender=Box(width_mm=92, height_mm=15, max_pt=9, min_pt=5),
        logo=LogoBox(width_mm=22, height_mm=14, dpi=203, greyscale=True),
        sender_beside_logo=Box(width_mm=68, height_mm=15, max_pt=9, min_pt=5),
    ),
    "a4": Geometry(
        barcode_max_width_mm=176,
        barcode_module_candidates_mm=(0.5, 0.375, 0.25),
        barcode_bar_height_mm=18,
        qr_size_mm=30,
        recipient=Box(width_mm=112, height_mm=35, max_pt=15, min_pt=6, bold=True),
        sender=Box(width_mm=112, height_mm=15, max_pt=9, min_pt=5),
        logo=LogoBox(width_mm=24, height_mm=14, dpi=300, greyscale=False),
        sender_beside_logo=Box(width_mm=85, height_mm=15, max_pt=9, min_pt=5),
    ),
}


# Packing slip columns in character cells of the slip's monospace font (DejaVu Sans Mono at
# 8 pt: 1.70 mm a cell, so 107 cells with the gaps fit the 183 mm inside the table).
SLIP_COLUMNS = (Column(20), Column(47), Column(8, "right"), Column(26))
# Up to this many text lines the packing slip is one block kept on a page (it always fits on
# one, with the heading before it); longer, it is a table whose header repeats on each page.
SLIP_COMPACT_MAX_LINES = 12


@dataclass(frozen=True)
class AddressView:
    lines: tuple[str, ...]  # postal order: name first; phone (if any) last
    font_pt: float

    @property
    def size_class(self) -> str:
        """CSS class for font_pt (base.css has .fs50 to .fs160, fit.py's 0.5 pt steps): a class
        instead of a style attribute, as WeasyPrint computes every distinct style anew."""
        return f"fs{round(self.font_pt * 2) * 5}"


@dataclass(frozen=True)
class LineView:
    sku: str
    description: str
    quantity: int
    reason: str
    total_value: str
    cn_code: str | None
    origin_country: str | None
    net_weight: str | None


@dataclass(frozen=True)
class NorwayView:
    export_mrn: str | None
    voec_number: str | None
    sold_under_voec: bool
    entry_route: str
    total_value: str


@dataclass(frozen=True)
class ImageView:
    """A barcode image for an <img>: a PNG data URI at one pixel per module, and its size in mm."""

    src: str
    width_mm: float
    height_mm: float

    @property
    def style(self) -> str:
        return f"width: {self.width_mm:.3f}mm; height: {self.height_mm:.3f}mm"


def _png_image(png: bytes, width_mm: float, height_mm: float) -> ImageView:
    return ImageView("data:image/png;base64," + base64.b64encode(png).decode("ascii"), width_mm, height_mm)


@dataclass(frozen=True)
class LabelView:
    """What one label's templates see: data plus everything pre-formatted in its language."""

    data: LabelData
    locale: LabelLocale
    recipient: AddressView
    sender: AddressView
    barcode: ImageView  # Code128 of the RMA, whole modules of barcode_module_mm
    barcode_module_mm: float
    qr: ImageView  # QR of the status URL
    deadline: str
    created: str
    lines: tuple[LineView, ...]
    slip_header: str  # the packing slip as fixed-width rows: SKU, description, qty, reason
    slip_rows: tuple[str, ...]
    norway: NorwayView | None
    brand_colour: str
    layout: Layout
    logo: ImageView | None = None  # the merchant's logo, fitted into geometry.logo

    @property
    def gettext(self) -> Callable[..., str]:  # the templates bind this to `_`
        return self.locale.gettext

    @property
    def slip_compact(self) -> bool:
        """Short enough to set as one block that is never split (see SLIP_COMPACT_MAX_LINES)."""
        return sum(row.count("\n") + 1 for row in self.slip_rows) <= SLIP_COMPACT_MAX_LINES

    @property
    def barcode_svg(self) -> Markup:
        """The same barcode as vector SVG (the templates embed the cheaper PNG)."""
        geometry = GEOMETRY[self.layout]
        return Markup(
            code128_svg(
                self.data.rma,
                module_mm=self.barcode_module_mm,
                bar_height_mm=geometry.barcode_bar_height_mm,
                human_readable=False,
            )
        )

    @property
    def qr_svg(self) -> Markup:
        return Markup(qr_svg(self.data.status_url, size_mm=GEOMETRY[self.layout].qr_size_mm))


def label_language(data: LabelData) -> str:
    """Norwegian returns get Norwegian instructions whatever language the order was in."""
    return NORWEGIAN if data.norway is not None else data.language


def _country_name(code: str, locale: LabelLocale) -> str:
    return Locale.parse(locale.babel_locale).territories.get(code.upper(), code.upper())


def _one_line(text: str) -> str:
    """Collapse whitespace, newlines included: each address field is exactly one paragraph."""
    return " ".join(text.split())


def _address_view(address: Address, box: Box, locale: LabelLocale, show_country: bool) -> AddressView:
    """Address lines in postal order, shrunk (and if need be shortened) to fit the box.

    Name, postcode + city and country are kept; street lines and phone give way first.
    """
    paragraphs: list[str] = [_one_line(address.name)]
    squeezable: set[int] = set()
    for street in address.street_lines:
        if _one_line(street):
            squeezable.add(len(paragraphs))
            paragraphs.append(_one_line(street))
    paragraphs.append(_one_line(f"{address.postcode} {address.city}"))
    if show_country and address.country.strip():
        # Postal convention: the destination country in capitals on its own last line.
        paragraphs.append(_country_name(address.country.strip(), locale).upper())
    if address.phone and _one_line(address.phone):
        squeezable.add(len(paragraphs))
        # Not inside an f-string: message extraction cannot see calls in f-strings.
        phone_caption = locale.gettext("Phone")
        paragraphs.append(f"{phone_caption} {_one_line(address.phone)}")
    fitted = fit_block(
        paragraphs,
        squeezable=frozenset(squeezable),
        box_width_mm=box.width_mm,
        box_height_mm=box.height_mm,
        max_pt=box.max_pt,
        min_pt=box.min_pt,
        bold=box.bold,
    )
    return AddressView(lines=fitted.paragraphs, font_pt=fitted.font_pt)


def _money_totals(lines: Sequence[LabelLine], locale: LabelLocale) -> str:
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.currency.upper()] = totals.get(line.currency.upper(), 0) + line.total_value_minor
    return " + ".join(locale.money(amount, currency) for currency, amount in sorted(totals.items()))


def _line_view(line: LabelLine, locale: LabelLocale) -> LineView:
    weight = None
    if line.net_weight_grams is not None:
        weight = locale.gettext("%(grams)s g", grams=f"{line.net_weight_grams:d}")
    return LineView(
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        reason=line.reason,
        total_value=locale.money(line.total_value_minor, line.currency),
        cn_code=line.cn_code,
        origin_country=line.origin_country.upper() if line.origin_country else None,
        net_weight=weight,
    )


def brand_ink(colour: str) -> str:
    """The brand colour for headings on white paper: only a well-formed hex colour (it lands in
    a style attribute), and black instead of one too light to read."""
    if not _HEX_COLOUR.match(colour or ""):
        return DEFAULT_BRAND_COLOUR
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return "#000" if luminance > 0.6 else colour


def _logo_view(logo: bytes | None, box: LogoBox) -> ImageView | None:
    fitted = fit_logo(logo, box.width_mm, box.height_mm, box.dpi, box.greyscale) if logo else None
    return _png_image(fitted.png, fitted.width_mm, fitted.height_mm) if fitted else None


def build_view(data: LabelData, layout: Layout) -> LabelView:
    if layout not in GEOMETRY:
        raise ValueError(f"unknown label layout {layout!r}; expected one of {LAYOUTS}")
    geometry = GEOMETRY[layout]
    logo = _logo_view(data.logo, geometry.logo)
    locale = label_locale(label_language(data))
    international = data.sender.country.upper() != data.recipient.country.upper()
    module_mm = largest_fitting_module_mm(
        data.rma, geometry.barcode_max_width_mm, geometry.barcode_module_candidates_mm
    )
    lines = tuple(_line_view(line, locale) for line in data.lines)
    norway = None
    if data.norway is not None:
        norway = NorwayView(
            export_mrn=data.norway.export_mrn,
            voec_number=data.norway.voec_number,
            sold_under_voec=bool(data.norway.voec_number) or data.norway.entry_route == "voec",
            entry_route=data.norway.entry_route,
            total_value=_money_totals(data.lines, locale),
        )
    return LabelView(
        data=data,
        locale=locale,
        recipient=_address_view(data.recipient, geometry.recipient, locale, show_country=international),
        sender=_address_view(data.sender, geometry.sender_beside_logo if logo else geometry.sender, locale,
                             show_country=international),
        # No human-readable text in the image: the page prints the RMA as real text under the bars.
        barcode=_png_image(
            code128_png(data.rma),
            width_mm=symbol_width_modules(data.rma) * module_mm,
            height_mm=geometry.barcode_bar_height_mm,
        ),
        barcode_module_mm=module_mm,
        qr=_png_image(qr_png(data.status_url), geometry.qr_size_mm, geometry.qr_size_mm),
        deadline=locale.date(data.drop_off_deadline),
        created=locale.date(data.created_at.date()),
        lines=lines,
        slip_header=format_row(
            (locale.gettext("SKU"), locale.gettext("Description"), locale.gettext("Qty"), locale.gettext("Reason")),
            SLIP_COLUMNS,
        ),
        slip_rows=tuple(
            format_row((line.sku, line.description, str(line.quantity), line.reason), SLIP_COLUMNS) for line in lines
        ),
        norway=norway,
        brand_colour=brand_ink(data.brand_colour),
        layout=layout,
        logo=logo,
    )


# --- WeasyPrint plumbing, built once per process --------------------------------------------


# A line break (and indentation) right after a tag, {% block %} or {# comment #} and right
# before another one: the templates' own formatting, not text.
_BETWEEN_TAGS = re.compile(r"(>|%\}|#\})[ \t]*\n\s*(?=<|\{%|\{#)")


class _TagLineBreaks(jinja2.ext.Extension):
    """Drop the templates' own line breaks between two tags when a template is loaded.
    WeasyPrint parses and boxes every whitespace text node (a few percent of a label's render
    time). Values inserted with {{ }} are untouched; between two inline elements, keep the
    space on one line (or write it as `&#32;`)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _BETWEEN_TAGS.sub(r"\1", source)


@lru_cache(maxsize=8)
def _jinja_env(template_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        extensions=[_TagLineBreaks],
        autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@lru_cache(maxsize=1)
def _font_config():
    from weasyprint.text.fonts import FontConfiguration

    return FontConfiguration()


@lru_cache(maxsize=16)
def _stylesheets(template_dir: Path, layout: Layout) -> tuple:
    from weasyprint import CSS

    return tuple(
        CSS(filename=str(template_dir / name), font_config=_font_config()) for name in ("base.css", f"{layout}.css")
    )


# WeasyPrint shares font configuration and stylesheets between renders; keep renders serial.
_render_lock = threading.Lock()


def _template_dir(template_dir: Path | str | None) -> Path:
    return Path(template_dir or DEFAULT_TEMPLATE_DIR).resolve()


def render_html(items: Sequence[LabelData], layout: Layout, template_dir: Path | str | None = None) -> str:
    """The HTML WeasyPrint lays out: all labels in one document, one page break between them."""
    if not items:
        raise ValueError("nothing to render: no labels given")
    directory = _template_dir(template_dir)
    views = [build_view(item, layout) for item in items]
    return _jinja_env(directory).get_template(f"{layout}.html").render(labels=views)


def render_pdf_batch(
    items: Sequence[LabelData], layout: Layout, *, template_dir: Path | str | None = None
) -> bytes:
    """Many labels in ONE WeasyPrint document (each label starts on a new page)."""
    from weasyprint import HTML

    directory = _template_dir(template_dir)
    html = render_html(items, layout, directory)
    with _render_lock:
        document = HTML(string=html, base_url=str(directory))
        return document.write_pdf(stylesheets=list(_stylesheets(directory, layout)), font_config=_font_config())


def render_pdf(data: LabelData, layout: Layout, *, template_dir: Path | str | None = None) -> bytes:
    """One return label as PDF: "a4" (home print with instructions) or "thermal" (100x150 mm)."""
    return render_pdf_batch([data], layout, template_dir=template_dir)
