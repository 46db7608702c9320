"""Manifest and evidence documents: CSV, JSON and PDF (WeasyPrint)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from customs.model import (
    ExportDeclaration,
    LineAssessment,
    Manifest,
    ManifestLine,
    ManifestTotals,
)
from customs.rates import format_minor

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "customs"
JSON_SCHEMA = "nordic-returns-portal/customs-manifest"
JSON_SCHEMA_VERSION = 1

CSV_COLUMNS = (
    "rma",
    "mrn",
    "goods_item_number",
    "cn_code",
    "description",
    "quantity",
    "currency",
    "value",
    "value_minor",
    "declared_currency",
    "declared_value",
    "declared_value_minor",
    "rate",
    "rate_date",
    "rate_source",
    "origin_country",
    "net_weight_grams",
    "gross_weight_grams",
    "reason",
    "procedure",
    "additional_procedure",
    "needs_attention",
    "note",
)
# Free text may come from consumers; a leading = + - @ would run as a
# spreadsheet formula, so such cells get a leading apostrophe.
_TEXT_COLUMNS = frozenset({"rma", "description", "reason", "note", "rate_source"})
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------- CSV


def _protect(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _unprotect(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_STARTS) else text


def _csv_row(line: ManifestLine) -> dict[str, str]:
    row = {
        "rma": line.rma,
        "mrn": line.mrn or "",
        "goods_item_number": "" if line.goods_item_number is None else str(line.goods_item_number),
        "cn_code": line.cn_code,
        "description": line.description,
        "quantity": str(line.quantity),
        "currency": line.currency,
        "value": format_minor(line.value_minor, line.currency),
        "value_minor": str(line.value_minor),
        "declared_currency": line.declared_currency,
        "declared_value": format_minor(line.declared_value_minor, line.declared_currency),
        "declared_value_minor": str(line.declared_value_minor),
        "rate": str(line.rate),
        "rate_date": line.rate_date.isoformat(),
        "rate_source": line.rate_source,
        "origin_country": line.origin_country,
        "net_weight_grams": str(line.net_weight_grams),
        "gross_weight_grams": "" if line.gross_weight_grams is None else str(line.gross_weight_grams),
        "reason": line.reason,
        "procedure": line.procedure,
        "additional_procedure": line.additional_procedure or "",
        "needs_attention": "yes" if line.needs_attention else "no",
        "note": line.note,
    }
    return {key: _protect(value) if key in _TEXT_COLUMNS else value for key, value in row.items()}


def manifest_to_csv(manifest: Manifest) -> str:
    """One row per manifest line, header first; amounts as minor units and decimals."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(_csv_row(line) for line in manifest.lines)
    return buffer.getvalue()


def manifest_lines_from_csv(text: str) -> tuple[ManifestLine, ...]:
    """Read back rows written by manifest_to_csv."""
    reader = csv.DictReader(io.StringIO(text))
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"manifest CSV lacks columns: {', '.join(sorted(missing))}")
    lines = []
    for row in reader:
        row = {key: _unprotect(value) if key in _TEXT_COLUMNS else value for key, value in row.items()}
        lines.append(_line_from_csv_row(row))
    return tuple(lines)


def _line_from_csv_row(row: dict[str, str]) -> ManifestLine:
    return ManifestLine(
        rma=row["rma"],
        mrn=row["mrn"] or None,
        goods_item_number=int(row["goods_item_number"]) if row["goods_item_number"] else None,
        cn_code=row["cn_code"],
        description=row["description"],
        quantity=int(row["quantity"]),
        currency=row["currency"],
        value_minor=int(row["value_minor"]),
        declared_currency=row["declared_currency"],
        declared_value_minor=int(row["declared_value_minor"]),
        rate=Decimal(row["rate"]),
        rate_date=date.fromisoformat(row["rate_date"]),
        rate_source=row["rate_source"],
        origin_country=row["origin_country"],
        net_weight_grams=int(row["net_weight_grams"]),
        gross_weight_grams=int(row["gross_weight_grams"]) if row["gross_weight_grams"] else None,
        reason=row["reason"],
        procedure=row["procedure"],
        additional_procedure=row["additional_procedure"] or None,
        needs_attention=row["needs_attention"] == "yes",
        note=row["note"],
    )


# ---------------------------------------------------------------- JSON


def _money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"minor": amount_minor, "amount": format_minor(amount_minor, currency), "currency": currency}


def _totals_json(totals: ManifestTotals, currency: str) -> dict[str, Any]:
    return {
        "line_count": totals.line_count,
        "quantity": totals.quantity,
        "declared_value": _money(totals.declared_value_minor, currency),
        "net_weight_grams": totals.net_weight_grams,
        "gross_weight_grams": totals.gross_weight_grams,
        "lines_without_gross_weight": totals.lines_without_gross_weight,
    }


def _line_json(line: ManifestLine) -> dict[str, Any]:
    return {
        "rma": line.rma,
        "mrn": line.mrn,
        "goods_item_number": line.goods_item_number,
        "cn_code": line.cn_code,
        "description": line.description,
        "quantity": line.quantity,
        "value": _money(line.value_minor, line.currency),
        "declared_value": _money(line.declared_value_minor, line.declared_currency),
        "rate": {"value": str(line.rate), "date": line.rate_date.isoformat(), "source": line.rate_source},
        "origin_country": line.origin_country,
        "net_weight_grams": line.net_weight_grams,
        "gross_weight_grams": line.gross_weight_grams,
        "reason": line.reason,
        "procedure": line.procedure,
        "additional_procedure": line.additional_procedure,
        "needs_attention": line.needs_attention,
        "note": line.note,
    }


