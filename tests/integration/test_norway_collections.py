"""Norway collections: the cut-off job on a clock we control, the back-office actions, the storage check.

Real app over HTTP with real sessions and CSRF, real database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), demo orders.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from customs.documents import manifest_from_json
from customs.mrn import make_mrn
from customs.rates import RateTable
from customs.schedule import next_cutoffs
from portal.models import (
    AuditEntry,
    Collection,
    CollectionItem,
    NorwaySettings,
    Order,
    OrderLine,
    OutboxMessage,
    Return,
    ReturnEvent,
    WebhookEndpoint,
)
from portal.norway import collections, jobs, rates
from portal.returns import policy, service
from tests.integration.conftest import csrf_of

REAL_NOW = datetime.now(UTC)
RATES = {"SEK": Decimal("11.1340"), "NOK": Decimal("11.7250")}


# --- helpers --------------------------------------------------------------------------------


def register(engine, number: str, picks: dict[str, int] | None = None) -> str:
    """Register a return through the service (all returnable lines, 1 each, unless `picks`); its RMA."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).all()
        chosen = picks or {line.sku: 1 for line in lines}
        request = service.ReturnRequest(
            order_id=order.id, resolution="refund", language="nb", form_nonce=uuid.uuid4().hex,
            lines=[policy.RequestedLine(line.id, str(chosen[line.sku]), "too_small", "") for line in lines if line.sku in chosen],
        )
        ret = service.register_return(s, request, REAL_NOW.date())
        s.commit()
        return ret.rma


def move(engine, rma: str, *statuses: str, at: datetime | None = None) -> None:
    """Carrier events, the way the carrier integration will record them."""
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        for status in statuses:
            assert service.advance(s, ret, status, "carrier", f"parcel.{status}", at=at)
        s.commit()


def waiting(engine, number: str) -> str:
    rma = register(engine, number)
    move(engine, rma, "dropped_off", "in_transit", "at_consolidation")
    return rma


def store_rates(engine, day: date, table: dict | None = None) -> None:
    with Session(engine) as s:
        rates.store_table(s, RateTable(date=day, source="ECB", rates=table or RATES), REAL_NOW)
        s.commit()


def webhook_endpoint(engine, events=("collection.created",)) -> int:
    with Session(engine) as s:
        endpoint = WebhookEndpoint(url="https://erp.example/hooks", secret="s" * 32, event_types=list(events))
        s.add(endpoint)
        s.commit()
        return endpoint.id


def next_cutoff(after: datetime) -> datetime:
    """Tuesday or Friday 12:00 Europe/Oslo (the defaults), the first after `after`."""
    return next(next_cutoffs(after))


def by_rma(s: Session, rma: str) -> Return:
    return s.exec(select(Return).where(Return.rma == rma)).one()


def events(s: Session, rma: str) -> list[ReturnEvent]:
    return service.events_of(s, by_rma(s, rma).id)


def collection_rmas(s: Session, collection: Collection) -> set[str]:
    return {ret.rma for ret, _ in collections.returns_in(s, collection)}


# --- the cut-off job ------------------------------------------------------------------------


