"""Unsubscribing from marketing mail: the signed link in `List-Unsubscribe`, and recording the withdrawal.

The token names the customer and the channel and carries an HMAC of both under SECRET_KEY, so it needs
no table and cannot be forged or moved to another customer; it is compared in constant time. Only marketing
consent is withdrawn: service messages about a return are not marketing and keep coming. No web imports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from sqlmodel import Session, select

from portal.models import Consent, Customer, utcnow
from portal.numbers import is_digits

CHANNELS = ("email",)  # SMS marketing needs no link: it is sent only with consent (portal.notify.rules)
PURPOSE = "marketing"
SOURCE = "unsubscribe link"
PATH = "/unsubscribe"
MAC_BYTES = 24  # 192 bits


def _mac(secret_key: str, customer_id: int, channel: str) -> str:
    digest = hmac.new(secret_key.encode(), f"unsubscribe:{customer_id}:{channel}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode("ascii")


def make_token(secret_key: str, customer_id: int, channel: str = "email") -> str:
    """`<customer id>.<channel>.<mac>`: URL-safe as it is."""
    return f"{customer_id}.{channel}.{_mac(secret_key, customer_id, channel)}"


def read_token(secret_key: str, token: str) -> tuple[int, str] | None:
    """(customer id, channel) of a genuine token; None for anything else."""
    parts = token.split(".") if isinstance(token, str) and len(token) <= 80 else []
    if len(parts) != 3 or not is_digits(parts[0]) or parts[1] not in CHANNELS:
        return None
    customer_id, channel = int(parts[0]), parts[1]
    if not hmac.compare_digest(_mac(secret_key, customer_id, channel).encode(), parts[2].encode("ascii", "replace")):
        return None
    return customer_id, channel


def unsubscribe_url(base_url: str, secret_key: str, customer_id: int, channel: str = "email") -> str:
    return f"{base_url.rstrip('/')}{PATH}/{make_token(secret_key, customer_id, channel)}"


def customer_of(session: Session, secret_key: str, token: str) -> tuple[Customer, str] | None:
    """The customer and channel a token is for, or None (forged, malformed, or the customer is gone)."""
    found = read_token(secret_key, token)
    if found is None:
        return None
    customer = session.get(Customer, found[0])
    return (customer, found[1]) if customer is not None else None


def withdrawn(session: Session, customer: Customer, channel: str) -> bool:
    """True when the customer's latest marketing decision on `channel` is "no"."""
    latest = session.exec(
        select(Consent.granted).where(Consent.customer_id == customer.id, Consent.channel == channel,
                                      Consent.purpose == PURPOSE).order_by(Consent.at.desc(), Consent.id.desc())
    ).first()
    return latest is False


def withdraw(session: Session, customer: Customer, channel: str) -> bool:
    """Record that the customer no longer wants marketing on `channel`. True if that is news; a repeated
    click (mail clients may POST twice) adds nothing once the latest decision already says no."""
    if withdrawn(session, customer, channel):
        return False
    session.add(Consent(customer_id=customer.id, channel=channel, purpose=PURPOSE, granted=False, at=utcnow(),
                        source=SOURCE))
    return True