def manifest_to_json(manifest: Manifest) -> str:
    """Stable JSON: money as {"minor": int, "amount": "decimal string", "currency"}; rates as strings."""
    document = {
        "schema": JSON_SCHEMA,
        "version": JSON_SCHEMA_VERSION,
        "collection_ref": manifest.collection_ref,
        "generated_at": manifest.generated_at.isoformat(),
        "declared_currency": manifest.declared_currency,
        "rate_table": {"date": manifest.rate_table_date.isoformat(), "source": manifest.rate_table_source},
        "importer_eori": manifest.importer_eori,
        "lines": [_line_json(line) for line in manifest.lines],
        "totals_by_cn_code": {
            code: _totals_json(totals, manifest.declared_currency)
            for code, totals in manifest.totals_by_cn_code.items()
        },
        "grand_total": _totals_json(manifest.grand_total, manifest.declared_currency),
        "value_by_currency": {ccy: _money(minor, ccy) for ccy, minor in manifest.value_by_currency.items()},
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _totals_from_json(data: dict[str, Any]) -> ManifestTotals:
    return ManifestTotals(
        line_count=data["line_count"],
        quantity=data["quantity"],
        declared_value_minor=data["declared_value"]["minor"],
        net_weight_grams=data["net_weight_grams"],
        gross_weight_grams=data["gross_weight_grams"],
        lines_without_gross_weight=data["lines_without_gross_weight"],
    )


def _line_from_json(item: dict[str, Any]) -> ManifestLine:
    return ManifestLine(
        rma=item["rma"],
        mrn=item["mrn"],
        goods_item_number=item["goods_item_number"],
        cn_code=item["cn_code"],
        description=item["description"],
        quantity=item["quantity"],
        currency=item["value"]["currency"],
        value_minor=item["value"]["minor"],
        declared_currency=item["declared_value"]["currency"],
        declared_value_minor=item["declared_value"]["minor"],
        rate=Decimal(item["rate"]["value"]),
        rate_date=date.fromisoformat(item["rate"]["date"]),
        rate_source=item["rate"]["source"],
        origin_country=item["origin_country"],
        net_weight_grams=item["net_weight_grams"],
        gross_weight_grams=item["gross_weight_grams"],
        reason=item["reason"],
        procedure=item["procedure"],
        additional_procedure=item["additional_procedure"],
        needs_attention=item["needs_attention"],
        note=item["note"],
    )


def manifest_from_json(text: str) -> Manifest:
    """Read back a document written by manifest_to_json."""
    data = json.loads(text)
    if data.get("schema") != JSON_SCHEMA or data.get("version") != JSON_SCHEMA_VERSION:
        raise ValueError(f"not a {JSON_SCHEMA} v{JSON_SCHEMA_VERSION} document")
    lines = tuple(_line_from_json(item) for item in data["lines"])
    return Manifest(
        collection_ref=data["collection_ref"],
        generated_at=datetime.fromisoformat(data["generated_at"]),
        declared_currency=data["declared_currency"],
        rate_table_date=date.fromisoformat(data["rate_table"]["date"]),
        rate_table_source=data["rate_table"]["source"],
        importer_eori=data["importer_eori"],
        lines=lines,
        totals_by_cn_code={code: _totals_from_json(t) for code, t in data["totals_by_cn_code"].items()},
        grand_total=_totals_from_json(data["grand_total"]),
        value_by_currency={ccy: money["minor"] for ccy, money in data["value_by_currency"].items()},
    )


# ---------------------------------------------------------------- PDF


def money(amount_minor: int | None, currency: str) -> str:
    """'12,345.67' style, the currency's own number of decimals."""
    if amount_minor is None:
        return ""
    return f"{Decimal(format_minor(amount_minor, currency)):,}"


def kilograms(grams: int | None) -> str:
    return "" if grams is None else f"{Decimal(grams).scaleb(-3):,.3f}"


@lru_cache(maxsize=8)
def _environment(template_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["kg"] = kilograms
    return env


def _render_pdf(template_name: str, template_dir: Path | None, context: dict[str, Any]) -> bytes:
    # Imported here: WeasyPrint loads Pango/HarfBuzz, which CSV/JSON users never need.
    from weasyprint import HTML

    directory = Path(template_dir) if template_dir is not None else TEMPLATE_DIR
    html = _environment(directory.resolve()).get_template(template_name).render(**context)
    return HTML(string=html, base_url=str(directory.resolve()) + "/").write_pdf()


def manifest_pdf(
    manifest: Manifest, *, merchant_name: str, template_dir: Path | None = None, timezone: str = "Europe/Stockholm"
) -> bytes:
    """A4 landscape manifest: lines, totals per CN code, grand totals, signature field."""
    from zoneinfo import ZoneInfo

    return _render_pdf(
        "manifest.html",
        template_dir,
        {
            "m": manifest,
            "merchant_name": merchant_name,
            "generated_local": manifest.generated_at.astimezone(ZoneInfo(timezone)),
            "timezone": timezone,
        },
    )


def evidence_pdf(
    assessments: Sequence[LineAssessment],
    declarations: Sequence[ExportDeclaration],
    *,
    merchant_name: str,
    generated_at: datetime | None = None,
    template_dir: Path | None = None,
) -> bytes:
    """Evidence page for one return: the export particulars next to the returned lines.

    `declarations` are the export declarations the return's lines point at.
    """
    rmas = sorted({a.claim.rma for a in assessments})
    if len(rmas) != 1:
        raise ValueError(f"evidence is per return; got lines of {rmas or 'no return'}")
    return _render_pdf(
        "evidence.html",
        template_dir,
        {
            "rma": rmas[0],
            "merchant_name": merchant_name,
            "declarations": list(declarations),
            "lines": list(assessments),
            "generated_at": (generated_at or datetime.now(UTC)).astimezone(UTC),
        },
    )
