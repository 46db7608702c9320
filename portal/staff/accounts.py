"""Staff accounts: argon2 password hashes, roles, authentication and the audit log."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import AuditEntry, StaffUser, utcnow

log = logging.getLogger("portal.staff")
ROLES = ("admin", "warehouse", "support")
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


class AccountError(ValueError):
    """A staff account request that cannot be done; `fields` maps form fields to messages."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class StaffPrincipal:
    id: int
    email: str
    name: str
    role: str
    language: str = "en"  # back-office language: en | sv


def principal(user: StaffUser) -> StaffPrincipal:
    return StaffPrincipal(user.id, user.email, user.name, user.role, user.language or "en")


def validate_account(email: str, name: str, role: str, password: str | None) -> dict[str, str]:
    errors = {}
    if not _EMAIL.match(email) or len(email) > 254:
        errors["email"] = staff_text("Enter a valid e-mail address.")
    if not name.strip() or len(name) > 120:
        errors["name"] = staff_text("Enter a name (at most 120 characters).")
    if role not in ROLES:
        errors["role"] = staff_text("Role must be one of: %(roles)s.", roles=", ".join(ROLES))
    if password is not None and len(password) < MIN_PASSWORD:
        errors["password"] = staff_text("Use at least %(limit)s characters.", limit=MIN_PASSWORD)
    return errors


def create_staff(session: Session, email: str, name: str, role: str, password: str, actor: str = "cli") -> StaffUser:
    email = email.strip().lower()
    errors = validate_account(email, name, role, password)
    if not errors and session.exec(select(StaffUser).where(StaffUser.email == email)).first():
        errors["email"] = staff_text("A staff user with this e-mail already exists.")
    if errors:
        raise AccountError(errors)
    user = StaffUser(email=email, name=name.strip(), role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    audit(session, actor, "staff.created", f"staff:{user.id}", {}, {"email": email, "role": role})
    return user


def set_password(session: Session, user: StaffUser, password: str, actor: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError({"password": staff_text("Use at least %(limit)s characters.", limit=MIN_PASSWORD)})
    user.password_hash = _hasher.hash(password)
    session.add(user)
    audit(session, actor, "staff.password_changed", f"staff:{user.id}", {}, {})


def authenticate(session: Session, email: str, password: str, client_ip: str = "") -> StaffUser | None:
    """The active user for these credentials; every failure is logged and audited, timing kept alike."""
    email = email.strip().lower()
    user = session.exec(select(StaffUser).where(StaffUser.email == email)).first() if len(email) <= 254 else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        log.warning("failed staff login for %r from %s", email, client_ip)
        audit(session, email or "(empty)", "staff.login_failed", "", {}, {}, client_ip)
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.add(user)
    audit(session, user.email, "staff.login", f"staff:{user.id}", {}, {}, client_ip)
    return user


def audit(session: Session, actor: str, action: str, target: str, before: dict, after: dict, client_ip: str = "") -> None:
    session.add(AuditEntry(actor=actor[:254], action=action, target=target, before=before, after=after, client_ip=client_ip))