def test_cutoff_job_twice_creates_one_collection_with_the_waiting_returns(demo_engine):
    first, second = waiting(demo_engine, "NO-2001"), waiting(demo_engine, "NO-2002")
    not_yet = register(demo_engine, "NO-2003")  # label issued, not dropped off: not waiting
    swedish = register(demo_engine, "SE-1001")
    move(demo_engine, swedish, "dropped_off")
    store_rates(demo_engine, REAL_NOW.date() - timedelta(days=1))
    endpoint_id = webhook_endpoint(demo_engine)

    cutoff = next_cutoff(REAL_NOW)
    before = jobs.run_collection_cutoffs(demo_engine, cutoff - timedelta(minutes=1))
    assert before.created is False and before.collection is None  # the previous cut-off is long gone

    clock = cutoff + timedelta(seconds=30)
    one = jobs.run_collection_cutoffs(demo_engine, clock)
    late_arrival = waiting(demo_engine, "NO-2004")  # arrives after the cut-off: waits for the next one
    two = jobs.run_collection_cutoffs(demo_engine, clock + timedelta(minutes=15))

    assert one.created and not two.created
    assert one.collection.id == two.collection.id
    with Session(demo_engine) as s:
        rows = s.exec(select(Collection)).all()
        assert len(rows) == 1
        collection = rows[0]
        assert collection.cutoff_at == cutoff and collection.planned_for == cutoff
        assert collection.state == "frozen" and collection.created_by == "scheduler"
        assert collection.reference == f"NO-{cutoff.astimezone(ZoneInfo('Europe/Oslo')).date().isoformat()}-A"
        assert collection_rmas(s, collection) == {first, second}
        assert late_arrival in {r.rma for r in collections.waiting_returns(s)}
        assert not_yet not in collection_rmas(s, collection)

        manifest = manifest_from_json(collection.manifest)
        assert {line.rma for line in manifest.lines} == {first, second}
        assert len(manifest.lines) == 4  # two lines per order, each on its own goods item
        assert all(line.mrn and line.goods_item_number and line.additional_procedure == "F01" for line in manifest.lines)
        assert manifest.grand_total.declared_value_minor == sum(line.declared_value_minor for line in manifest.lines)
        assert manifest.grand_total.quantity == sum(line.quantity for line in manifest.lines)
        assert manifest.grand_total.net_weight_grams == sum(line.net_weight_grams for line in manifest.lines)
        for code, totals in manifest.totals_by_cn_code.items():
            lines = [line for line in manifest.lines if line.cn_code == code]
            assert totals.declared_value_minor == sum(line.declared_value_minor for line in lines)
            assert totals.line_count == len(lines)
        assert sum(t.declared_value_minor for t in manifest.totals_by_cn_code.values()) == manifest.grand_total.declared_value_minor
        assert manifest.rate_table_date == REAL_NOW.date() - timedelta(days=1)
        assert manifest.declared_currency == "SEK" and manifest.importer_eori == "SE5566778899"

        mails = s.exec(select(OutboxMessage).where(OutboxMessage.channel == "email")).all()
        assert len(mails) == 1
        assert mails[0].event_type == "collection.created"
        assert mails[0].destination == "kundservice@nordicoutdoor.example"  # no alert address set: support
        assert collection.reference in mails[0].payload["subject"]
        assert first in mails[0].payload["text"] and "Manifest frozen" in mails[0].payload["text"]
        hooks = s.exec(select(OutboxMessage).where(OutboxMessage.channel == "webhook")).all()
        assert [(h.endpoint_id, h.payload["data"]["reference"]) for h in hooks] == [(endpoint_id, collection.reference)]
        assert set(hooks[0].payload["data"]["returns"]) == {first, second}
        assert "collection.return_added" in [e.type for e in events(s, first)]
        assert by_rma(s, first).status == "at_consolidation"  # collected only when the carrier takes it

    much_later = jobs.run_collection_cutoffs(demo_engine, cutoff + collections.CUTOFF_GRACE + timedelta(minutes=1))
    assert not much_later.created
    with Session(demo_engine) as s:
        assert len(s.exec(select(Collection)).all()) == 1


