"""Collection manifests: what a consolidated pickup declares, line by line."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from customs.model import (
    LineAssessment,
    Manifest,
    ManifestInputLine,
    ManifestLine,
    ManifestTotals,
)
from customs.rates import RateTable, convert_minor, cross_rate, cross_rate_source

DEFAULT_DECLARED_CURRENCY = "SEK"


class _TotalsAccumulator:
    __slots__ = ("line_count", "quantity", "value", "net", "gross", "missing_gross")

    def __init__(self) -> None:
        self.line_count = self.quantity = self.value = self.net = self.gross = self.missing_gross = 0

    def add(self, line: ManifestLine) -> None:
        self.line_count += 1
        self.quantity += line.quantity
        self.value += line.declared_value_minor
        self.net += line.net_weight_grams
        if line.gross_weight_grams is None:
            self.missing_gross += 1
        else:
            self.gross += line.gross_weight_grams

    def freeze(self) -> ManifestTotals:
        return ManifestTotals(
            line_count=self.line_count,
            quantity=self.quantity,
            declared_value_minor=self.value,
            net_weight_grams=self.net,
            gross_weight_grams=self.gross,
            lines_without_gross_weight=self.missing_gross,
        )


def build_manifest(
    collection_ref: str,
    lines: Iterable[ManifestInputLine],
    rates: RateTable,
    *,
    declared_currency: str = DEFAULT_DECLARED_CURRENCY,
    importer_eori: str | None = None,
    generated_at: datetime | None = None,
) -> Manifest:
    """Convert every line to the declared currency and total per CN code.

    Each line's value is quantity x unit value in its own currency, converted
    once with the cross rate of the table (see customs.rates); totals are
    integer sums of the converted line values, so they always equal the sum
    of the lines. Lines keep their input order; CN totals are sorted by code.
    """
    target = declared_currency.upper()
    when = generated_at or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    rate_cache: dict[str, tuple[Decimal, str]] = {}
    built: list[ManifestLine] = []
    per_cn: dict[str, _TotalsAccumulator] = {}
    grand = _TotalsAccumulator()
    by_currency: dict[str, int] = {}

    for item in lines:
        currency = item.currency.upper()
        cached = rate_cache.get(currency)
        if cached is None:
            cached = rate_cache[currency] = (
                cross_rate(rates, currency, target),
                cross_rate_source(rates, currency, target),
            )
        rate, source = cached
        value = item.quantity * item.unit_value_minor
        line = ManifestLine(
            rma=item.rma,
            mrn=item.mrn,
            goods_item_number=item.goods_item_number,
            cn_code=item.cn_code,
            description=item.description,
            quantity=item.quantity,
            currency=currency,
            value_minor=value,
            declared_currency=target,
            declared_value_minor=convert_minor(value, currency, target, rate),
            rate=rate,
            rate_date=rates.date,
            rate_source=source,
            origin_country=item.origin_country,
            net_weight_grams=item.net_weight_grams,
            gross_weight_grams=item.gross_weight_grams,
            reason=item.reason,
            procedure=item.procedure,
            additional_procedure=item.additional_procedure,
            needs_attention=item.needs_attention,
            note=item.note,
        )
        built.append(line)
        accumulator = per_cn.get(line.cn_code)
        if accumulator is None:
            accumulator = per_cn[line.cn_code] = _TotalsAccumulator()
        accumulator.add(line)
        grand.add(line)
        by_currency[currency] = by_currency.get(currency, 0) + value

    return Manifest(
        collection_ref=collection_ref,
        generated_at=when.astimezone(UTC),
        declared_currency=target,
        rate_table_date=rates.date,
        rate_table_source=rates.source,
        importer_eori=importer_eori,
        lines=tuple(built),
        totals_by_cn_code={code: per_cn[code].freeze() for code in sorted(per_cn)},
        grand_total=grand.freeze(),
        value_by_currency=dict(sorted(by_currency.items())),
    )


def _split_evenly(total: int | None, shares: list[int]) -> list[int | None]:
    """Split an integer by quantity shares; the last share takes the remainder so parts sum exactly."""
    if total is None:
        return [None] * len(shares)
    whole = sum(shares)
    parts = [total * share // whole for share in shares[:-1]]
    return [*parts, total - sum(parts)]


def manifest_lines_for(assessment: LineAssessment) -> list[ManifestInputLine]:
    """Manifest lines for one assessed return line.

    One line per goods item the quantity was allocated to (each must cite its
    own MRN and item number); units that matched no export are declared on a
    separate line without relief. The CN code is the one of the goods in the
    parcel (the claim's); a mismatch with the export is flagged by the rules.
    Net weight is the export line's, pro rata; a measured gross weight is
    split by quantity.
    """
    claim = assessment.claim
    parts = assessment.allocation.parts if assessment.allocation is not None else ()
    unallocated = claim.quantity - sum(part.quantity for part in parts)
    quantities = [part.quantity for part in parts] + ([unallocated] if unallocated else [])
    gross = _split_evenly(claim.gross_weight_grams, quantities)
    problems = " ".join(result.reason for result in assessment.problems)
    lines = [
        ManifestInputLine(
            rma=claim.rma,
            mrn=part.mrn,
            goods_item_number=part.export_line.goods_item_number,
            cn_code=claim.cn_code,
            description=claim.description,
            quantity=part.quantity,
            unit_value_minor=claim.unit_value_minor,
            currency=claim.currency,
            origin_country=part.export_line.origin_country,
            net_weight_grams=part.export_line.net_weight_for(part.quantity),
            gross_weight_grams=gross[index],
            reason=claim.reason,
            additional_procedure=assessment.relief,
            needs_attention=assessment.needs_attention,
            note=problems,
        )
        for index, part in enumerate(parts)
    ]
    if unallocated:
        reference = assessment.matched_export_line
        lines.append(
            ManifestInputLine(
                rma=claim.rma,
                mrn=None,
                goods_item_number=None,
                cn_code=claim.cn_code,
                description=claim.description,
                quantity=unallocated,
                unit_value_minor=claim.unit_value_minor,
                currency=claim.currency,
                origin_country=reference.origin_country if reference else "",
                net_weight_grams=reference.net_weight_for(unallocated) if reference else 0,
                gross_weight_grams=gross[-1],
                reason=claim.reason,
                additional_procedure=None,
                needs_attention=True,
                note=problems or "No export goods item to return against.",
            )
        )
    return lines

