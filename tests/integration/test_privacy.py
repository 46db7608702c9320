"""GDPR: retention anonymises old customers everywhere their data lives (figures kept); support exports a customer's data."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from portal.jobs.scheduler import guarded, periodic_jobs
from portal.models import (
    AuditEntry, CarrierEvent, Consent, Customer, DeliveryEvent, NotificationRule, NotificationTemplate, Order,
    OrderLine, OutboxMessage, Refund, Return, ReturnEvent, ReturnLine, StoredDocument, utcnow,
)
from portal.outbox.dispatcher import dispatch_due
from portal.privacy.retention import months_before
from portal.returns import labels as return_labels
from portal.returns import policy, service
from portal.staff.accounts import StaffPrincipal
from portal.staff.return_view import add_note
from tests.integration.conftest import csrf_of, run_cli

NOW = datetime.now(timezone.utc)
LONG_AGO = NOW - timedelta(days=3 * 365)
OLD = {  # the customer whose business ended three years ago
    "first_name": "Greta", "last_name": "Gammelgård", "email": "greta.gammelgard@example.se",
    "phone": "070-111 22 33", "street": "Ödegatan 17", "postcode": "413 01", "city": "Kungälv", "country": "SE",
}
TRACES = ["greta", "gammelgård", "greta.gammelgard@example.se", "+46701112233", "070-111 22 33",
          "ödegatan", "413 01", "kungälv"]
RECENT = {"first_name": "Rut", "last_name": "Nyberg", "email": "rut.nyberg@example.se", "phone": "070-999 88 77",
          "street": "Nygatan 2", "postcode": "111 22", "city": "Stockholm", "country": "SE"}
NEW_ORDER = {"first_name": "Nils", "last_name": "Nyköp", "email": "nils.nykop@example.se", "phone": "070-555 44 33",
             "street": "Köpvägen 9", "postcode": "333 44", "city": "Malmö", "country": "SE"}
OPEN = {"first_name": "Otto", "last_name": "Öppen", "email": "otto.oppen@example.se", "phone": None,
        "street": "Väntvägen 5", "postcode": "222 33", "city": "Lund", "country": "SE"}


@pytest.fixture
def retention_settings(settings, tmp_path):
    return replace(settings, label_storage="directory", storage_dir=tmp_path / "storage", mail_dir=tmp_path / "mail")


def _notification_rule(engine) -> None:
    """A live rule, so registering a return queues a real e-mail and SMS that name the customer."""
    with Session(engine) as s:
        rule = NotificationRule(name="registered", trigger="return.registered", channels=["email", "sms"], active=True)
        s.add(rule)
        s.flush()
        s.add(NotificationTemplate(rule_id=rule.id, language="sv", subject="Retur {{ rma }}",
                                   body_text="Hej {{ first_name }} {{ last_name }}! {{ status_link }}",
                                   sms_text="Hej {{ first_name }}, retur {{ rma }}"))
        s.commit()


def _customer_with_return(engine, settings, number: str, person: dict, final_status: str, comment: str) -> dict:
    """Customer, order, a return registered through the service (notifications fire), a label stored, a staff
    note, a carrier scan, a consent, an issued refund when the return ends closed. Returns their ids."""
    with Session(engine) as s:
        s.info["settings"] = settings
        customer = Customer(language="sv", **person)
        s.add(customer)
        s.flush()
        order = Order(number=number, customer_id=customer.id, email=person["email"], postcode=person["postcode"],
                      country="SE", currency="SEK", placed_at=NOW - timedelta(days=5), delivered_at=NOW - timedelta(days=3))
        s.add(order)
        s.flush()
        line = OrderLine(order_id=order.id, line_no=1, sku=f"SKU-{number}", name="Ullkofta", quantity=2,
                         unit_price_minor=59900)
        s.add(line)
        s.flush()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "2", "too_small", comment)], resolution="refund",
            language="sv", form_nonce=f"nonce-{number}-0123456789"), date.today())
        return_labels.label_document(s, ret, "a4", settings)
        add_note(s, ret, StaffPrincipal(1, "support@shop.example", "Sam", "support"),
                 f"{person['first_name']} called from {person['phone'] or 'a hidden number'}, lives in {person['city']}")
        s.add(CarrierEvent(carrier="postnord", event_id=f"ev-{number}", tracking_number=f"TRK{number}", return_id=ret.id,
                           code="DELIVERED", occurred_at=NOW, raw={"recipient": {"name": person["first_name"]},
                                                                   "note": f"left at {person['street']}"}))
        s.add(Consent(customer_id=customer.id, channel="email", granted=True, source=f"checkout by {person['email']}"))
        for state in ("dropped_off", "arrived", "inspected", "resolved", final_status):
            if state == "closed":
                s.add(Refund(return_id=ret.id, amount_minor=119800, currency="SEK", state="issued", issued_at=NOW,
                             breakdown={"total_minor": 119800}))
            service.advance(s, ret, state, "warehouse", f"test.{state}")
        s.commit()
        ids = {"customer": customer.id, "order": order.id, "return": ret.id, "rma": ret.rma, "token": ret.status_token}
    dispatch_due(engine, settings=settings)  # the e-mail goes (to the mail folder); the SMS waits (no provider)
    with Session(engine) as s:
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.return_id == ids["return"],
                                                 OutboxMessage.channel == "sms")).first()
        if sms is not None:  # a delivery report as the SMS webhook stores it
            s.add(DeliveryEvent(outbox_id=sms.id, return_id=ids["return"], kind="delivered",
                                detail={"provider": "46elks", "to": sms.destination}))
            s.commit()
    return ids


def _backdate(engine, ids: dict, when: datetime, *, keep_order_recent: bool = False) -> None:
    """Move everything of this customer to `when`, as if it happened then."""
    with engine.begin() as conn:
        def at(table, column, where):
            conn.execute(sa.update(table).where(where).values({column: when}))

        at(Customer.__table__, "created_at", Customer.__table__.c.id == ids["customer"])
        if not keep_order_recent:
            for column in ("placed_at", "delivered_at", "created_at", "updated_at"):
                at(Order.__table__, column, Order.__table__.c.id == ids["order"])
        for column in ("created_at", "updated_at"):
            at(Return.__table__, column, Return.__table__.c.id == ids["return"])
        at(ReturnEvent.__table__, "at", ReturnEvent.__table__.c.return_id == ids["return"])
        at(Consent.__table__, "at", Consent.__table__.c.customer_id == ids["customer"])
        at(OutboxMessage.__table__, "created_at", OutboxMessage.__table__.c.return_id == ids["return"])


def _world(engine, settings) -> dict:
    _notification_rule(engine)
    old = _customer_with_return(engine, settings, "OLD-1", OLD, "closed", "Ring Greta på 070-111 22 33 om den")
    recent = _customer_with_return(engine, settings, "NEW-1", RECENT, "closed", "Fel storlek")
    still_open = _customer_with_return(engine, settings, "OPEN-1", OPEN, "resolved", "Väntar på pengarna")
    new_order = _customer_with_return(engine, settings, "NEWORDER-1", NEW_ORDER, "closed", "")
    _backdate(engine, old, LONG_AGO)
    _backdate(engine, still_open, LONG_AGO)  # old, but its return is not closed
    _backdate(engine, new_order, LONG_AGO, keep_order_recent=True)
    return {"old": old, "recent": recent, "open": still_open, "new_order": new_order}


def _database_text(engine) -> str:
    """Every value in every table, as one lower-case text (binary columns decoded loosely)."""
    parts = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("latin-1")
                    parts.append(json.dumps(value, default=str, ensure_ascii=False) if isinstance(value, (dict, list))
                                 else str(value))
    return "\n".join(parts).lower()


def _figures(engine) -> tuple:
    with engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(Return.__table__)).scalar(),
            conn.execute(sa.select(sa.func.sum(ReturnLine.__table__.c.quantity), sa.func.count())).one(),
            conn.execute(sa.select(sa.func.sum(Refund.__table__.c.amount_minor))).scalar(),
            sorted(conn.execute(sa.select(ReturnLine.__table__.c.reason)).scalars()),
            sorted(conn.execute(sa.select(Order.__table__.c.country, OrderLine.__table__.c.sku)
                                .join(OrderLine.__table__)).all()),
        )


def _cli(args, env: dict, monkeypatch):
    return run_cli(args, env, monkeypatch)


def _env(settings) -> dict:
    return {"DATABASE_URL": settings.database_url, "LABEL_STORAGE": "directory", "STORAGE_DIR": str(settings.storage_dir),
            "MAIL_DIR": str(settings.mail_dir), "RETENTION_MONTHS": "24"}


def test_months_before_keeps_the_day_or_takes_the_months_last():
    assert months_before(datetime(2026, 1, 15, 3, 0, tzinfo=timezone.utc), 24) == datetime(2024, 1, 15, 3, 0, tzinfo=timezone.utc)
    assert months_before(datetime(2026, 3, 31, tzinfo=timezone.utc), 1) == datetime(2026, 2, 28, tzinfo=timezone.utc)
    assert months_before(datetime(2024, 3, 31, tzinfo=timezone.utc), 1) == datetime(2024, 2, 29, tzinfo=timezone.utc)
    assert months_before(datetime(2026, 1, 31, tzinfo=timezone.utc), 13) == datetime(2024, 12, 31, tzinfo=timezone.utc)


def test_anonymise_removes_personal_data_everywhere_and_keeps_the_figures(demo_engine, retention_settings, monkeypatch,
                                                                            client):
    engine, settings = demo_engine, retention_settings
    world = _world(engine, settings)
    old = world["old"]
    before_text, before_figures = _database_text(engine), _figures(engine)
    assert [t for t in TRACES if t not in before_text] == [], "the scenario must put the data where we look for it"
    label_files = list((settings.storage_dir / "labels").iterdir())
    assert any(f"return-{old['return']}-" in f.name for f in label_files)

    dry = _cli(["anonymise", "--dry-run"], _env(settings), monkeypatch)
    assert dry.exit_code == 0, dry.output
    assert "1 customers would be anonymised" in dry.output and "Dry run" in dry.output
    assert _database_text(engine) == before_text

    result = _cli(["anonymise"], _env(settings), monkeypatch)
    assert result.exit_code == 0, result.output
    assert "1 customers anonymised" in result.output and "1 stored labels deleted" in result.output

    after_text = _database_text(engine)
    left = [trace for trace in TRACES if trace in after_text]
    assert left == [], f"personal data left in the database: {left}"
    for person in (RECENT, OPEN):  # the others keep theirs
        assert person["email"] in after_text and person["street"].lower() in after_text
    assert _figures(engine) == before_figures  # returns, lines, quantities, amounts, reasons, countries, SKUs
    assert not [f for f in (settings.storage_dir / "labels").iterdir() if f"return-{old['return']}-" in f.name]

    with Session(engine) as s:
        customer = s.get(Customer, old["customer"])
        assert customer.anonymised_at is not None and customer.country == "SE" and customer.language == "sv"
        assert (customer.email, customer.phone, customer.first_name, customer.street, customer.postcode, customer.city) \
            == ("", None, "", "", "", "")
        order = s.get(Order, old["order"])
        assert (order.email, order.postcode, order.country, order.currency) == ("", "", "SE", "SEK")
        assert s.exec(select(StoredDocument).where(StoredDocument.owner == f"return:{old['return']}")).all() == []
        consent = s.exec(select(Consent).where(Consent.customer_id == old["customer"])).one()
        assert consent.granted and consent.channel == "email" and consent.source == ""
        messages = s.exec(select(OutboxMessage).where(OutboxMessage.return_id == old["return"],
                                                      OutboxMessage.channel.in_(("email", "sms")))).all()
        assert {m.channel for m in messages} == {"email", "sms"}
        assert all(m.destination == "[anonymised]" and m.payload == {"anonymised": True} for m in messages)
        assert {m.channel: m.state for m in messages} == {"email": "sent", "sms": "dead"}  # nobody to send it to now
        timeline = [e.type for e in service.events_of(s, old["return"])]
        assert "customer.anonymised" in timeline and "note.added" in timeline and "notification.sent" in timeline
        for name in ("recent", "open", "new_order"):
            assert s.get(Customer, world[name]["customer"]).anonymised_at is None, name
        audits = s.exec(select(AuditEntry).where(AuditEntry.action == "gdpr.anonymised")).all()
        assert len(audits) == 1 and audits[0].actor == "cli"
        assert audits[0].after["count"] == 1 and audits[0].after["customer_ids"] == [old["customer"]]

    again = _cli(["anonymise"], _env(settings), monkeypatch)  # idempotent
    assert again.exit_code == 0 and "0 customers anonymised" in again.output
    assert _database_text(engine).count("[anonymised]") == after_text.count("[anonymised]")

    # The consumer's status page still works, without personal data; the order can no longer be looked up.
    status = client.get(f"/r/{old['rma']}/{old['token']}")
    assert status.status_code == 200 and old["rma"] in status.text
    assert not [trace for trace in TRACES if trace in status.text.lower()]
    for credential in (OLD["email"], OLD["postcode"], "-", " . "):
        form = client.get("/")
        found = client.post("/", data={"_csrf_token": csrf_of(form.text), "order_number": "OLD-1",
                                       "credential": credential}, follow_redirects=False)
        assert found.status_code in (400, 404), credential


def test_staff_page_and_export_of_an_anonymised_customer_show_no_personal_data(demo_engine, retention_settings,
                                                                                 staff_client):
    engine, settings = demo_engine, retention_settings
    world = _world(engine, settings)
    with Session(engine) as s:
        from portal.privacy.retention import anonymise_expired

        report = anonymise_expired(s, utcnow(), 24, return_labels.storage_for(settings))
        s.commit()
    assert report.customer_ids == [world["old"]["customer"]]
    support = staff_client("support")
    page = support.get(f"/staff/returns/{world['old']['rma']}")
    assert page.status_code == 200 and 'id="customer-anonymised"' in page.text
    assert "resend-link" not in page.text  # no address to send the status link to
    assert not [trace for trace in TRACES if trace in page.text.lower()]
    exported = support.get(f"/staff/customers/{world['old']['customer']}/export")
    assert exported.status_code == 200
    data = exported.json()
    assert data["customer"]["anonymised_at"] and data["customer"]["country"] == "SE"
    assert [line["quantity"] for line in data["return_lines"]] == [2]
    assert not [trace for trace in TRACES if trace in exported.text.lower()]


def test_daily_job_is_scheduled_and_runs_under_the_job_lock(demo_engine, retention_settings):
    engine, settings = demo_engine, replace(retention_settings, retention_months=24)
    world = _world(engine, settings)
    jobs = {job_id: (func, trigger) for job_id, _, func, trigger in periodic_jobs(settings)}
    assert "gdpr-retention" in jobs
    func, trigger = jobs["gdpr-retention"]
    assert str(trigger).startswith("cron[") and "hour='3'" in str(trigger)
    assert guarded("gdpr-retention", func, engine) is True
    with Session(engine) as s:
        assert s.get(Customer, world["old"]["customer"]).anonymised_at is not None
        assert s.get(Customer, world["recent"]["customer"]).anonymised_at is None
        audits = s.exec(select(AuditEntry).where(AuditEntry.action == "gdpr.anonymised")).all()
        assert [(a.actor, a.after["count"]) for a in audits] == [("system:retention", 1)]


def test_a_shorter_retention_period_takes_more_customers(demo_engine, retention_settings, monkeypatch):
    engine, settings = demo_engine, retention_settings
    world = _world(engine, settings)
    with engine.begin() as conn:  # the "open" customer's return was closed 13 months ago
        conn.execute(sa.update(Return.__table__).where(Return.__table__.c.id == world["open"]["return"])
                     .values(status="closed", updated_at=NOW - timedelta(days=400)))
        conn.execute(sa.update(Refund.__table__).values(state="issued"))
    default = _cli(["anonymise", "--dry-run"], _env(settings), monkeypatch)
    assert "1 customers would be anonymised" in default.output  # only the old one at 24 months
    shorter = _cli(["anonymise", "--dry-run"], dict(_env(settings), RETENTION_MONTHS="12"), monkeypatch)
    assert "2 customers would be anonymised" in shorter.output and "RETENTION_MONTHS=12" in shorter.output
    bad = _cli(["anonymise"], dict(_env(settings), RETENTION_MONTHS="two years"), monkeypatch)
    assert bad.exit_code != 0 and "RETENTION_MONTHS must be a whole number" in bad.output


# --- Customer data export -----------------------------------------------------------------------


def test_support_downloads_everything_about_a_customer_and_it_is_audited(demo_engine, retention_settings, staff_client):
    engine, settings = demo_engine, retention_settings
    _notification_rule(engine)
    ids = _customer_with_return(engine, settings, "EXP-1", OLD, "closed", "Lite för liten")
    support = staff_client("support")
    page = support.get(f"/staff/returns/{ids['rma']}")
    assert f'href="/staff/customers/{ids["customer"]}/export"' in page.text
    response = support.get(f"/staff/customers/{ids['customer']}/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f'filename="customer-{ids["customer"]}-data-' in disposition
    data = response.json()
    assert data["customer"]["email"] == OLD["email"] and data["customer"]["street"] == OLD["street"]
    assert [o["number"] for o in data["orders"]] == ["EXP-1"]
    assert data["orders"][0]["lines"][0]["sku"] == "SKU-EXP-1" and data["orders"][0]["lines"][0]["vat_rate"] == "0.2500"
    assert [r["rma"] for r in data["returns"]] == [ids["rma"]]
    assert data["return_lines"][0]["comment"] == "Lite för liten" and data["return_lines"][0]["quantity"] == 2
    assert {"return.registered", "note.added", "notification.sent", "test.closed"} <= {e["type"] for e in data["events"]}
    assert [(r["amount_minor"], r["currency"], r["state"]) for r in data["refunds"]] == [(119800, "SEK", "issued")]
    assert [c["source"] for c in data["consents"]] == [f"checkout by {OLD['email']}"]
    texts = {n["channel"]: n["payload"] for n in data["notifications"]}
    assert texts["email"]["text"].startswith("Hej Greta Gammelgård!") and texts["sms"]["text"].startswith("Hej Greta")
    assert {"queued", "sent", "delivered"} <= {d["kind"] for d in data["delivery_events"]}
    assert data["carrier_events"][0]["raw"]["note"] == f"left at {OLD['street']}"
    with Session(engine) as s:
        audits = s.exec(select(AuditEntry).where(AuditEntry.action == "customer.exported")).all()
        assert len(audits) == 1
        assert audits[0].actor.startswith("support-") and audits[0].target == f"customer:{ids['customer']}"
        assert audits[0].after["returns"] == 1 and audits[0].client_ip == "testclient"
        assert OLD["email"] not in json.dumps(audits[0].after)  # who and which customer, not their data


def test_export_is_for_support_and_admin_only(demo_engine, retention_settings, staff_client, client):
    ids = _customer_with_return(demo_engine, retention_settings, "EXP-2", RECENT, "closed", "")
    url = f"/staff/customers/{ids['customer']}/export"
    assert staff_client("admin").get(url).status_code == 200
    warehouse = staff_client("warehouse")
    assert warehouse.get(url).status_code == 403
    assert 'id="customer-export"' not in warehouse.get(f"/staff/returns/{ids['rma']}").text
    anonymous = client.get(url, follow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/staff/login")
    assert staff_client("support").get("/staff/customers/999999/export").status_code == 404
    with Session(demo_engine) as s:
        audited = s.exec(select(AuditEntry.actor).where(AuditEntry.action == "customer.exported")).all()
        assert len(audited) == 1 and audited[0].startswith("admin-")  # refusals export nothing and log no export


def test_an_anonymised_customers_order_sent_again_is_updated_without_taking_the_personal_data_back(
        demo_engine, retention_settings, client):
    from tests.integration.test_api_v1 import auth, make_key

    engine, settings = demo_engine, retention_settings
    world = _world(engine, settings)
    with Session(engine) as s:
        from portal.privacy.retention import anonymise_expired

        assert anonymise_expired(s, utcnow(), 24, return_labels.storage_for(settings)).customer_ids == [
            world["old"]["customer"]]
        s.commit()
    body = {"customer": dict(OLD, language="sv"), "currency": "SEK", "placed_at": (NOW - timedelta(days=5)).isoformat(),
            "delivered_at": (NOW - timedelta(days=2)).isoformat(),  # one figure changed by the shop
            "lines": [{"line_no": 1, "sku": "SKU-OLD-1", "name": "Ullkofta", "quantity": 2, "unit_price_minor": 59900,
                       "vat_rate": "0.25"}]}
    key = make_key(engine)
    sent = client.put("/api/v1/orders/OLD-1", json=body, headers=auth(key))
    assert sent.status_code == 200, sent.text
    assert sent.json()["changed"] is True and sent.json()["personal_data_withheld"] is True
    bulk = client.post("/api/v1/orders/bulk", json={"orders": [dict(body, number="OLD-1")]}, headers=auth(key))
    assert bulk.status_code == 200 and bulk.json()["results"][0]["personal_data_withheld"] is True
    assert [trace for trace in TRACES if trace in _database_text(engine)] == []
    with Session(engine) as s:
        order = s.get(Order, world["old"]["order"])
        assert order.delivered_at.date() == (NOW - timedelta(days=2)).date() and (order.email, order.postcode) == ("", "")
    # Someone else's order is stored as before, personal data and all.
    other = client.put("/api/v1/orders/NEW-1", json=dict(body, customer=dict(RECENT, language="sv")), headers=auth(key))
    assert other.status_code == 200 and other.json()["personal_data_withheld"] is False
    assert RECENT["email"] in _database_text(engine)
