"""Shared back-office helpers: load a return, optimistic version checks, audited timeline events."""

from __future__ import annotations

from litestar.exceptions import ClientException, NotFoundException
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import Return, ReturnEvent
from portal.returns import service
from portal.returns.identifiers import normalise_rma
from portal.staff.accounts import StaffPrincipal


class VersionConflict(ClientException):
    status_code = 409


def return_by_rma(db: Session, rma: str) -> Return:
    ret = db.exec(select(Return).where(Return.rma == normalise_rma(rma))).first()
    if ret is None:
        raise NotFoundException(detail=staff_text("No return with RMA %(rma)s.", rma=rma))
    return ret


def check_version(ret: Return, submitted: str | int | None) -> None:
    """Optimistic concurrency: the form carries the version it was rendered from."""
    if str(submitted) != str(ret.version):
        raise VersionConflict(detail=staff_text(
            "Someone else changed return %(rma)s after you opened it. Reload the page to see their changes.", rma=ret.rma
        ))


def bump_version(db: Session, ret: Return, expected: int) -> None:
    """Compare-and-set on the version column so two concurrent writers cannot both win."""
    import sqlalchemy as sa

    result = db.exec(
        sa.update(Return).where(Return.id == ret.id, Return.version == expected).values(version=expected + 1)
    )
    if result.rowcount != 1:
        raise VersionConflict(detail=staff_text("Someone else changed return %(rma)s at the same time. Reload and try again.",
                                         rma=ret.rma))
    ret.version = expected + 1


def staff_event(db: Session, ret: Return, staff: StaffPrincipal, type_: str, before: dict | None = None,
                after: dict | None = None, **extra) -> ReturnEvent:
    """A timeline entry that doubles as the audit log: who, what, when, before and after."""
    data = {"staff_id": staff.id, "role": staff.role, "before": before or {}, "after": after or {}, **extra}
    return service.record_event(db, ret, type_, staff.email, data)