def test_without_rates_the_collection_waits_planned_and_freezes_once_rates_arrive(demo_engine):
    rma = waiting(demo_engine, "NO-2001")
    cutoff = next_cutoff(REAL_NOW)
    outcome = jobs.run_collection_cutoffs(demo_engine, cutoff)
    assert outcome.created and "No exchange rate for NOK" in outcome.manifest_error
    with Session(demo_engine) as s:
        collection = s.exec(select(Collection)).one()
        assert collection.state == "planned" and collection.manifest is None
        mail = s.exec(select(OutboxMessage).where(OutboxMessage.channel == "email")).one()
        assert "NOT frozen" in mail.payload["text"] and "No exchange rate for NOK" in mail.payload["text"]

    store_rates(demo_engine, REAL_NOW.date())
    again = jobs.run_collection_cutoffs(demo_engine, cutoff + timedelta(minutes=10))
    assert not again.created
    with Session(demo_engine) as s:
        collection = s.exec(select(Collection)).one()
        assert collection.state == "frozen" and collection.manifest_error == ""
        assert {line.rma for line in manifest_from_json(collection.manifest).lines} == {rma}
        assert len(s.exec(select(OutboxMessage).where(OutboxMessage.channel == "email")).all()) == 1


def test_nothing_waiting_creates_nothing(demo_engine):
    register(demo_engine, "NO-2001")  # label issued only
    cutoff = next_cutoff(REAL_NOW)
    outcome = jobs.run_collection_cutoffs(demo_engine, cutoff)
    assert not outcome.created and outcome.reason == "no returns waiting"
    with Session(demo_engine) as s:
        assert s.exec(select(Collection)).all() == []
        assert s.exec(select(OutboxMessage)).all() == []


def test_cutoffs_follow_the_settings(demo_engine):
    with Session(demo_engine) as s:
        s.add(NorwaySettings(weekdays=[2], cutoff="09:30", timezone="Europe/Oslo"))
        s.commit()
    waiting(demo_engine, "NO-2001")
    store_rates(demo_engine, REAL_NOW.date())
    wednesday = next(next_cutoffs(REAL_NOW, {2}, time(9, 30), "Europe/Oslo"))
    assert wednesday.astimezone(ZoneInfo("Europe/Oslo")).strftime("%a %H:%M") == "Wed 09:30"
    assert jobs.run_collection_cutoffs(demo_engine, wednesday).created
    with Session(demo_engine) as s:
        assert s.exec(select(Collection)).one().cutoff_at == wednesday


# --- back-office ----------------------------------------------------------------------------


