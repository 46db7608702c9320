"""HMAC-SHA256 webhook signatures over "timestamp.body", with a replay window.

Header: `X-Portal-Signature: t=<unix seconds>,v1=<hex digest>` (the Stripe-style scheme merchants know).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Portal-Signature"
REPLAY_WINDOW_S = 300


class SignatureError(ValueError):
    pass


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None, window_s: int = REPLAY_WINDOW_S) -> int:
    """The signed timestamp when valid; raises SignatureError saying what is wrong otherwise."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError) as exc:
        raise SignatureError("malformed signature header") from exc
    now = time.time() if now is None else now
    if abs(now - ts) > window_s:
        raise SignatureError("signature timestamp outside the 5-minute window (replay?)")
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match")
    return ts
