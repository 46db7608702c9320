"""Customs documents of a collection (CLI and back-office) and exchange rates fetched over HTTP.

The demo collection (portal.demo.load_demo_norway) is written by `portal customs-documents` and
downloaded from the back-office; the PDFs are read back as text. Rates come from a real HTTP
server on localhost serving an ECB-format file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal

import pypdfium2
import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from customs.documents import manifest_from_json
from portal.cli import main
from portal.demo import load_demo_norway
from portal.models import AuditEntry, Collection, ExchangeRate, Return
from portal.norway import collections, rates
from tests.integration.conftest import csrf_of
from tests.loopback import StaticServer, serve_routes

NOW = datetime.now(UTC)
RATE_DAY = NOW.date() - timedelta(days=1)


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    document = pypdfium2.PdfDocument(content)
    return "\n".join(page.get_textpage().get_text_range() for page in document)


def ecb_xml(day: date, nok: str = "11.7250", sek: str = "11.1340") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <Cube><Cube time='{day.isoformat()}'>
    <Cube currency='USD' rate='1.0512'/><Cube currency='DKK' rate='7.4590'/>
    <Cube currency='SEK' rate='{sek}'/><Cube currency='NOK' rate='{nok}'/>
  </Cube></Cube>
</gesmes:Envelope>""".encode()


@pytest.fixture
def rates_server() -> Iterator[StaticServer]:
    with serve_routes({
        "/eurofxref-daily.xml": (200, ecb_xml(RATE_DAY)),
        "/older.xml": (200, ecb_xml(RATE_DAY - timedelta(days=3), nok="11.9000", sek="11.5000")),
        "/broken": (500, b"internal error"),
    }) as server:
        yield server


def run_cli(monkeypatch, database_url: str, *args: str):
    monkeypatch.setenv("DATABASE_URL", database_url)
    from portal.config import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()


@pytest.fixture
def demo_collection(demo_engine) -> str:
    with Session(demo_engine) as s:
        reference = load_demo_norway(s, NOW)
        s.commit()
    assert reference
    return reference


# --- documents ------------------------------------------------------------------------------


def test_demo_collection_is_frozen_and_loading_it_again_changes_nothing(demo_engine, demo_collection):
    with Session(demo_engine) as s:
        again = load_demo_norway(s, NOW)
        s.commit()
        assert again == demo_collection
        collection = s.exec(select(Collection)).one()
        assert collection.state == "frozen"
        manifest = manifest_from_json(collection.manifest)
        assert {line.rma for line in manifest.lines} == collection_rmas(s, collection)
        assert len(collection_rmas(s, collection)) == 2
        assert manifest.rate_table_source == "demo" and manifest.rate_table_date == RATE_DAY
        assert len(s.exec(select(Return)).all()) == 2


def collection_rmas(s: Session, collection: Collection) -> set[str]:
    return {ret.rma for ret, _ in collections.returns_in(s, collection)}


def test_cli_writes_csv_json_pdf_and_evidence_of_the_demo_collection(demo_engine, demo_collection, database_url,
                                                                      tmp_path, monkeypatch):
    out = tmp_path / "docs"
    result = run_cli(monkeypatch, database_url, "customs-documents", "--collection", demo_collection, "--out", str(out))
    assert result.exit_code == 0, result.output
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, demo_collection)
        manifest = manifest_from_json(collection.manifest)
        rmas = collection_rmas(s, collection)
    assert f"Collection {demo_collection}" in result.output and f"{len(manifest.lines)} lines" in result.output

    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text(encoding="utf-8"))))
    assert [(r["rma"], r["mrn"], r["cn_code"], int(r["declared_value_minor"])) for r in rows] == [
        (line.rma, line.mrn, line.cn_code, line.declared_value_minor) for line in manifest.lines]
    document = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert document["collection_ref"] == demo_collection
    assert document["grand_total"]["declared_value"]["minor"] == sum(int(r["declared_value_minor"]) for r in rows)
    assert set(document["totals_by_cn_code"]) == {line.cn_code for line in manifest.lines}

    text = pdf_text((out / "manifest.pdf").read_bytes())
    for line in manifest.lines:
        assert line.mrn in text and line.cn_code in text and line.rma in text
    assert "Grand total" in text and "Signature" in text
    assert f"{Decimal(manifest.grand_total.declared_value_minor).scaleb(-2):,}" in text

    for rma in rmas:
        evidence = pdf_text((out / f"evidence-{rma}.pdf").read_bytes())
        assert rma in evidence
        assert all(line.mrn in evidence for line in manifest.lines if line.rma == rma)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.csv", "manifest.json", "manifest.pdf", *(f"evidence-{rma}.pdf" for rma in rmas)])

    unknown = run_cli(monkeypatch, database_url, "customs-documents", "--collection", "NO-1999-01-01-A", "--out", str(out))
    assert unknown.exit_code != 0 and "No collection NO-1999-01-01-A" in unknown.output and demo_collection in unknown.output


