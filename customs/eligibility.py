"""Returned-goods relief rules (procedure 6110 with additional procedure F01).

Each rule is a pure function returning a RuleResult whose `code` names the
rule (the same code whether it passes or not) and whose `reason` is an
English sentence for staff and the customs broker. Failing rules flag the
line for attention; they never refuse the return itself.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from customs.matching import allocate_return, record_returned
from customs.model import (
    REIMPORT_PROCEDURE,
    RETURNED_GOODS_RELIEF,
    Allocation,
    ExportDeclaration,
    ExportLine,
    GoodsItemKey,
    LineAssessment,
    ReturnLineClaim,
    RuleResult,
)
from customs.mrn import normalise_eori, validate_eori, validate_mrn

RELIEF_YEARS = 3
AGRICULTURAL_RELIEF_YEARS = 1

DECLARATION = "declaration"
MRN = "mrn"
EXPORT_LINE = "export_line"
IMPORTER = "importer"
CN_CODE = "cn_code"
QUANTITY = "quantity"
TIME_LIMIT = "time_limit"
SAME_STATE = "same_state"

# Rules whose failure means the goods do not qualify for F01 at all. A
# quantity overrun only affects the units that could not be allocated.
RELIEF_CONDITIONS = frozenset({DECLARATION, MRN, EXPORT_LINE, IMPORTER, CN_CODE, TIME_LIMIT, SAME_STATE})


def add_years(start: date, years: int) -> date:
    """Same calendar date `years` later; 29 February becomes 28 February.

    28 February (not 1 March) is used so a leap-day export never gets a day
    more than the law's "within N years" gives.
    """
    target_year = start.year + years
    if start.month == 2 and start.day == 29 and not calendar.isleap(target_year):
        return date(target_year, 2, 28)
    return start.replace(year=target_year)


def relief_deadline(export_date: date, agricultural: bool = False) -> date:
    """Last day on which goods can come back under returned-goods relief (inclusive)."""
    return add_years(export_date, AGRICULTURAL_RELIEF_YEARS if agricultural else RELIEF_YEARS)


def check_declaration_present(declaration: ExportDeclaration | None, order_line_ref: str) -> RuleResult:
    if declaration is None:
        return RuleResult(
            False,
            DECLARATION,
            f"No export declaration (MRN) is known for order line {order_line_ref}; "
            "ask the shop/ERP for the export MRN before declaring.",
        )
    return RuleResult(True, DECLARATION, f"Export declaration {declaration.mrn} found.")


def check_mrn(mrn: str) -> RuleResult:
    problems = validate_mrn(mrn, expect_export=True)
    if problems:
        return RuleResult(False, MRN, f"MRN {mrn} looks wrong: " + " ".join(problems))
    return RuleResult(True, MRN, f"MRN {mrn} is well-formed and is an export declaration.")


def check_export_line(declaration: ExportDeclaration, order_line_ref: str) -> RuleResult:
    lines = declaration.lines_for_order_line(order_line_ref)
    if not lines:
        return RuleResult(
            False,
            EXPORT_LINE,
            f"Export declaration {declaration.mrn} has no goods item for order line {order_line_ref}.",
        )
    items = ", ".join(str(line.goods_item_number) for line in lines)
    return RuleResult(True, EXPORT_LINE, f"Order line {order_line_ref} left on goods item(s) {items}.")


def check_importer(importer_eori: str, declaration: ExportDeclaration) -> RuleResult:
    """Returned-goods relief is for the person who exported: importer EORI must match."""
    importer = normalise_eori(importer_eori)
    problems = validate_eori(importer)
    if problems:
        return RuleResult(False, IMPORTER, f"Importer EORI {importer_eori!r} is invalid: " + " ".join(problems))
    if importer != declaration.exporter_eori:
        return RuleResult(
            False,
            IMPORTER,
            f"Importer EORI {importer} differs from the exporter {declaration.exporter_eori} "
            f"on {declaration.mrn}; relief needs the original exporter as importer.",
        )
    return RuleResult(True, IMPORTER, f"Importer {importer} is the original exporter.")


def check_cn_code(claim: ReturnLineClaim, export_lines: Iterable[ExportLine]) -> RuleResult:
    mismatched = [line for line in export_lines if line.cn_code != claim.cn_code]
    if mismatched:
        exported = ", ".join(f"{line.cn_code} (item {line.goods_item_number})" for line in mismatched)
        return RuleResult(
            False,
            CN_CODE,
            f"Returned goods are classified {claim.cn_code} but were exported as {exported}; "
            "same goods must carry the same CN code.",
        )
    return RuleResult(True, CN_CODE, f"CN code {claim.cn_code} matches the export.")


def check_quantity(claim: ReturnLineClaim, allocation: Allocation, exported_total: int, previously_returned: int) -> RuleResult:
    if allocation.unallocated:
        left = exported_total - previously_returned
        return RuleResult(
            False,
            QUANTITY,
            f"Returning {claim.quantity} of order line {claim.order_line_ref} but only {max(left, 0)} "
            f"of {exported_total} exported remain ({previously_returned} returned earlier); "
            f"{allocation.unallocated} unit(s) have no export to return against.",
        )
    return RuleResult(
        True,
        QUANTITY,
        f"{claim.quantity} of {exported_total} exported ({previously_returned} returned earlier).",
    )


def check_time_limit(export_date: date, returned_on: date, agricultural: bool = False) -> RuleResult:
    """Within 3 years of export (1 year for agricultural goods); the deadline day itself counts."""
    deadline = relief_deadline(export_date, agricultural)
    years = AGRICULTURAL_RELIEF_YEARS if agricultural else RELIEF_YEARS
    kind = "agricultural goods" if agricultural else "goods"
    if returned_on > deadline:
        return RuleResult(
            False,
            TIME_LIMIT,
            f"Relief not available: {kind} exported {export_date.isoformat()} had to return by "
            f"{deadline.isoformat()} ({years} year{'s' if years > 1 else ''}); "
            f"returned {returned_on.isoformat()}. Customs may extend this only for special circumstances.",
        )
    return RuleResult(
        True, TIME_LIMIT, f"Returned {returned_on.isoformat()}, within the deadline {deadline.isoformat()}."
    )


def check_same_state(same_state: bool | None) -> RuleResult:
    if same_state is False:
        return RuleResult(
            False,
            SAME_STATE,
            "Goods are not in the state they were exported in: no returned-goods relief (F01), duty may apply.",
        )
    if same_state is None:
        return RuleResult(True, SAME_STATE, "Not inspected yet; relief claimed on the basis that goods are unchanged.")
    return RuleResult(True, SAME_STATE, "Inspected: goods are in the state they were exported in.")


def assess_return_line(
    claim: ReturnLineClaim,
    declaration: ExportDeclaration | None,
    already_returned: Mapping[GoodsItemKey, int],
    importer_eori: str,
    on: date,
) -> LineAssessment:
    """Run every rule for one return line.

    `already_returned` holds quantities earlier returns put against each
    (MRN, goods item number). `on` is the date the goods are declared back.
    relief is F01 when every relief condition holds; it then covers the
    allocated quantity, while units beyond what was exported (quantity rule)
    have no relief and flag the line.
    """
    present = check_declaration_present(declaration, claim.order_line_ref)
    if declaration is None:
        return _assessment(claim, None, (present,), None)

    found = check_export_line(declaration, claim.order_line_ref)
    results = [present, check_mrn(declaration.mrn), found, check_importer(importer_eori, declaration)]
    if not found.ok:
        return _assessment(claim, declaration, tuple(results), None)

    export_lines = declaration.lines_for_order_line(claim.order_line_ref)
    allocation = allocate_return(declaration, claim.order_line_ref, claim.quantity, already_returned)
    exported_total = sum(line.quantity for line in export_lines)
    previously = sum(already_returned.get((declaration.mrn, l.goods_item_number), 0) for l in export_lines)
    agricultural = any(line.agricultural for line in export_lines)
    results += [
        check_cn_code(claim, export_lines),
        check_quantity(claim, allocation, exported_total, previously),
        check_time_limit(declaration.export_date, on, agricultural),
        check_same_state(claim.same_state),
    ]
    return _assessment(claim, declaration, tuple(results), allocation)


def _assessment(
    claim: ReturnLineClaim,
    declaration: ExportDeclaration | None,
    results: tuple[RuleResult, ...],
    allocation: Allocation | None,
) -> LineAssessment:
    relief_ok = all(r.ok for r in results if r.code in RELIEF_CONDITIONS)
    has_goods_item = allocation is not None and allocation.allocated > 0
    if allocation is not None and allocation.parts:
        matched = allocation.parts[0].export_line
    elif declaration is not None:
        candidates = declaration.lines_for_order_line(claim.order_line_ref)
        matched = candidates[0] if candidates else None
    else:
        matched = None
    return LineAssessment(
        claim=claim,
        matched_export_line=matched,
        mrn=declaration.mrn if declaration is not None else None,
        relief=RETURNED_GOODS_RELIEF if relief_ok and has_goods_item else None,
        procedure=REIMPORT_PROCEDURE,
        needs_attention=not all(r.ok for r in results),
        results=results,
        allocation=allocation,
    )


def assess_return_lines(
    claims: Sequence[ReturnLineClaim],
    declarations: Mapping[str, ExportDeclaration],
    already_returned: Mapping[GoodsItemKey, int],
    importer_eori: str,
    on: date,
) -> tuple[list[LineAssessment], dict[GoodsItemKey, int]]:
    """Assess several lines in order, each seeing what the previous ones used.

    `declarations` maps order_line_ref to its export declaration. Returns the
    assessments and the updated running totals to store for later returns.
    """
    totals = dict(already_returned)
    assessments: list[LineAssessment] = []
    for claim in claims:
        assessment = assess_return_line(claim, declarations.get(claim.order_line_ref), totals, importer_eori, on)
        totals = record_returned(totals, assessment)
        assessments.append(assessment)
    return assessments, totals
