"""Removing one customer's personal data from free-form JSON (event data, payloads, delivery details).

Two passes, because neither alone is enough: values under keys that name personal data
(destination, to, email, phone, street, …) are replaced whatever they hold, and every string
anywhere is searched for the customer's own name, e-mail, phone number (in its usual spellings)
and address, which are replaced where they occur. Pure: no database, no web.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import phonenumbers

REMOVED = "[anonymised]"

PERSONAL_KEYS = frozenset({
    "destination", "to", "recipient", "recipients", "email", "e_mail", "phone", "phone_number", "msisdn",
    "first_name", "last_name", "full_name", "customer_name", "street", "street_lines", "address", "postcode",
    "postal_code", "zip", "city", "sender",
})
MIN_LENGTH = 2  # shorter strings (initials) would match inside ordinary words


def phone_spellings(raw: str | None, region: str) -> set[str]:
    """The number as stored plus its E.164, international, national and digits-only forms."""
    if not raw or not raw.strip():
        return set()
    found = {raw.strip()}
    try:
        number = phonenumbers.parse(raw, region.upper() or None)
    except phonenumbers.NumberParseException:
        return found
    for fmt in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL):
        spelled = phonenumbers.format_number(number, fmt)
        found |= {spelled, re.sub(r"[^\d+]", "", spelled)}
    return found


def personal_pattern(values: Iterable[str | None]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any of `values` as a whole word (longest first)."""
    words = sorted({v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)


def scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    """A copy of `value` without the personal data: new containers, so ORM change tracking sees the change."""
    if isinstance(value, dict):
        return {key: _scrub_item(key, item, pattern) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, pattern) for item in value]
    if isinstance(value, str) and pattern is not None:
        return pattern.sub(REMOVED, value)
    return value


def _scrub_item(key: Any, item: Any, pattern: re.Pattern[str] | None) -> Any:
    if isinstance(key, str) and key.lower() in PERSONAL_KEYS and item not in (None, "", [], {}):
        return REMOVED
    return scrub(item, pattern)