def _form(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text
    return page.text


def _version(engine, reference: str) -> int:
    with Session(engine) as s:
        return collections.collection_by_reference(s, reference).version


def _post(client, engine, reference: str, action: str, **fields):
    html = _form(client, f"/staff/norway/collections/{reference}")
    data = {"_csrf_token": csrf_of(html), "version": str(_version(engine, reference)), **fields}
    return client.post(f"/staff/norway/collections/{reference}/{action}", data=data, follow_redirects=False)


def test_admin_builds_moves_and_walks_a_collection_to_released(staff_client, demo_engine):
    a, b = waiting(demo_engine, "NO-2001"), waiting(demo_engine, "NO-2002")
    store_rates(demo_engine, REAL_NOW.date() - timedelta(days=2))
    admin = staff_client("admin")

    index = _form(admin, "/staff/norway/")
    assert a in index and b in index and "Build collection" in index
    built = admin.post("/staff/norway/collections", data={
        "_csrf_token": csrf_of(index), "rmas": [a], "planned_for": REAL_NOW.date().isoformat()}, follow_redirects=False)
    assert built.status_code in (302, 303), built.text
    reference = built.headers["location"].split("/")[-1].split("?")[0]
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, reference)
        assert collection.state == "planned" and collection.created_by == "admin-0@shop.example"
        assert collection_rmas(s, collection) == {a}

    assert _post(admin, demo_engine, reference, "add", rma=b.lower()).status_code in (302, 303)
    assert _post(admin, demo_engine, reference, "remove", rma=a).status_code in (302, 303)
    assert _post(admin, demo_engine, reference, "freeze").status_code in (302, 303)
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, reference)
        assert collection.state == "frozen" and collection_rmas(s, collection) == {b}
        assert {line.rma for line in manifest_from_json(collection.manifest).lines} == {b}
        removed = s.exec(select(CollectionItem).where(CollectionItem.removed_at.is_not(None))).one()
        assert removed.removed_by == "admin-0@shop.example" and by_rma(s, a).id == removed.return_id
        assert a in {r.rma for r in collections.waiting_returns(s)}  # back in the queue
        moved_out = [e for e in events(s, a) if e.type == "collection.return_removed"][0]
        assert moved_out.actor == "admin-0@shop.example" and moved_out.data["before"] == {"collection": reference}

    page = _form(admin, f"/staff/norway/collections/{reference}")
    assert "Mark collected" in page and b in page and "manifest.pdf" in page

    stale = admin.post(f"/staff/norway/collections/{reference}/collected",
                       data={"_csrf_token": csrf_of(page), "version": "1"}, follow_redirects=False)
    assert stale.status_code == 409 and "Someone else changed collection" in stale.text

    assert _post(admin, demo_engine, reference, "collected").status_code in (302, 303)
    with Session(demo_engine) as s:
        ret = by_rma(s, b)
        assert ret.status == "collected"
        collected = [e for e in events(s, b) if e.type == "collection.collected"][0]
        assert collected.actor == "admin-0@shop.example" and collected.data["to"] == "collected"
        assert collected.data["collection"] == reference

    bad = _post(admin, demo_engine, reference, "declared", import_mrn="26SE12345")
    assert bad.status_code == 400 and "An MRN has 18 characters" in bad.text and 'aria-invalid="true"' in bad.text
    export_mrn = make_mrn(26, "SE", "000000000042", "A")
    wrong_kind = _post(admin, demo_engine, reference, "declared", import_mrn=export_mrn)
    assert wrong_kind.status_code == 400 and "not an import declaration" in wrong_kind.text
    with Session(demo_engine) as s:
        assert collections.collection_by_reference(s, reference).state == "collected"

    import_mrn = make_mrn(26, "SE", "000000000777", "R")
    assert _post(admin, demo_engine, reference, "declared", import_mrn=import_mrn.lower()).status_code in (302, 303)
    assert _post(admin, demo_engine, reference, "released").status_code in (302, 303)
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, reference)
        assert collection.state == "released" and collection.import_mrn == import_mrn
        assert collection.collected_at and collection.declared_at and collection.released_at
        assert by_rma(s, b).status == "customs_cleared"
        types = [e.type for e in events(s, b)]
        assert types.index("collection.collected") < types.index("customs.declared") < types.index("customs.cleared")
        declared = [e for e in events(s, b) if e.type == "customs.declared"][0]
        assert declared.data["after"] == {"import_mrn": import_mrn} and declared.actor == "admin-0@shop.example"
        actions = [e.action for e in s.exec(select(AuditEntry).where(AuditEntry.action.startswith("norway.")))]
        assert actions == ["norway.collection_built", "norway.collection_frozen", "norway.collection_collected",
                           "norway.collection_declared", "norway.collection_released"]

    late = _post(admin, demo_engine, reference, "add", rma=a)
    assert late.status_code == 400 and "cannot be changed now" in late.text