def test_backoffice_serves_the_same_documents(staff_client, demo_engine, demo_collection, database_url, tmp_path,
                                              monkeypatch):
    warehouse = staff_client("warehouse")
    page = warehouse.get(f"/staff/norway/collections/{demo_collection}")
    assert page.status_code == 200
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, demo_collection)
        manifest = manifest_from_json(collection.manifest)
        rmas = collection_rmas(s, collection)
    for line in manifest.lines:
        assert line.mrn in page.text and line.cn_code in page.text
    assert 'id="grand-total"' in page.text

    csv_download = warehouse.get(f"/staff/norway/collections/{demo_collection}/manifest.csv")
    assert csv_download.status_code == 200 and csv_download.headers["content-type"].startswith("text/csv")
    assert f'filename="manifest-{demo_collection}.csv"' in csv_download.headers["content-disposition"]
    json_download = warehouse.get(f"/staff/norway/collections/{demo_collection}/manifest.json")
    assert json_download.json()["grand_total"]["declared_value"]["minor"] == manifest.grand_total.declared_value_minor
    pdf = warehouse.get(f"/staff/norway/collections/{demo_collection}/manifest.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(pdf.content)
    assert all(line.mrn in text and line.cn_code in text for line in manifest.lines)
    assert warehouse.get(f"/staff/norway/collections/{demo_collection}/manifest.pdf").content == pdf.content  # stored once

    out = tmp_path / "cli"
    assert run_cli(monkeypatch, database_url, "customs-documents", "--collection", demo_collection,
                   "--out", str(out)).exit_code == 0
    assert csv_download.content == (out / "manifest.csv").read_bytes()
    assert json_download.content == (out / "manifest.json").read_bytes()

    for rma in rmas:
        evidence = warehouse.get(f"/staff/norway/returns/{rma}/evidence.pdf")
        assert evidence.status_code == 200 and rma in pdf_text(evidence.content)
    assert warehouse.get("/staff/norway/returns/R0000000/evidence.pdf").status_code == 404


def test_documents_wait_for_a_frozen_manifest(staff_client, demo_engine, demo_collection):
    admin = staff_client("admin")
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, demo_collection)
        rma = sorted(collection_rmas(s, collection))[0]
    page = admin.get(f"/staff/norway/collections/{demo_collection}").text
    version = collections_version(demo_engine, demo_collection)
    admin.post(f"/staff/norway/collections/{demo_collection}/remove",
               data={"_csrf_token": csrf_of(page), "version": version, "rma": rma})
    page = admin.get(f"/staff/norway/collections/{demo_collection}").text
    admin.post(f"/staff/norway/collections/{demo_collection}/remove",
               data={"_csrf_token": csrf_of(page), "version": collections_version(demo_engine, demo_collection),
                     "rma": sorted(collection_rmas_by_ref(demo_engine, demo_collection))[0]})
    with Session(demo_engine) as s:  # emptied: back to planned, the frozen manifest is gone
        collection = collections.collection_by_reference(s, demo_collection)
        assert collection.state == "planned" and collection.manifest is None
    for suffix in ("manifest.csv", "manifest.json", "manifest.pdf"):
        refused = admin.get(f"/staff/norway/collections/{demo_collection}/{suffix}")
        assert refused.status_code == 409 and "freeze it first" in refused.text


