"""SMS encoding: GSM-7 (GSM 03.38 basic set + extension table) or UCS-2, characters used and segments.

Pure functions, no database. Extension-table characters (€ [ ] { } ^ ~ | \\ and form feed) take two
septets. A message needs UCS-2 as soon as one character is outside both GSM tables; UCS-2 counts UTF-16
code units (characters outside the BMP take two).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # septets (GSM-7, extension chars count 2) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # capacity of one segment for this message (160/153 or 70/67)
    ucs2_characters: tuple[str, ...]  # characters that force UCS-2, in order of first appearance


def _units(ch: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def forcing_ucs2(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for ch in text:
        if ch not in GSM_BASIC and ch not in GSM_EXTENSION:
            seen.setdefault(ch, None)
    return tuple(seen)


def analyse(text: str) -> SmsInfo:
    forcing = forcing_ucs2(text)
    encoding = "UCS-2" if forcing else "GSM-7"
    single, multi = (UCS2_SINGLE, UCS2_MULTI) if forcing else (GSM_SINGLE, GSM_MULTI)
    units = [_units(ch, encoding) for ch in text]
    total = sum(units)
    if total == 0:
        return SmsInfo(encoding, 0, 0, single, forcing)
    if total <= single:
        return SmsInfo(encoding, total, 1, single, forcing)
    # Concatenated: a character (escape pair or surrogate pair) is never split across two segments.
    segments, used = 1, 0
    for u in units:
        if used + u > multi:
            segments, used = segments + 1, 0
        used += u
    return SmsInfo(encoding, total, segments, multi, forcing)
