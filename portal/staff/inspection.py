"""Inspecting a received return line by line: quantity received, condition, accept/reject, disposition.

Pure validation (`validate`) turns the submitted form into per-line decisions or per-field messages;
`apply_inspection` writes them with a compare-and-set on Return.version, records one audited
"return.inspected" timeline event, and moves the return to "inspected" once every line is fully
received and decided. No web imports here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.norway.customs_match import record_inspected_state
from portal.models import Order, OrderLine, Refund, Return, ReturnLine
from portal.outbox.service import enqueue_webhook_event
from portal.returns import service
from portal.returns.lifecycle import can_advance
from portal.staff.accounts import StaffPrincipal
from portal.staff.common import bump_version, check_version, staff_event
from portal.staff.vocabulary import term
from portal.numbers import is_digits

CONDITIONS = ("as_new", "opened", "damaged", "wrong_item", "missing")
CONDITION_LABELS = {
    "as_new": staff_text("As new"), "opened": staff_text("Opened / tried on"), "damaged": staff_text("Damaged"),
    "wrong_item": staff_text("Wrong item"), "missing": staff_text("Missing"),
}
ACCEPTANCES = ("pending", "accepted", "rejected")
ACCEPTANCE_LABELS = {"pending": staff_text("Not decided yet"), "accepted": staff_text("Accepted"),
                     "rejected": staff_text("Rejected")}
DISPOSITIONS = ("restock", "discard", "repair")
DISPOSITION_LABELS = {"restock": staff_text("Restock"), "discard": staff_text("Discard"), "repair": staff_text("Repair")}
# Returned-goods relief (F01) needs the goods back in the state they were exported in.
RELIEF_SAFE_CONDITIONS = frozenset({"as_new", "opened"})
INSPECTABLE = frozenset({"arrived", "inspected", "needs_attention"})
MAX_REASON = 500
F01_NOTE = ("Received in a condition other than as new/opened: returned-goods relief F01 "
            "(same goods, same state) may no longer apply to this line.")


class InspectionRefused(Exception):
    """The return cannot be inspected now (not arrived, already refunded, closed)."""


@dataclass(frozen=True)
class LineDecision:
    line_id: int
    received_quantity: int
    condition: str | None
    acceptance: str
    rejection_reason: str
    disposition: str | None


def field_names(line_id: int) -> dict[str, str]:
    return {k: f"{k}_{line_id}" for k in ("received", "condition", "acceptance", "rejection_reason", "disposition")}


def form_values(lines: list[ReturnLine]) -> dict[str, str]:
    """The stored inspection as form values (what the page shows before anyone types)."""
    values: dict[str, str] = {}
    for line in lines:
        names = field_names(line.id)
        inspected = line.condition is not None or line.acceptance != "pending" or line.received_quantity > 0
        values[names["received"]] = str(line.received_quantity) if inspected else ""  # count, do not assume
        values[names["condition"]] = line.condition or ""
        values[names["acceptance"]] = line.acceptance or "pending"
        values[names["rejection_reason"]] = line.rejection_reason or ""
        values[names["disposition"]] = line.disposition or ""
    return values


def validate(lines: list[ReturnLine], form: Mapping[str, str]) -> tuple[list[LineDecision], dict[str, str]]:
    """Per-line decisions, or messages keyed by the form field they belong to."""
    decisions: list[LineDecision] = []
    errors: dict[str, str] = {}
    for line in lines:
        names = field_names(line.id)
        raw_qty = form.get(names["received"], "").strip()
        received = None
        if not raw_qty:
            errors[names["received"]] = staff_text("Enter how many units arrived (0 if none).")
        elif not is_digits(raw_qty):
            errors[names["received"]] = staff_text("Enter a whole number, 0 or more.")
        elif int(raw_qty) > line.quantity:
            errors[names["received"]] = staff_text("At most %(quantity)s: the customer returned %(quantity)s. "
                                                   "Extra units belong to another return.", quantity=line.quantity)
        else:
            received = int(raw_qty)

        condition = form.get(names["condition"], "").strip() or None
        if condition is not None and condition not in CONDITIONS:
            errors[names["condition"]] = staff_text("Choose a condition from the list.")
        elif condition is None and received:
            errors[names["condition"]] = staff_text("Choose the condition of what arrived.")
        elif condition is None and received == 0:
            condition = "missing"

        acceptance = form.get(names["acceptance"], "").strip() or "pending"
        if acceptance not in ACCEPTANCES:
            errors[names["acceptance"]] = staff_text("Choose accept or reject.")
        elif acceptance == "accepted" and received == 0:
            errors[names["acceptance"]] = staff_text("Nothing of this line arrived, so there is nothing to accept.")

        reason = form.get(names["rejection_reason"], "").strip()
        if acceptance == "rejected" and not reason:
            errors[names["rejection_reason"]] = staff_text("Say why this line is rejected (the customer will ask).")
        elif len(reason) > MAX_REASON:
            errors[names["rejection_reason"]] = staff_text("At most %(limit)s characters.", limit=MAX_REASON)

        disposition = form.get(names["disposition"], "").strip() or None
        if disposition is not None and disposition not in DISPOSITIONS:
            errors[names["disposition"]] = staff_text("Choose restock, discard or repair.")
        elif disposition is None and acceptance == "accepted":
            errors[names["disposition"]] = staff_text("Choose what happens to the accepted goods: restock, discard or repair.")

        if received is not None and not any(n in errors for n in names.values()):
            decisions.append(LineDecision(
                line_id=line.id, received_quantity=received, condition=condition, acceptance=acceptance,
                rejection_reason=reason if acceptance == "rejected" else "", disposition=disposition,
            ))
    return decisions, errors


def refusal(db: Session, ret: Return) -> str | None:
    """Why this return cannot be inspected now, or None."""
    if ret.arrived_at is None and ret.status not in INSPECTABLE:
        return staff_text("Return %(rma)s has not arrived yet (status: %(status)s). Scan the parcel at the receiving "
                          "station first.", rma=ret.rma, status=term("status", ret.status))
    if ret.status not in INSPECTABLE:
        return staff_text("Return %(rma)s is %(status)s; its inspection can no longer be changed.", rma=ret.rma,
                          status=term("status", ret.status))
    paid = db.exec(select(Refund.id).where(Refund.return_id == ret.id, Refund.state != "failed")).first()
    if paid is not None:
        return staff_text("A refund was already requested for return %(rma)s; its inspection can no longer be changed.",
                          rma=ret.rma)
    return None


def is_partial(lines: list[ReturnLine]) -> bool:
    return any(l.received_quantity < l.quantity for l in lines)


def is_complete(lines: list[ReturnLine]) -> bool:
    return all(l.received_quantity >= l.quantity and l.acceptance in ("accepted", "rejected") for l in lines)


def _snapshot(line: ReturnLine) -> dict:
    return {"received_quantity": line.received_quantity, "condition": line.condition, "acceptance": line.acceptance,
            "rejection_reason": line.rejection_reason, "disposition": line.disposition}


@dataclass(frozen=True)
class InspectionResult:
    partial: bool
    complete: bool
    status: str
    relief_warnings: list[dict]


def apply_inspection(db: Session, ret: Return, staff: StaffPrincipal, version: str,
                     decisions: list[LineDecision]) -> InspectionResult:
    """Write the decisions if the page was rendered from the current version; raises VersionConflict otherwise."""
    reason = refusal(db, ret)
    if reason:
        raise InspectionRefused(reason)
    check_version(ret, version)
    bump_version(db, ret, int(version))  # compare-and-set: the second of two concurrent submits loses here
    pairs = service.return_lines_with_order_lines(db, ret.id)
    by_id = {line.id: (line, order_line) for line, order_line in pairs}
    before, after, warnings = {}, {}, []
    for decision in decisions:
        line, order_line = by_id[decision.line_id]
        before[str(line.id)] = _snapshot(line)
        for key, value in asdict(decision).items():
            if key != "line_id":
                setattr(line, key, value)
        db.add(line)
        after[str(line.id)] = _snapshot(line)
        if ret.is_norway and line.received_quantity > 0:
            record_inspected_state(db, line.id, same_state=line.condition in RELIEF_SAFE_CONDITIONS)
        if ret.is_norway and line.received_quantity > 0 and line.condition not in RELIEF_SAFE_CONDITIONS:
            warnings.append({"return_line_id": line.id, "sku": order_line.sku, "condition": line.condition,
                             "relief": "F01", "note": F01_NOTE})
    lines = [line for line, _ in pairs]
    partial, complete = is_partial(lines), is_complete(lines)
    extra: dict = {"partial": partial, "complete": complete}
    if partial:
        extra["note"] = "partially received"
    if warnings:
        extra["customs_relief"] = warnings
    if complete and can_advance(ret.status, "inspected"):
        extra.update({"from": ret.status, "to": "inspected"})
        ret.status = "inspected"
    staff_event(db, ret, staff, "return.inspected", before={"lines": before}, after={"lines": after}, **extra)
    db.add(ret)
    if complete:
        order = db.get(Order, ret.order_id)
        enqueue_webhook_event(db, "return.inspected", {
            "rma": ret.rma, "order_number": order.number if order else None, "status": ret.status,
            "lines": [{"sku": ol.sku, "quantity": l.quantity, **_snapshot(l)} for l, ol in pairs],
        }, unique=f"{ret.id}:v{ret.version}", return_id=ret.id)
    db.flush()
    return InspectionResult(partial=partial, complete=complete, status=ret.status, relief_warnings=warnings)


def lines_of(db: Session, ret: Return) -> list[tuple[ReturnLine, OrderLine]]:
    return service.return_lines_with_order_lines(db, ret.id)
