"""Webhook endpoints in the back-office: create (secret once), refuse bad input, deactivate, delivery log, re-deliver."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from portal.models import AuditEntry, OutboxMessage, WebhookEndpoint, utcnow
from portal.outbox.dispatcher import claim_due, dispatch_due
from portal.outbox.service import enqueue_webhook_event
from tests.integration.conftest import csrf_of
from tests.integration.outbox_helpers import running_receiver

SECRET_RE = re.compile(r'id="new-secret".*?<code>([A-Za-z0-9_\-]+)</code>', re.S)


@pytest.fixture
def admin(staff_client):
    return staff_client("admin")


def create(client, url: str, event_types=("return.registered",), description: str = "ERP"):
    form = client.get("/staff/webhook-endpoints")
    assert form.status_code == 200
    return client.post("/staff/webhook-endpoints", data={"_csrf_token": csrf_of(form.text), "url": url,
                                                 "event_types": list(event_types), "description": description})


def endpoints_in_db(engine) -> list[WebhookEndpoint]:
    with Session(engine) as s:
        return s.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()


def test_create_shows_the_secret_once_then_only_a_hint(admin, demo_engine):
    response = create(admin, "https://erp.shop.example/hooks/returns", ("return.registered", "refund.issued"))
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    secret = SECRET_RE.search(response.text).group(1)
    [endpoint] = endpoints_in_db(demo_engine)
    assert endpoint.secret == secret and len(secret) >= 43  # token_urlsafe(32)
    assert endpoint.url == "https://erp.shop.example/hooks/returns" and endpoint.active
    assert endpoint.event_types == ["return.registered", "refund.issued"]

    listing = admin.get("/staff/webhook-endpoints")
    detail = admin.get(f"/staff/webhook-endpoints/{endpoint.id}")
    for page in (listing, detail):
        assert page.status_code == 200
        assert secret not in page.text
        assert f"…{secret[-4:]}" in page.text
    assert "https://erp.shop.example/hooks/returns" in listing.text

    with Session(demo_engine) as s:
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "webhook.created")).all()
        assert entry.actor == "admin-0@shop.example" and entry.target == f"webhook:{endpoint.id}"
        assert secret not in str(entry.after) and entry.after["url"] == endpoint.url


def test_all_events_wins_over_single_ones(admin, demo_engine):
    assert create(admin, "http://10.0.0.5:8080/in", ("*", "refund.issued")).status_code == 201
    assert endpoints_in_db(demo_engine)[0].event_types == ["*"]


@pytest.mark.parametrize("url, message", [
    ("ftp://erp.shop.example/in", "must start with https://"),
    ("javascript:alert(1)", "must start with https://"),
    ("", "Enter the URL"),
    ("https://", "needs a host name"),
    ("https://erp.shop.example:99999/in", "port"),
    ("https://erp.shop.example/a b", "spaces"),
])
def test_bad_url_is_refused_next_to_the_field(admin, demo_engine, url, message):
    response = create(admin, url)
    assert response.status_code == 400
    error = re.search(r'<p class="error" id="url-error">([^<]+)</p>', response.text)
    assert error and message in error.group(1)
    assert 'aria-describedby="url-error"' in response.text
    assert 'value="return.registered" checked' in response.text  # the rest of the form is kept
    assert endpoints_in_db(demo_engine) == []


def test_no_event_chosen_is_refused(admin, demo_engine):
    response = create(admin, "https://erp.shop.example/in", event_types=())
    assert response.status_code == 400
    assert 'id="event_types-error"' in response.text and "at least one event" in response.text
    assert 'value="https://erp.shop.example/in"' in response.text
    assert endpoints_in_db(demo_engine) == []


def test_unknown_event_type_is_refused(admin, demo_engine):
    response = create(admin, "https://erp.shop.example/in", event_types=("return.registered", "order.deleted"))
    assert response.status_code == 400 and "Unknown event type: order.deleted" in response.text
    assert endpoints_in_db(demo_engine) == []


def test_create_without_csrf_is_refused(admin, demo_engine):
    response = admin.post("/staff/webhook-endpoints", data={"url": "https://erp.shop.example/in", "event_types": ["*"]})
    assert response.status_code == 403
    assert endpoints_in_db(demo_engine) == []


def test_every_form_is_csrf_protected(admin, demo_engine):
    assert create(admin, "https://erp.shop.example/in", ("*",)).status_code == 201
    with Session(demo_engine) as s:
        [queued] = enqueue_webhook_event(s, "return.received", {"rma": "R4KX9P2T"}, unique="csrf:1")
        queued.state = "dead"
        s.commit()
        mid = queued.id
    [endpoint] = endpoints_in_db(demo_engine)
    detail = admin.get(f"/staff/webhook-endpoints/{endpoint.id}")
    assert detail.text.count('name="_csrf_token" value=""') == 0  # a real token in every form
    assert len(re.findall(r'name="_csrf_token" value="[^"]+"', detail.text)) == 4  # logout, language, deactivate, re-deliver
    assert admin.post(f"/staff/webhook-endpoints/{endpoint.id}/deactivate").status_code == 403
    assert admin.post(f"/staff/webhook-endpoints/deliveries/{mid}/redeliver").status_code == 403
    assert admin.post(f"/staff/webhook-endpoints/{endpoint.id}/deactivate", data={"_csrf_token": "forged"}).status_code == 403
    assert endpoints_in_db(demo_engine)[0].active is True
    with Session(demo_engine) as s:
        assert s.get(OutboxMessage, mid).state == "dead"


def test_deactivate_stops_new_deliveries(admin, demo_engine):
    assert create(admin, "https://erp.shop.example/in", ("*",)).status_code == 201
    [endpoint] = endpoints_in_db(demo_engine)
    page = admin.get(f"/staff/webhook-endpoints/{endpoint.id}")
    response = admin.post(f"/staff/webhook-endpoints/{endpoint.id}/deactivate", data={"_csrf_token": csrf_of(page.text)},
                          follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith(f"/staff/webhook-endpoints/{endpoint.id}")
    after = admin.get(response.headers["location"])
    assert "deactivated" in after.text and "Deactivate this endpoint" not in after.text
    assert endpoints_in_db(demo_engine)[0].active is False
    with Session(demo_engine) as s:
        assert enqueue_webhook_event(s, "return.registered", {"rma": "R4KX9P2T"}, unique="x") == []
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "webhook.deactivated")).one()


def test_unknown_endpoint_is_404(admin):
    assert admin.get("/staff/webhook-endpoints/999").status_code == 404
    page = admin.get("/staff/webhook-endpoints")
    assert admin.post("/staff/webhook-endpoints/999/deactivate", data={"_csrf_token": csrf_of(page.text)}).status_code == 404


@pytest.mark.parametrize("role", ["warehouse", "support"])
def test_other_roles_cannot_see_webhooks(staff_client, role):
    assert staff_client(role).get("/staff/webhook-endpoints", follow_redirects=False).status_code == 403


def test_delivery_log_and_redeliver_a_dead_message(admin, demo_engine, settings):
    with running_receiver() as receiver:
        created = create(admin, receiver.url, ("refund.issued",))
        receiver.secret = SECRET_RE.search(created.text).group(1)
        [endpoint] = endpoints_in_db(demo_engine)
        with Session(demo_engine) as s:
            [queued] = enqueue_webhook_event(s, "refund.issued", {"rma": "R4KX9P2T", "amount_minor": 29900},
                                             unique="refund:7")
            s.commit()
            mid = queued.id
        receiver.script = [410]  # the merchant's receiver refuses it: dead letter
        now = utcnow()
        assert dispatch_due(demo_engine, now=now, settings=settings).dead == 1

        log = admin.get(f"/staff/webhook-endpoints/{endpoint.id}")
        row = re.search(rf'<tr id="delivery-{mid}">(.*?)</tr>', log.text, re.S).group(1)
        assert "refund.issued" in row and ">dead<" in row and "HTTP 410" in row and "Re-deliver" in row
        listing = admin.get("/staff/webhook-endpoints")
        assert "1 dead" in listing.text

        response = admin.post(f"/staff/webhook-endpoints/deliveries/{mid}/redeliver", data={"_csrf_token": csrf_of(log.text)},
                              follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/staff/webhook-endpoints/{endpoint.id}?redelivered={mid}"
        assert f"Delivery #{mid} is queued again" in admin.get(response.headers["location"]).text
        with Session(demo_engine) as s:
            m = s.get(OutboxMessage, mid)
            assert (m.state, m.attempts, m.last_error) == ("pending", 0, "")
            entry = s.exec(select(AuditEntry).where(AuditEntry.action == "webhook.redelivered")).one()
            assert entry.before["state"] == "dead" and entry.target == f"outbox:{mid}"

        report = dispatch_due(demo_engine, now=utcnow() + timedelta(seconds=1), settings=settings)
        assert report.sent == 1
        assert len(receiver.requests) == 2 and receiver.requests[1].signature_ok
        assert receiver.requests[0].headers["x-portal-delivery"] == receiver.requests[1].headers["x-portal-delivery"]
    with Session(demo_engine) as s:
        assert s.get(OutboxMessage, mid).state == "sent"
    listing = admin.get("/staff/webhook-endpoints")
    row = re.search(rf'<tr id="endpoint-{endpoint.id}">(.*?)</tr>', listing.text, re.S).group(1)
    assert "1 sent" in row and re.search(r"<td>\d{1,2} \w{3} \d{4}, \d\d:\d\d", row)  # last sent, local time


def test_redeliver_refuses_unknown_and_in_flight_messages(admin, demo_engine):
    assert create(admin, "https://erp.shop.example/in", ("*",)).status_code == 201
    with Session(demo_engine) as s:
        [queued] = enqueue_webhook_event(s, "return.received", {"rma": "R4KX9P2T"}, unique="recv:1")
        s.commit()
        mid = queued.id
    [claimed] = claim_due(demo_engine, utcnow() + timedelta(seconds=1))  # a worker is sending it now
    assert claimed.id == mid
    page = admin.get("/staff/webhook-endpoints")
    token = csrf_of(page.text)
    busy = admin.post(f"/staff/webhook-endpoints/deliveries/{mid}/redeliver", data={"_csrf_token": token})
    assert busy.status_code == 409 and "being sent right now" in busy.text
    with Session(demo_engine) as s:
        m = s.get(OutboxMessage, mid)
        assert (m.state, m.attempts) == ("sending", 1)
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "webhook.redelivered")).all() == []
    assert admin.post("/staff/webhook-endpoints/deliveries/99999/redeliver", data={"_csrf_token": token}).status_code == 404
