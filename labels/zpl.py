"""ZPL II for the 100 x 150 mm thermal label, for shops printing straight to a Zebra printer."""

from __future__ import annotations

from .barcode import MIN_QUIET_ZONE_MODULES, code128_modules
from .fit import font_metrics, wrapped_rows
from .model import LabelData
from .qr import QUIET_ZONE_MODULES, qr_module_count
from .render import GEOMETRY, AddressView, build_view

LABEL_WIDTH_MM = 100
LABEL_HEIGHT_MM = 150
MARGIN_MM = 4
CONTENT_WIDTH_MM = LABEL_WIDTH_MM - 2 * MARGIN_MM
BARCODE_MODULE_MM = 0.375  # 3 dots at 203 dpi
ZPL_SPECIAL = frozenset("^~_\\")  # format/control prefixes, the ^FH escape char and ^FB's line-break escape


class _Dots:
    """mm -> printer dots for one resolution."""

    def __init__(self, dpi: int) -> None:
        if isinstance(dpi, bool) or not isinstance(dpi, int) or not 150 <= dpi <= 600:
            raise ValueError(f"unsupported printer resolution {dpi!r} dpi (thermal printers: 152-600 dpi)")
        self.per_mm = dpi / 25.4
        self.dpi = dpi

    def __call__(self, mm: float) -> int:
        return round(mm * self.per_mm)

    def pt(self, points: float) -> int:
        return round(points * self.dpi / 72)


def escape_field(text: str) -> str:
    """Field data for use after ^FH: special characters and control characters as _XX (UTF-8 bytes)."""
    out: list[str] = []
    for char in text:
        if char in ZPL_SPECIAL or ord(char) < 32 or ord(char) == 127:
            out.extend(f"_{byte:02X}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def _text(x: int, y: int, text: str, *, height: int, width: int, lines: int = 1, align: str = "L", reverse: bool = False) -> str:
    """A text field in font 0, wrapped in a field block so it can never run off the label."""
    reverse_cmd = "^FR" if reverse else ""
    return f"^FO{x},{y}^A0N,{height},{height}^FB{width},{max(lines, 1)},0,{align},0{reverse_cmd}^FH^FD{escape_field(text)}^FS"


def _code128_data(payload: str) -> str:
    """^BC field data in subset B: '>' and '~' need invocation codes there."""
    code128_modules(payload)  # validate once, with the same rules as the PDF barcode
    return ">:" + escape_field(payload.replace(">", "><").replace("~", ">="))


def _address(x: int, y: int, view: AddressView, dots: _Dots, box_height: int, bold_metrics: bool) -> list[str]:
    """One field per address line, stacked by the same wrap estimate the PDF uses."""
    height = dots.pt(view.font_pt)
    line_step = round(height * 1.15)
    line_width_em = CONTENT_WIDTH_MM / (view.font_pt * 25.4 / 72)
    metrics = font_metrics(bold_metrics)
    fields: list[str] = []
    cursor = y
    for line in view.lines:
        rows = wrapped_rows(line, line_width_em, metrics)
        rows_left = (y + box_height - cursor) // line_step
        if rows_left <= 0:
            break
        rows = min(rows, rows_left)
        fields.append(_text(x, cursor, line, height=height, width=dots(CONTENT_WIDTH_MM), lines=rows))
        cursor += rows * line_step
    return fields


def render_zpl(data: LabelData, dpi: int = 203) -> str:
    """ZPL II (^XA ... ^XZ, UTF-8 via ^CI28) for the 100 x 150 mm thermal label."""
    dots = _Dots(dpi)
    view = build_view(data, "thermal")
    gettext = view.locale.gettext
    left = dots(MARGIN_MM)
    width = dots(CONTENT_WIDTH_MM)
    fields: list[str] = ["^XA", "^CI28", f"^PW{dots(LABEL_WIDTH_MM)}", f"^LL{dots(LABEL_HEIGHT_MM)}", "^LH0,0"]

    # Header band: solid black with reversed text, as on the PDF label.
    fields.append(f"^FO{left},{dots(3)}^GB{width},{dots(11)},{dots(11)}^FS")
    fields.append(_text(left + dots(2.5), dots(5.5), data.carrier_name, height=dots(6), width=dots(58), reverse=True))
    fields.append(
        _text(left + dots(60), dots(5.5), gettext("Return").upper(), height=dots(6), width=dots(29.5), align="R", reverse=True)
    )

    fields.append(_text(left, dots(16), gettext("To").upper(), height=dots(2.6), width=width))
    fields.extend(_address(left, dots(19.5), view.recipient, dots, dots(GEOMETRY["thermal"].recipient.height_mm), True))

    fields.append(f"^FO{left},{dots(61.5)}^GB{width},{dots(0.4)},{dots(0.4)}^FS")
    fields.append(_text(left, dots(62.5), gettext("From").upper(), height=dots(2.6), width=width))
    fields.extend(_address(left, dots(65.5), view.sender, dots, dots(GEOMETRY["thermal"].sender.height_mm), False))

    # Code128: module = whole dots (3 at 203 dpi), centred, quiet zone >= 10 modules.
    fields.append(f"^FO{left},{dots(83)}^GB{width},{dots(0.4)},{dots(0.4)}^FS")
    module_dots = max(2, dots(BARCODE_MODULE_MM))
    symbol_modules = 11 * len(data.rma) + 35  # start + data + check + stop, all subset B
    if (symbol_modules + 2 * MIN_QUIET_ZONE_MODULES) * module_dots > dots(LABEL_WIDTH_MM):
        module_dots = 2
    barcode_x = max((dots(LABEL_WIDTH_MM) - symbol_modules * module_dots) // 2, MIN_QUIET_ZONE_MODULES * module_dots)
    fields.append(f"^BY{module_dots},3,{dots(16)}")
    fields.append(f"^FO{barcode_x},{dots(85)}^BCN,{dots(16)},N,N,N^FH^FD{_code128_data(data.rma)}^FS")
    fields.append(_text(left, dots(102.5), data.rma, height=dots(4.5), width=width, align="C"))

    # QR (error correction M) bottom left, details to its right.
    fields.append(f"^FO{left},{dots(110)}^GB{width},{dots(0.4)},{dots(0.4)}^FS")
    qr_modules = qr_module_count(data.status_url) + 2 * QUIET_ZONE_MODULES
    magnification = max(1, min(10, dots(32) // qr_modules))
    quiet = QUIET_ZONE_MODULES * magnification
    fields.append(f"^FO{left + quiet},{dots(112) + quiet}^BQN,2,{magnification}^FH^FDMA,{escape_field(data.status_url)}^FS")

    details_x = left + dots(35)
    details_width = dots(CONTENT_WIDTH_MM - 35)
    y = dots(113)
    for caption, value, size_mm in (
        (gettext("Return number (RMA)"), data.rma, 4.2),
        (gettext("Order"), data.order_number, 3.4),
        (gettext("Drop off by"), view.deadline, 3.4),
        (gettext("Carrier"), data.carrier_name, 3.4),
    ):
        fields.append(_text(details_x, y, caption.upper(), height=dots(2.4), width=details_width))
        fields.append(_text(details_x, y + dots(2.8), value, height=dots(size_mm), width=details_width))
        y += dots(2.8 + size_mm + 1.6)

    fields.extend(["^PQ1", "^XZ"])
    return "\n".join(fields) + "\n"
