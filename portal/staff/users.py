"""Managing staff users (admin only): create, change role, deactivate/reactivate, reset password.

Every change writes an AuditEntry with before/after. An admin cannot lock themselves out: they can
neither deactivate nor demote their own account (so there is always at least one active admin).
Errors are AccountError with messages keyed by form field. No web imports here.
"""

from __future__ import annotations

from sqlmodel import Session, select

from portal.i18n import STAFF_LANGUAGES, staff_text
from portal.models import AuditEntry, StaffUser
from portal.staff import accounts
from portal.staff.accounts import AccountError, StaffPrincipal


class UserNotFound(LookupError):
    pass


def list_users(db: Session) -> list[StaffUser]:
    return list(db.exec(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.email)))


def get_user(db: Session, user_id: int) -> StaffUser:
    user = db.get(StaffUser, user_id)
    if user is None:
        raise UserNotFound(staff_text("No staff user with id %(id)s.", id=user_id))
    return user


def _target(user: StaffUser) -> str:
    return f"staff:{user.id}"


def create_user(db: Session, actor: StaffPrincipal, email: str, name: str, role: str, password: str) -> StaffUser:
    return accounts.create_staff(db, email, name, role, password, actor=actor.email)


def change_role(db: Session, actor: StaffPrincipal, user_id: int, role: str, client_ip: str = "") -> StaffUser:
    user = get_user(db, user_id)
    if role not in accounts.ROLES:
        raise AccountError({"role": staff_text("Role must be one of: %(roles)s.", roles=", ".join(accounts.ROLES))})
    if user.id == actor.id and role != user.role:
        raise AccountError({"role": staff_text("You cannot change your own role. Ask another admin.")})
    if role == user.role:
        return user
    before = {"role": user.role}
    user.role = role
    db.add(user)
    accounts.audit(db, actor.email, "staff.role_changed", _target(user), before, {"role": role}, client_ip)
    db.flush()
    return user


def set_active(db: Session, actor: StaffPrincipal, user_id: int, active: bool, client_ip: str = "") -> StaffUser:
    """Deactivating takes effect at the user's next request: the guard reloads the user every time."""
    user = get_user(db, user_id)
    if user.id == actor.id and not active:
        raise AccountError({"active": staff_text("You cannot deactivate your own account.")})
    if user.active == active:
        return user
    before = {"active": user.active}
    user.active = active
    db.add(user)
    accounts.audit(db, actor.email, "staff.activated" if active else "staff.deactivated", _target(user),
                   before, {"active": active}, client_ip)
    db.flush()
    return user


def reset_password(db: Session, actor: StaffPrincipal, user_id: int, password: str) -> StaffUser:
    user = get_user(db, user_id)
    if len(password) < accounts.MIN_PASSWORD:
        raise AccountError({"password": staff_text("Use at least %(limit)s characters.", limit=accounts.MIN_PASSWORD)})
    if len(password) > 1000:
        raise AccountError({"password": staff_text("At most %(limit)s characters.", limit=1000)})
    # Hashes it and writes the audit entry "staff.password_changed" (no hash in before/after, on purpose).
    accounts.set_password(db, user, password, actor.email)
    db.flush()
    return user


def set_language(db: Session, actor: StaffPrincipal, language: str, client_ip: str = "") -> StaffUser:
    """Every staff user chooses their own back-office language (English or Swedish)."""
    if language not in STAFF_LANGUAGES:
        raise AccountError({"language": staff_text("Choose English or Swedish.")})
    user = get_user(db, actor.id)
    if user.language == language:
        return user
    before = {"language": user.language}
    user.language = language
    db.add(user)
    accounts.audit(db, actor.email, "staff.language_changed", _target(user), before, {"language": language}, client_ip)
    db.flush()
    return user


def audit_trail(db: Session, user_id: int, limit: int = 20) -> list[AuditEntry]:
    """The latest audit entries about this user (changes by admins, logins)."""
    return list(db.exec(
        select(AuditEntry).where(AuditEntry.target == f"staff:{user_id}").order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    ))
