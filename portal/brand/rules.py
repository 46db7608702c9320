"""What an admin may save as the brand: pure checks, each problem as a message keyed by form field."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from labels.logo import logo_format
from portal.brand.cache import display_phone
from portal.i18n import staff_text
from portal.notify.rules import normalise_phone

MAX_NAME = 50
MAX_URL = 300
MAX_EMAIL = 254
MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_SIDE = 2000
MIN_CONTRAST = 4.5  # WCAG AA for normal text: the header and primary buttons put white text on the colour
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOGO_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of #rrggbb."""
    channels = []
    for i in (1, 3, 5):
        c = int(colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def check_colour(raw: str) -> tuple[str, str | None]:
    value = raw.strip().lower()
    if not _HEX_COLOUR.match(value):
        return value, staff_text("Type the colour as # and six hexadecimal digits, e.g. #1f4e79.")
    ratio = contrast_ratio(value, "#ffffff")
    if ratio < MIN_CONTRAST:
        shown = int(ratio * 100) / 100  # rounded down: never show 4.50 for a refused 4.497
        return value, staff_text("White text on %(colour)s has a contrast ratio of only %(ratio)s:1; it needs at least "
                                 "%(minimum)s:1 to be readable in the header and on buttons. Choose a darker colour.",
                                 colour=value, ratio=f"{shown:.2f}", minimum=MIN_CONTRAST)
    return value, None


def check_name(raw: str) -> tuple[str, str | None]:
    value = " ".join(raw.split())
    if not value:
        return value, staff_text("Type the shop's name.")
    if len(value) > MAX_NAME:
        return value, staff_text("At most %(limit)s characters (this is %(length)s).", limit=MAX_NAME, length=len(value))
    return value, None


def check_email(raw: str) -> tuple[str, str | None]:
    value = raw.strip()
    if not _EMAIL.match(value) or len(value) > MAX_EMAIL:
        return value, staff_text("Type a valid e-mail address, e.g. support@yourshop.se.")
    return value, None


def check_phone(raw: str, region: str) -> tuple[str, str | None]:
    """E.164 (empty allowed: the phone is optional). Numbers without +country are read as `region`'s."""
    if not raw.strip():
        return "", None
    e164 = normalise_phone(raw, region)
    if e164 is None:
        return raw.strip(), staff_text("Type a valid phone number, e.g. +46 8 123 456 78.")
    return e164, None


def check_url(raw: str) -> tuple[str, str | None]:
    value = raw.strip()
    if not value:
        return "", None
    if len(value) > MAX_URL:
        return value, staff_text("At most %(limit)s characters.", limit=MAX_URL)
    parts = urlsplit(value)
    if parts.scheme.lower() != "https":
        return value, staff_text("The address must start with https://.")
    host = parts.hostname or ""
    if not host or "." not in host or any(c.isspace() for c in value) or parts.username or parts.password:
        return value, staff_text("Type a full web address, e.g. https://yourshop.se/help.")
    return value, None


@dataclass(frozen=True)
class LogoInfo:
    content_type: str
    width: int
    height: int
    size: int


def check_logo(data: bytes) -> tuple[LogoInfo | None, str | None]:
    """PNG or JPEG by its magic bytes, at most MAX_LOGO_BYTES, at most MAX_LOGO_SIDE pixels a side
    (from the header, before decoding), and an image that decodes in full."""
    kind = logo_format(data)
    if kind is None:
        return None, staff_text("The logo must be a PNG or JPEG image. This file is neither, whatever its name says.")
    if len(data) > MAX_LOGO_BYTES:
        return None, staff_text("The logo is %(size)s KB; at most %(limit)s KB.", size=f"{len(data) / 1024:.0f}",
                                limit=MAX_LOGO_BYTES // 1024)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # read from the header; nothing decoded yet
            if image.format != kind.upper():
                return None, staff_text("The logo must be a PNG or JPEG image. This file is neither, whatever its name says.")
            if width > MAX_LOGO_SIDE or height > MAX_LOGO_SIDE:
                return None, staff_text("The logo is %(width)s × %(height)s pixels; at most %(limit)s × %(limit)s.",
                                        width=width, height=height, limit=MAX_LOGO_SIDE)
            image.verify()  # PNG: every chunk's checksum
        if not _ends_whole(data, kind):
            raise ValueError("no end marker")
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes: a corrupt file fails here, not on a label later
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return None, staff_text("The logo file is damaged: it is not a complete %(kind)s image.", kind=kind.upper())
    return LogoInfo(LOGO_TYPES[kind], width, height, len(data)), None


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: always these 12 bytes
_JPEG_END = b"\xff\xd9"  # end-of-image marker


def _ends_whole(data: bytes, kind: str) -> bool:
    """The file's end marker is there. Needed because WeasyPrint turns on Pillow's LOAD_TRUNCATED_IMAGES
    for the whole process, and then a cut-off image loads without an error."""
    if kind == "png":
        return data.endswith(_PNG_END)
    return data.rstrip(b"\x00").endswith(_JPEG_END)