def collections_version(engine, reference: str) -> str:
    with Session(engine) as s:
        return str(collections.collection_by_reference(s, reference).version)


def collection_rmas_by_ref(engine, reference: str) -> set[str]:
    with Session(engine) as s:
        return collection_rmas(s, collections.collection_by_reference(s, reference))


# --- exchange rates -------------------------------------------------------------------------


def expected_sek(amount_minor: int, nok: str, sek: str) -> tuple[Decimal, int]:
    """The documented rule by hand: cross rate to 10 significant digits, then one half-up rounding."""
    rate = Context(prec=10, rounding=ROUND_HALF_UP).divide(Decimal(sek), Decimal(nok))
    return rate, int((Decimal(amount_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_backoffice_fetches_rates_from_the_configured_url(staff_client, demo_engine, rates_server, monkeypatch):
    monkeypatch.setenv("ECB_RATES_URL", f"{rates_server.url}/eurofxref-daily.xml")
    admin = staff_client("admin")
    page = admin.get("/staff/norway/rates")
    assert f"{rates_server.url}/eurofxref-daily.xml" in page.text
    fetched = admin.post("/staff/norway/rates/fetch", data={"_csrf_token": csrf_of(page.text)})
    assert fetched.status_code == 200 and f"Fetched 4 rates of {RATE_DAY.isoformat()}" in fetched.text
    assert rates_server.hits == ["/eurofxref-daily.xml"]
    with Session(demo_engine) as s:
        stored = {(r.currency, r.rate_date, r.source): r.rate for r in s.exec(select(ExchangeRate))}
        assert stored[("NOK", RATE_DAY, "ECB")] == Decimal("11.7250")
        assert stored[("SEK", RATE_DAY, "ECB")] == Decimal("11.1340")
        assert len(stored) == 4
    again = admin.post("/staff/norway/rates/fetch", data={"_csrf_token": csrf_of(page.text)})
    assert "(0 new or changed)" in again.text

    monkeypatch.setenv("ECB_RATES_URL", f"{rates_server.url}/broken")
    broken = admin.post("/staff/norway/rates/fetch", data={"_csrf_token": csrf_of(page.text)})
    assert broken.status_code == 502 and "failed: HTTP 500" in broken.text

    rate, result = expected_sek(10000, "11.7250", "11.1340")
    converted = admin.get(f"/staff/norway/rates?amount=100.00&from=NOK&to=SEK&on={NOW.date().isoformat()}")
    assert converted.status_code == 200
    assert f"= {Decimal(result).scaleb(-2)} SEK" in converted.text and str(rate) in converted.text


def test_cli_fetch_and_rate_choice_latest_on_or_before_with_manual_override(staff_client, demo_engine, rates_server,
                                                                              database_url, monkeypatch):
    older = run_cli(monkeypatch, database_url, "fetch-rates", "--url", f"{rates_server.url}/older.xml")
    assert older.exit_code == 0, older.output
    assert f"Rates of {(RATE_DAY - timedelta(days=3)).isoformat()}" in older.output
    monkeypatch.setenv("ECB_RATES_URL", f"{rates_server.url}/eurofxref-daily.xml")
    assert run_cli(monkeypatch, database_url, "fetch-rates").exit_code == 0
    failed = run_cli(monkeypatch, database_url, "fetch-rates", "--url", f"{rates_server.url}/broken")
    assert failed.exit_code != 0 and "HTTP 500" in failed.output

    with Session(demo_engine) as s:
        assert rates.best_rate(s, "NOK", RATE_DAY - timedelta(days=1)).rate == Decimal("11.9000")  # latest on or before
        assert rates.best_rate(s, "NOK", RATE_DAY + timedelta(days=10)).rate == Decimal("11.7250")
        assert rates.best_rate(s, "NOK", RATE_DAY - timedelta(days=30)) is None
        with pytest.raises(rates.RateError, match="No exchange rate for NOK, SEK on or before"):
            rates.rate_table_for(s, RATE_DAY - timedelta(days=30), {"NOK", "SEK"})

    admin = staff_client("admin")
    page = admin.get("/staff/norway/rates").text
    bad = admin.post("/staff/norway/rates", data={"_csrf_token": csrf_of(page), "currency": "EUR", "rate_date": "yesterday",
                                                  "rate": "-3"})
    assert bad.status_code == 400
    for message in ("Rates are per 1 EUR", "Enter the date as YYYY-MM-DD.", "The rate must be a positive number."):
        assert message in bad.text
    saved = admin.post("/staff/norway/rates", data={"_csrf_token": csrf_of(page), "currency": "nok",
                                                    "rate_date": RATE_DAY.isoformat(), "rate": "12,0000"},
                       follow_redirects=False)
    assert saved.status_code in (302, 303)
    with Session(demo_engine) as s:
        table = rates.rate_table_for(s, NOW.date(), {"NOK", "SEK"})
        assert table.rates["NOK"] == Decimal("12") and table.source_for("NOK") == "manual"
        assert table.source_for("SEK") == "ECB" and table.date == RATE_DAY
        override = s.exec(select(ExchangeRate).where(ExchangeRate.source == "manual")).one()
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "norway.rate_override")).one()
        assert audit.before == {"rate": "11.725", "source": "ECB"} and audit.after == {"rate": "12", "source": "manual"}
    rate, result = expected_sek(10000, "12", "11.1340")
    converted = admin.get("/staff/norway/rates?amount=100&from=NOK&to=SEK").text
    assert f"= {Decimal(result).scaleb(-2)} SEK" in converted and "manual/ECB" in converted

    page = admin.get("/staff/norway/rates").text
    removed = admin.post(f"/staff/norway/rates/{override.id}/delete", data={"_csrf_token": csrf_of(page)},
                         follow_redirects=False)
    assert removed.status_code in (302, 303)
    assert admin.post("/staff/norway/rates/999999/delete", data={"_csrf_token": csrf_of(page)}).status_code == 404
    with Session(demo_engine) as s:
        assert rates.rate_table_for(s, NOW.date(), {"NOK"}).rates["NOK"] == Decimal("11.725")


def test_manifest_uses_the_rates_of_its_day(demo_engine, rates_server):
    """A frozen manifest keeps its rates; the per-line SEK values follow the documented rounding."""
    older_day = RATE_DAY - timedelta(days=3)
    with Session(demo_engine) as s:
        rates.fetch_and_store(s, NOW, url=f"{rates_server.url}/older.xml")
        s.commit()
        reference = load_demo_norway(s, NOW)  # real rates exist: no demo rates
        s.commit()
        manifest = manifest_from_json(collections.collection_by_reference(s, reference).manifest)
        assert {r.source for r in s.exec(select(ExchangeRate))} == {"ECB"}
    assert manifest.rate_table_source == "ECB" and manifest.rate_table_date == older_day
    rate, _ = expected_sek(1, "11.9000", "11.5000")
    assert manifest.lines
    for line in manifest.lines:
        assert line.currency == "NOK" and line.rate == rate and line.rate_date == older_day
        assert line.declared_value_minor == expected_sek(line.value_minor, "11.9000", "11.5000")[1]


def test_rate_fetch_job_reads_ecb_rates_url(demo_engine, rates_server, monkeypatch):
    from portal.norway import jobs

    monkeypatch.setenv("ECB_RATES_URL", f"{rates_server.url}/eurofxref-daily.xml")
    result = jobs.run_rate_fetch(demo_engine, NOW)
    assert (result.rate_date, result.currencies, result.changed) == (RATE_DAY, 4, 4)
    assert jobs.run_rate_fetch(demo_engine, NOW).changed == 0  # idempotent
    monkeypatch.setenv("ECB_RATES_URL", f"{rates_server.url}/broken")
    with pytest.raises(rates.RateError, match="HTTP 500"):
        jobs.run_rate_fetch(demo_engine, NOW)
    with Session(demo_engine) as s:
        assert len(s.exec(select(ExchangeRate)).all()) == 4
