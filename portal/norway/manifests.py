"""Adapter from stored returns to customs manifests and evidence documents.

Each Norwegian return line was matched to its export goods items at registration
(portal.norway.customs_match -> ReturnLineCustoms). Here those stored verdicts become
customs.model.LineAssessment values again, so the pure library does the rest:
customs.manifest.manifest_lines_for (one line per goods item), build_manifest (rates,
totals per CN code) and customs.documents (CSV, JSON, PDF).

Everything is read in a handful of bulk queries, whatever the number of returns.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from customs import documents as cdocs
from customs import model as cm
from customs.eligibility import DECLARATION
from customs.manifest import DEFAULT_DECLARED_CURRENCY, build_manifest, manifest_lines_for
from customs.rates import RateTable
from portal.models import ExportDeclaration, ExportLine, Order, OrderLine, Return, ReturnLine, ReturnLineCustoms
from portal.norway import rates as rate_store
from portal.norway.customs_match import to_customs_declaration
from portal.returns import service

DECLARED_CURRENCY = DEFAULT_DECLARED_CURRENCY  # the importer (original exporter) declares in SEK
NOT_MATCHED = "This line was never matched to an export declaration; declare it without relief or match it first."


@dataclass(frozen=True)
class ReturnCustoms:
    """One return's lines as the customs library sees them, and the declarations they point at."""

    return_id: int
    rma: str
    order_number: str
    assessments: tuple[cm.LineAssessment, ...]
    declarations: tuple[cm.ExportDeclaration, ...]


def _rows(session: Session, statement) -> list:
    """Plain rows through the session's connection: no ORM row processing for column-only selects."""
    session.flush()
    return session.connection().execute(statement).all()


def load_return_customs(session: Session, return_ids: Sequence[int]) -> list[ReturnCustoms]:
    """Assessments per return, in the order of `return_ids`, from four bulk queries.

    Columns are read as plain rows, not ORM objects, which keeps 10,000 lines around a second.
    """
    ids = list(dict.fromkeys(return_ids))
    if not ids:
        return []
    heads = {row.id: row for row in _rows(session, (
        select(Return.id, Return.rma, Order.number, Order.currency)
        .join(Order, Order.id == Return.order_id)
        .where(Return.id.in_(ids))
    ))}
    rows = _rows(session, (
        select(
            ReturnLine.return_id, ReturnLine.quantity, ReturnLine.reason,
            OrderLine.id.label("order_line_id"), OrderLine.hs_code, OrderLine.name, OrderLine.unit_price_minor,
            ReturnLineCustoms.id.label("customs_id"), ReturnLineCustoms.declaration_id, ReturnLineCustoms.mrn,
            ReturnLineCustoms.allocations, ReturnLineCustoms.relief, ReturnLineCustoms.procedure,
            ReturnLineCustoms.needs_attention, ReturnLineCustoms.results,
        )
        .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
        .outerjoin(ReturnLineCustoms, ReturnLineCustoms.return_line_id == ReturnLine.id)
        .where(ReturnLine.return_id.in_(ids))
        .order_by(ReturnLine.return_id, OrderLine.line_no, ReturnLine.id)
    ))
    declarations = _declarations(session, {row.declaration_id for row in rows if row.declaration_id})

    results_cache: dict[tuple, cm.RuleResult] = {}
    by_return: dict[int, list[cm.LineAssessment]] = defaultdict(list)
    used: dict[int, dict[int, cm.ExportDeclaration]] = defaultdict(dict)
    exported_by_ref: dict[tuple[int, str], tuple[cm.ExportLine, ...]] = {}
    for declaration_id, declaration in declarations.items():
        for line in declaration.lines:
            key = (declaration_id, line.order_line_ref)
            exported_by_ref[key] = (*exported_by_ref.get(key, ()), line)
    for row in rows:
        head = heads[row.return_id]
        declaration = declarations.get(row.declaration_id) if row.declaration_id else None
        exported = exported_by_ref.get((row.declaration_id, str(row.order_line_id)), ()) if declaration else ()
        by_return[row.return_id].append(_assessment(head.rma, head.currency, row, declaration, exported, results_cache))
        if declaration is not None:
            used[row.return_id][row.declaration_id] = declaration
    return [
        ReturnCustoms(rid, heads[rid].rma, heads[rid].number, tuple(by_return.get(rid, ())),
                      tuple(used[rid][d] for d in sorted(used[rid])))
        for rid in ids
        if rid in heads
    ]


def _declarations(session: Session, ids: set[int]) -> dict[int, cm.ExportDeclaration]:
    """The export declarations as customs dataclasses (rows carry the attribute names the adapter reads)."""
    if not ids:
        return {}
    lines: dict[int, list] = defaultdict(list)
    for line in _rows(session, (
        select(ExportLine.declaration_id, ExportLine.goods_item_number, ExportLine.order_line_id, ExportLine.cn_code,
               ExportLine.description, ExportLine.quantity, ExportLine.unit_value_minor, ExportLine.origin_country,
               ExportLine.net_weight_grams, ExportLine.agricultural)
        .where(ExportLine.declaration_id.in_(ids)).order_by(ExportLine.id)
    )):
        lines[line.declaration_id].append(line)
    found = {}
    for row in _rows(session, (
        select(ExportDeclaration.id, ExportDeclaration.mrn, ExportDeclaration.export_date, ExportDeclaration.exporter_eori,
               ExportDeclaration.invoice_number, ExportDeclaration.invoice_date, ExportDeclaration.currency,
               ExportDeclaration.entry_route, ExportDeclaration.voec_number)
        .where(ExportDeclaration.id.in_(ids))
    )):
        try:
            found[row.id] = to_customs_declaration(row, lines[row.id])
        except ValueError:
            continue  # unusable data from the shop: the stored verdict already flags the line
    return found


