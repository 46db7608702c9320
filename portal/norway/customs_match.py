"""Match each Norwegian return line to its export goods item(s) when the return is registered.

A thin adapter over `customs.eligibility.assess_return_lines`: the order's export
declarations become `customs.model` dataclasses (order_line_ref = str(order_line_id)),
quantities that other still-active returns of the order already put against each
(MRN, goods item number) are read back from their ReturnLineCustoms rows, and the outcome
is stored per return line. A failing rule never refuses the return nor changes its header
status: the line is marked needs_attention and a staff-only "customs.needs_attention"
event records the reasons.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlmodel import Session, select

from customs import model as cm
from customs.eligibility import DECLARATION, RELIEF_CONDITIONS, SAME_STATE, assess_return_lines, check_same_state
from portal.models import (
    ExportDeclaration,
    ExportLine,
    Order,
    OrderLine,
    Return,
    ReturnLine,
    ReturnLineCustoms,
    utcnow,
)
from portal.returns import service

NEEDS_ATTENTION_EVENT = "customs.needs_attention"


def match_return(session: Session, ret: Return, today: date) -> list[ReturnLineCustoms]:
    """Assess every line of `ret` against the order's exports and store one row per line.

    Running it again for the same return updates the rows in place (e.g. once a missing
    declaration has arrived). Returns the rows in order-line order.
    """
    session.flush()  # return lines need their ids
    order = session.get(Order, ret.order_id)
    lines = service.return_lines_with_order_lines(session, ret.id)
    declarations, unusable = _declarations_by_ref(session, order.id, [str(ol.id) for _, ol in lines])
    claims = [_claim(ret, order, return_line, order_line, declarations) for return_line, order_line in lines]
    assessments, _ = assess_return_lines(
        claims,
        {ref: adapted for ref, (_, adapted) in declarations.items()},
        already_returned(session, order.id, ret.id),
        service.get_policy(session).exporter_eori,
        today,
    )
    rows = [
        _store(session, return_line, assessment, declarations, unusable)
        for (return_line, _), assessment in zip(lines, assessments)
    ]
    _record_attention(session, ret, lines, rows)
    return rows


# --- Reading the order's exports ------------------------------------------------------------


def _declarations_by_ref(
    session: Session, order_id: int, refs: list[str]
) -> tuple[dict[str, tuple[ExportDeclaration, cm.ExportDeclaration]], dict[str, str]]:
    """For each order line ref: (row, dataclass) of the declaration it left on, and the unusable ones.

    An order line on several declarations uses the first (lowest id). One on none maps to
    the order's first declaration, so the export-line rule names the MRN that lacks it.
    A declaration the library refuses (bad data from the shop) is left out; `unusable`
    says why, for the refs no usable declaration carries.
    """
    usable: list[tuple[ExportDeclaration, cm.ExportDeclaration]] = []
    unusable: dict[str, str] = {}
    for row in session.exec(
        select(ExportDeclaration).where(ExportDeclaration.order_id == order_id).order_by(ExportDeclaration.id)
    ):
        export_lines = list(session.exec(select(ExportLine).where(ExportLine.declaration_id == row.id)))
        try:
            usable.append((row, to_customs_declaration(row, export_lines)))
        except ValueError as error:
            for line in export_lines:
                unusable.setdefault(str(line.order_line_id), f"Export declaration {row.mrn} is unusable: {error}")
    carried = {line.order_line_ref for _, adapted in usable for line in adapted.lines}
    found = {ref: pair for ref in refs if (pair := _carrier(ref, usable)) is not None}
    return found, {ref: why for ref, why in unusable.items() if ref in refs and ref not in carried}


def _carrier(
    ref: str, usable: list[tuple[ExportDeclaration, cm.ExportDeclaration]]
) -> tuple[ExportDeclaration, cm.ExportDeclaration] | None:
    carrying = [pair for pair in usable if pair[1].lines_for_order_line(ref)]
    return (carrying or usable or [None])[0]


def to_customs_declaration(row: ExportDeclaration, lines: list[ExportLine]) -> cm.ExportDeclaration:
    return cm.ExportDeclaration(
        mrn=row.mrn,
        export_date=row.export_date,
        exporter_eori=row.exporter_eori,
        invoice_number=row.invoice_number,
        invoice_date=row.invoice_date,
        currency=row.currency,
        entry_route=row.entry_route,
        voec_number=row.voec_number,
        lines=tuple(to_customs_export_line(line) for line in lines),
    )


def to_customs_export_line(line: ExportLine) -> cm.ExportLine:
    return cm.ExportLine(
        goods_item_number=line.goods_item_number,
        order_line_ref=str(line.order_line_id),
        cn_code=line.cn_code,
        description=line.description,
        quantity=line.quantity,
        unit_value_minor=line.unit_value_minor,
        origin_country=line.origin_country,
        net_weight_grams=line.net_weight_grams,
        agricultural=line.agricultural,
    )


def already_returned(session: Session, order_id: int, except_return_id: int) -> dict[cm.GoodsItemKey, int]:
    """Units other still-active returns of the order put against each (MRN, goods item number)."""
    rows = session.exec(
        select(ReturnLineCustoms.mrn, ReturnLineCustoms.allocations)
        .join(ReturnLine, ReturnLine.id == ReturnLineCustoms.return_line_id)
        .join(Return, Return.id == ReturnLine.return_id)
        .where(
            Return.order_id == order_id,
            Return.id != except_return_id,
            Return.status.not_in(service.INACTIVE_STATUSES),
            ReturnLineCustoms.mrn.is_not(None),
        )
    ).all()
    totals: dict[cm.GoodsItemKey, int] = defaultdict(int)
    for mrn, allocations in rows:
        for part in allocations:
            totals[(mrn, int(part["goods_item_number"]))] += int(part["quantity"])
    return dict(totals)


# --- One return line ------------------------------------------------------------------------


def _claim(
    ret: Return,
    order: Order,
    return_line: ReturnLine,
    order_line: OrderLine,
    declarations: dict[str, tuple[ExportDeclaration, cm.ExportDeclaration]],
) -> cm.ReturnLineClaim:
    """What is coming back. Without an HS code on the order line, the exported CN code stands."""
    ref = str(order_line.id)
    exported = declarations[ref][1].lines_for_order_line(ref) if ref in declarations else ()
    return cm.ReturnLineClaim(
        rma=ret.rma,
        order_line_ref=ref,
        cn_code=order_line.hs_code or (exported[0].cn_code if exported else ""),
        description=order_line.name,
        quantity=return_line.quantity,
        unit_value_minor=order_line.unit_price_minor,
        currency=order.currency,
        reason=return_line.reason,
    )


def _store(
    session: Session,
    return_line: ReturnLine,
    assessment: cm.LineAssessment,
    declarations: dict[str, tuple[ExportDeclaration, cm.ExportDeclaration]],
    unusable: dict[str, str],
) -> ReturnLineCustoms:
    ref = assessment.claim.order_line_ref
    row = session.exec(
        select(ReturnLineCustoms).where(ReturnLineCustoms.return_line_id == return_line.id)
    ).first() or ReturnLineCustoms(return_line_id=return_line.id)
    row.declaration_id = declarations[ref][0].id if ref in declarations else None
    row.mrn = assessment.mrn
    row.allocations = allocations_of(assessment)
    row.relief = assessment.relief
    row.procedure = assessment.procedure
    row.needs_attention = assessment.needs_attention or ref in unusable
    row.results = results_of(assessment, unusable.get(ref))
    row.assessed_at = utcnow()
    session.add(row)
    return row


def allocations_of(assessment: cm.LineAssessment) -> list[dict]:
    if assessment.allocation is None:
        return []
    return [
        {"goods_item_number": part.export_line.goods_item_number, "quantity": part.quantity}
        for part in assessment.allocation.parts
    ]


def results_of(assessment: cm.LineAssessment, unusable_reason: str | None = None) -> list[dict]:
    results = [{"ok": r.ok, "code": r.code, "reason": r.reason} for r in assessment.results]
    if unusable_reason:
        results.insert(0, {"ok": False, "code": DECLARATION, "reason": unusable_reason})
    return results


def _record_attention(
    session: Session, ret: Return, lines: list[tuple[ReturnLine, OrderLine]], rows: list[ReturnLineCustoms]
) -> None:
    """One staff-only timeline event listing, per flagged line, the rules that failed."""
    flagged = [
        {
            "return_line_id": row.return_line_id,
            "order_line_id": order_line.id,
            "sku": order_line.sku,
            "reasons": [r["reason"] for r in row.results if not r["ok"]],
        }
        for row, (_, order_line) in zip(rows, lines)
        if row.needs_attention
    ]
    if flagged:
        service.record_event(session, ret, NEEDS_ATTENTION_EVENT, "system", {"lines": flagged})


def record_inspected_state(session: Session, return_line_id: int, same_state: bool) -> ReturnLineCustoms | None:
    """After inspection: goods not in their exported state lose relief F01 ("duty may apply"), and regain it
    when a re-inspection finds them fine and every other rule still holds."""
    row = session.exec(select(ReturnLineCustoms).where(ReturnLineCustoms.return_line_id == return_line_id)).first()
    if row is None:
        return None
    verdict = check_same_state(same_state)
    results = [r for r in row.results if r.get("code") != SAME_STATE]
    results.append({"ok": verdict.ok, "code": verdict.code, "reason": verdict.reason})
    others_ok = all(r.get("ok") for r in results if r.get("code") in RELIEF_CONDITIONS)
    row.results = results
    row.relief = cm.RETURNED_GOODS_RELIEF if others_ok and row.allocations else None
    row.assessed_at = utcnow()
    session.add(row)
    return row
