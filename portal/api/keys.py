"""API keys: created by admins, shown once, stored as prefix + SHA-256 of the secret, scoped, revocable.

Key format: ``rp_<prefix 8 chars>_<secret 32 url-safe chars>``. The prefix finds the row; the secret's
SHA-256 is compared in constant time. No web imports here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime

from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import ApiKey, utcnow
from portal.staff.accounts import audit

SCOPES = ("orders:write", "returns:read", "returns:write")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


class ApiKeyError(ValueError):
    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(fields.values()))
        self.fields = fields


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    """("prefix", "secret") of a well-formed key; the secret may itself contain "_"."""
    if not key.startswith("rp_") or len(key) != 3 + 8 + 1 + 32 or key[11] != "_":
        return None
    return key[3:11], key[12:]


def create_key(session: Session, name: str, scopes: list[str], actor: str, client_ip: str = "") -> tuple[ApiKey, str]:
    """The new key row and the full key (shown once, never stored)."""
    name = name.strip()
    errors = {}
    if not name or len(name) > 120:
        errors["name"] = staff_text("Give the key a name of 1 to 120 characters (e.g. the system that uses it).")
    chosen = sorted(set(scopes))
    if not chosen or any(s not in SCOPES for s in chosen):
        errors["scopes"] = staff_text("Choose at least one scope from: %(scopes)s.", scopes=", ".join(SCOPES))
    if errors:
        raise ApiKeyError(errors)
    for _ in range(10):
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
        if session.exec(select(ApiKey.id).where(ApiKey.prefix == prefix)).first() is None:
            break
    secret = secrets.token_urlsafe(24)  # 192 bits, 32 characters
    key = ApiKey(name=name, prefix=prefix, key_hash=_hash(secret), scopes=chosen, created_by=actor)
    session.add(key)
    session.flush()
    audit(session, actor, "api_key.create", f"api_key:{key.id}", {}, {"name": name, "prefix": prefix, "scopes": chosen}, client_ip)
    return key, f"rp_{prefix}_{secret}"


def verify(session: Session, presented: str, now: datetime | None = None) -> ApiKey | None:
    """The active key matching `presented` (and its last_used_at updated), else None."""
    split = _split(presented.strip()) if presented and len(presented) <= 200 else None
    if split is None:
        hmac.compare_digest(_DUMMY_HASH, _DUMMY_HASH)
        return None
    prefix, secret = split
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    ok = hmac.compare_digest(_hash(secret), key.key_hash if key else _DUMMY_HASH)
    if key is None or not ok or key.revoked_at is not None:
        return None
    key.last_used_at = now or utcnow()
    session.add(key)
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(ApiKey.id.desc())))


def revoke(session: Session, key_id: int, actor: str, client_ip: str = "") -> ApiKey | None:
    key = session.get(ApiKey, key_id)
    if key is None:
        return None
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        audit(session, actor, "api_key.revoke", f"api_key:{key.id}", {"revoked": False}, {"revoked": True}, client_ip)
    return key