def _assessment(rma: str, currency: str, row, declaration: cm.ExportDeclaration | None,
                exported: tuple[cm.ExportLine, ...], results_cache: dict[tuple, cm.RuleResult]) -> cm.LineAssessment:
    """The stored verdict as a LineAssessment; the claim is built as customs_match builds it.

    `exported` are the declaration's goods items for this order line (declaration.lines_for_order_line).
    """
    ref = str(row.order_line_id)
    claim = cm.ReturnLineClaim(
        rma=rma,
        order_line_ref=ref,
        cn_code=row.hs_code or (exported[0].cn_code if exported else ""),
        description=row.name,
        quantity=row.quantity,
        unit_value_minor=row.unit_price_minor,
        currency=currency,
        reason=row.reason,
    )
    if row.customs_id is None:
        return cm.LineAssessment(
            claim=claim, matched_export_line=exported[0] if exported else None, mrn=None, relief=None,
            procedure=cm.REIMPORT_PROCEDURE, needs_attention=True,
            results=(cm.RuleResult(False, DECLARATION, NOT_MATCHED),), allocation=None,
        )
    by_number = {line.goods_item_number: line for line in exported} if declaration is not None else {}
    parts = tuple(
        cm.AllocatedQuantity(row.mrn, by_number[int(part["goods_item_number"])], int(part["quantity"]))
        for part in row.allocations
        if row.mrn and int(part["goods_item_number"]) in by_number
    )
    allocated = sum(part.quantity for part in parts)
    allocation = cm.Allocation(ref, parts, max(0, claim.quantity - allocated)) if declaration is not None else None
    results = []
    for stored in row.results:
        key = (bool(stored.get("ok")), str(stored.get("code", "")), str(stored.get("reason", "")))
        result = results_cache.get(key)
        if result is None:
            result = results_cache[key] = cm.RuleResult(*key)
        results.append(result)
    return cm.LineAssessment(
        claim=claim,
        matched_export_line=parts[0].export_line if parts else (exported[0] if exported else None),
        mrn=row.mrn,
        relief=row.relief if row.relief == cm.RETURNED_GOODS_RELIEF else None,
        procedure=row.procedure or cm.REIMPORT_PROCEDURE,
        needs_attention=row.needs_attention,
        results=tuple(results),
        allocation=allocation,
    )


def manifest_input_lines(returns: Sequence[ReturnCustoms]) -> list[cm.ManifestInputLine]:
    """One manifest line per goods item each returned quantity goes back against."""
    return [line for item in returns for assessment in item.assessments for line in manifest_lines_for(assessment)]


def build_for_returns(session: Session, reference: str, return_ids: Sequence[int], now: datetime,
                      rate_day=None, table: RateTable | None = None) -> cm.Manifest:
    """The manifest of these returns converted with the stored rates of `rate_day` (default: now's UTC date).

    Raises customs.rates.RateError when a currency has no rate on or before that day.
    """
    lines = manifest_input_lines(load_return_customs(session, return_ids))
    if table is None:
        currencies = {line.currency for line in lines} | {DECLARED_CURRENCY}
        table = rate_store.rate_table_for(session, rate_day or now.date(), currencies)
    eori = service.get_policy(session).exporter_eori or None
    return build_manifest(reference, lines, table, declared_currency=DECLARED_CURRENCY, importer_eori=eori,
                          generated_at=now)


# --- Documents -----------------------------------------------------------------------------


def manifest_csv(manifest: cm.Manifest) -> bytes:
    return cdocs.manifest_to_csv(manifest).encode("utf-8")


def manifest_json(manifest: cm.Manifest) -> bytes:
    return cdocs.manifest_to_json(manifest).encode("utf-8")


def manifest_pdf(manifest: cm.Manifest, merchant_name: str, timezone: str) -> bytes:
    return cdocs.manifest_pdf(manifest, merchant_name=merchant_name, timezone=timezone)


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def evidence_fingerprint(item: ReturnCustoms, merchant_name: str) -> str:
    """Changes whenever anything printed on the evidence page changes (not the render time)."""
    return fingerprint(merchant_name, repr(item.assessments), repr(item.declarations))


def evidence_pdf(item: ReturnCustoms, merchant_name: str, now: datetime) -> bytes:
    """customs.documents.evidence_pdf for one return; a return without lines has no evidence."""
    if not item.assessments:
        raise ValueError(f"Return {item.rma} has no lines to give evidence for.")
    return cdocs.evidence_pdf(item.assessments, item.declarations, merchant_name=merchant_name, generated_at=now)
