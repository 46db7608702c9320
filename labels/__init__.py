"""Return drop-off labels: label data in, PDF / SVG / ZPL out. Pure library: no database, no web."""

from .barcode import code128_svg
from .fonts import harfbuzz_subset_available
from .i18n import SUPPORTED_LANGUAGES, CatalogueMissingError
from .model import LAYOUT_VERSION, Address, LabelData, LabelLine, NorwayInfo, fingerprint
from .qr import qr_svg
from .render import render_pdf, render_pdf_batch
from .zpl import render_zpl

__all__ = [
    "LAYOUT_VERSION",
    "SUPPORTED_LANGUAGES",
    "Address",
    "CatalogueMissingError",
    "LabelData",
    "LabelLine",
    "NorwayInfo",
    "code128_svg",
    "fingerprint",
    "harfbuzz_subset_available",
    "qr_svg",
    "render_pdf",
    "render_pdf_batch",
    "render_zpl",
]