def test_refused_requests_explain_themselves_and_change_nothing(staff_client, demo_engine):
    a = waiting(demo_engine, "NO-2001")
    swedish = register(demo_engine, "SE-1001")
    move(demo_engine, swedish, "dropped_off")
    admin = staff_client("admin")
    index = _form(admin, "/staff/norway/")

    bad_date = admin.post("/staff/norway/collections", data={"_csrf_token": csrf_of(index), "planned_for": "next tuesday"})
    assert bad_date.status_code == 400 and "Enter the pickup date as YYYY-MM-DD." in bad_date.text
    unknown = admin.post("/staff/norway/collections", data={
        "_csrf_token": csrf_of(index), "planned_for": REAL_NOW.date().isoformat(), "rmas": [a, "R0000000"]})
    assert unknown.status_code == 400 and "not waiting for a collection: R0000000" in unknown.text
    with Session(demo_engine) as s:
        assert s.exec(select(Collection)).all() == []

    built = admin.post("/staff/norway/collections", data={
        "_csrf_token": csrf_of(index), "planned_for": REAL_NOW.date().isoformat()}, follow_redirects=False)
    reference = built.headers["location"].split("/")[-1].split("?")[0]
    with Session(demo_engine) as s:  # nothing picked: every waiting Norwegian return
        assert collection_rmas(s, collections.collection_by_reference(s, reference)) == {a}

    not_norwegian = _post(admin, demo_engine, reference, "add", rma=swedish)
    assert not_norwegian.status_code == 400 and "is not from Norway" in not_norwegian.text
    no_such = _post(admin, demo_engine, reference, "add", rma="R0000000")
    assert no_such.status_code == 400 and "No return with RMA" in no_such.text
    twice = _post(admin, demo_engine, reference, "add", rma=a)
    assert twice.status_code == 400 and f"already in collection {reference}" in twice.text
    not_frozen = _post(admin, demo_engine, reference, "collected")
    assert not_frozen.status_code == 400 and "freeze the manifest first" in not_frozen.text
    no_rates = _post(admin, demo_engine, reference, "freeze")
    assert no_rates.status_code == 400 and "No exchange rate for" in no_rates.text
    assert "No exchange rate for" in _form(admin, f"/staff/norway/collections/{reference}")  # the draft says why
    with Session(demo_engine) as s:
        collection = collections.collection_by_reference(s, reference)
        assert collection.state == "planned" and collection.version == 1
        assert len(s.exec(select(CollectionItem)).all()) == 1

    assert admin.get("/staff/norway/collections/NO-1999-01-01-A").status_code == 404


def test_other_roles_may_look_but_not_change(staff_client, demo_engine):
    a = waiting(demo_engine, "NO-2001")
    store_rates(demo_engine, REAL_NOW.date())
    with Session(demo_engine) as s:
        collection = collections.build_collection(s, REAL_NOW + timedelta(days=1), [a], None, REAL_NOW)
        reference = collection.reference
        s.commit()
    for role in ("warehouse", "support"):
        client = staff_client(role)
        page = _form(client, f"/staff/norway/collections/{reference}")
        assert a in page and "Only an admin can change collections." in page and "Freeze manifest" not in page
        refused = client.post(f"/staff/norway/collections/{reference}/freeze",
                              data={"_csrf_token": csrf_of(page), "version": "1"}, follow_redirects=False)
        assert refused.status_code == 403
        assert "Only an admin can change these settings." in _form(client, "/staff/norway/settings")
        assert client.get("/staff/norway/rates").status_code == 200
    with Session(demo_engine) as s:
        assert collections.collection_by_reference(s, reference).state == "planned"


def test_settings_form_saves_valid_values_and_refuses_bad_ones(staff_client, demo_engine):
    admin = staff_client("admin")
    html = _form(admin, "/staff/norway/settings")
    assert 'value="12:00"' in html and 'value="50.00"' in html  # the defaults: Tuesday and Friday, NOK 50 a day
    bad = admin.post("/staff/norway/settings", data={
        "_csrf_token": csrf_of(html), "cutoff": "25:00", "timezone": "Mars/Olympus", "free_storage_days": "-1",
        "fee_per_day": "lots", "fee_currency": "NOK", "alert_email": "not-an-address"})
    assert bad.status_code == 400
    for message in ("Pick at least one collection day.", "Enter the cut-off as HH:MM", "Enter an IANA time zone",
                    "Enter a whole number of days", "Enter the fee per day in NOK", "Enter a valid e-mail address"):
        assert message in bad.text
    with Session(demo_engine) as s:
        assert s.exec(select(NorwaySettings)).all() == []

    saved = admin.post("/staff/norway/settings", data={
        "_csrf_token": csrf_of(html), "weekdays": ["0", "3"], "cutoff": "10:15", "timezone": "Europe/Oslo",
        "free_storage_days": "3", "fee_per_day": "75.50", "fee_currency": "nok", "alert_email": "lager@shop.example"},
        follow_redirects=False)
    assert saved.status_code in (302, 303)
    with Session(demo_engine) as s:
        row = s.exec(select(NorwaySettings)).one()
        assert (row.weekdays, row.cutoff, row.free_storage_days, row.fee_per_day_minor, row.fee_currency, row.alert_email) == (
            [0, 3], "10:15", 3, 7550, "NOK", "lager@shop.example")
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "norway.settings_changed")).one()
        assert audit.after["fee_per_day"] == "75.50" and audit.actor == "admin-0@shop.example"
        local = [c.astimezone(ZoneInfo("Europe/Oslo")) for c in collections.upcoming_cutoffs(row, REAL_NOW)]
        assert {c.strftime("%a %H:%M") for c in local} == {"Mon 10:15", "Thu 10:15"}
    assert "Settings saved." in admin.get("/staff/norway/settings?done=settings").text


