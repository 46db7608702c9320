"""RMA numbers and secret status tokens.

An RMA is "R" + 6 random Crockford base32 symbols + 1 check symbol (Luhn mod 32), e.g.
R4KX9P2T: short enough to read over the phone, and a mistyped symbol is caught.
Status tokens carry 192 bits of randomness and are compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})
RMA_PREFIX = "R"
RMA_BODY_LENGTH = 6


def _luhn_check_symbol(body: str) -> str:
    n = len(ALPHABET)
    total = 0
    factor = 2
    for ch in reversed(body):
        addend = factor * _VALUE[ch]
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def new_rma() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RMA_BODY_LENGTH))
    return RMA_PREFIX + body + _luhn_check_symbol(body)


def normalise_rma(text: str) -> str:
    """Upper-case, drop spaces and dashes, and map look-alike letters to their symbols."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if cleaned.startswith(RMA_PREFIX):
        return RMA_PREFIX + cleaned[1:].translate(_CONFUSABLE)
    return cleaned.translate(_CONFUSABLE)


def is_valid_rma(text: str) -> bool:
    rma = normalise_rma(text)
    if len(rma) != 1 + RMA_BODY_LENGTH + 1 or not rma.startswith(RMA_PREFIX):
        return False
    body, check = rma[1:-1], rma[-1]
    if any(ch not in _VALUE for ch in body + check):
        return False
    return _luhn_check_symbol(body) == check


def new_status_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def tokens_equal(given: str, stored: str) -> bool:
    return hmac.compare_digest(given.encode(), stored.encode())