# --- storage --------------------------------------------------------------------------------


def test_daily_storage_check_alerts_once_a_day_with_the_fee(demo_engine):
    arrived = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    rma = register(demo_engine, "NO-2001")
    move(demo_engine, rma, "dropped_off", "in_transit", at=arrived - timedelta(days=1))
    move(demo_engine, rma, "at_consolidation", at=arrived)
    on_its_way = register(demo_engine, "NO-2002")
    move(demo_engine, on_its_way, "dropped_off", at=arrived - timedelta(days=20))  # not at the point: no fee yet
    with Session(demo_engine) as s:
        s.add(NorwaySettings(alert_email="lager@shop.example"))  # 5 free days, NOK 50.00 per started day
        s.commit()

    within = jobs.run_storage_check(demo_engine, arrived + timedelta(days=5))
    assert within.overdue == [] and within.alerts_queued == 0

    day_six = arrived + timedelta(days=6, hours=1)  # 7 started days: 2 chargeable
    first = jobs.run_storage_check(demo_engine, day_six)
    again = jobs.run_storage_check(demo_engine, day_six + timedelta(hours=2))
    next_day = jobs.run_storage_check(demo_engine, day_six + timedelta(days=1))
    assert [(o.rma, o.days_waited, o.fee_minor, o.currency) for o in first.overdue] == [(rma, 7, 10000, "NOK")]
    assert first.alerts_queued == 1 and again.alerts_queued == 0 and next_day.alerts_queued == 1
    assert next_day.overdue[0].fee_minor == 15000
    with Session(demo_engine) as s:
        mails = s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "storage.overdue")
                       .order_by(OutboxMessage.id)).all()
        assert [m.destination for m in mails] == ["lager@shop.example"] * 2
        assert rma in mails[0].payload["subject"] and "NOK" in mails[0].payload["subject"]
        assert "100.00" in mails[0].payload["text"] and "150.00" in mails[1].payload["text"]
        assert mails[0].return_id == by_rma(s, rma).id


def test_overdue_returns_show_on_the_collections_page(staff_client, demo_engine):
    rma = register(demo_engine, "NO-2001")
    move(demo_engine, rma, "dropped_off", "in_transit")
    move(demo_engine, rma, "at_consolidation", at=REAL_NOW - timedelta(days=8))
    page = _form(staff_client("support"), "/staff/norway/")
    assert "cost storage" in page and rma in page
    assert "Build collection" not in page  # support may look, not build


@pytest.mark.parametrize("path", ["/staff/norway/", "/staff/norway/rates", "/staff/norway/settings"])
def test_norway_pages_need_a_login(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"].startswith("/staff/login")


def test_unknown_collection_action_is_404(staff_client):
    admin = staff_client("admin")
    page = admin.get("/staff/norway/")
    from tests.integration.conftest import csrf_of
    response = admin.post("/staff/norway/collections/NO-NONE/explode", data={"_csrf_token": csrf_of(page.text)})
    assert response.status_code == 404 and "Traceback" not in response.text
