"""Carrier tracking: signed webhooks (incl. replays), idempotency, forward-only states, proof of sending,
and polling against a real loopback HTTP server that is slow, fails with 500 and answers malformed JSON."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlmodel import Session, select

from portal.carriers import adapters, polling
from portal.carriers.service import apply_carrier_event
from portal.models import CarrierEvent, Order, OrderLine, Return, ReturnEvent
from portal.outbox import signing
from portal.returns import policy, service

SECRET = "carrier-secret-0123456789abcdef"


def register(engine, number: str, nonce: str, tracking: str) -> int:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=nonce), date.today())
        ret.tracking_number = tracking
        s.add(ret)
        s.commit()
        return ret.id


def get_return(engine, return_id: int) -> Return:
    with Session(engine) as s:
        return s.get(Return, return_id)


def post_signed(client, carrier: str, payload, secret: str = SECRET, ts: int | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post(f"/webhooks/carriers/{carrier}", content=body,
                       headers={signing.SIGNATURE_HEADER: signing.sign(secret, body, ts), "Content-Type": "application/json"})


def scan(event_id: str, tracking: str, code: str, at: datetime) -> dict:
    return {"event_id": event_id, "tracking_number": tracking, "code": code, "occurred_at": at.isoformat()}


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("CARRIER_WEBHOOK_SECRET_POSTNORD", SECRET)


def test_adapters_map_codes():
    pn = adapters.postnord()
    assert [pn.map(c) for c in ("AA", "en_route", "NO_CONSOL", "DELIVERED", "DELAYED", "EE", "???")] == \
        ["dropped_off", "in_transit", "at_consolidation", "arrived", "exception", None, None]
    generic = adapters.generic("bring", {"RECEIVED": "dropped_off", "IN_TRANSIT": "in_transit", "DELIVERED": "arrived"})
    assert generic.map("received") == "dropped_off" and generic.map("X") is None
    with pytest.raises(ValueError):
        adapters.generic("bad", {"X": "teleported"})


def test_webhook_signature_replay_and_bad_input(client, demo_engine, secret_env):
    rid = register(demo_engine, "SE-1001", "nonce-wh-0123456789", "PN100000001SE")
    at = datetime.now(timezone.utc) - timedelta(hours=1)
    event = scan("ev-1", "PN100000001SE", "AA", at)
    assert post_signed(client, "postnord", event, secret="wrong-secret").status_code == 401
    old = post_signed(client, "postnord", event, ts=int(time.time()) - 301)
    assert old.status_code == 401 and "window" in old.json()["detail"]
    no_sig = client.post("/webhooks/carriers/postnord", content=json.dumps(event).encode())
    assert no_sig.status_code == 401 and no_sig.headers["content-type"].startswith("application/problem+json")
    assert post_signed(client, "nosuchcarrier", event).status_code == 404
    junk = post_signed(client, "postnord", None, raw=b"{not json")
    assert junk.status_code == 400
    missing = post_signed(client, "postnord", {"event_id": "x", "code": "AA"})
    assert missing.status_code == 400 and {e["field"] for e in missing.json()["errors"]} == {"tracking_number", "occurred_at"}
    with Session(demo_engine) as s:
        assert s.exec(select(CarrierEvent)).all() == []
    ok = post_signed(client, "postnord", event)
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"] == [{"event_id": "ev-1", "duplicate": False, "matched": True, "mapped_state": "dropped_off", "moved": True}]
    again = post_signed(client, "postnord", event)
    assert again.status_code == 200 and again.json()["results"][0]["duplicate"] is True
    ret = get_return(demo_engine, rid)
    assert ret.status == "dropped_off" and ret.proof_of_sending_at == at
    with Session(demo_engine) as s:
        stored = s.exec(select(CarrierEvent)).all()
        assert len(stored) == 1 and stored[0].raw["code"] == "AA" and stored[0].return_id == rid
        assert len(s.exec(select(ReturnEvent).where(ReturnEvent.return_id == rid, ReturnEvent.type == "parcel.dropped_off")).all()) == 1


def test_unconfigured_carrier_secret_refuses(client, demo_engine, monkeypatch):
    monkeypatch.delenv("CARRIER_WEBHOOK_SECRET_POSTNORD", raising=False)
    response = post_signed(client, "postnord", scan("e", "T", "AA", datetime.now(timezone.utc)))
    assert response.status_code == 401


def test_forward_only_and_proof_of_sending(client, demo_engine, secret_env):
    rid = register(demo_engine, "SE-1001", "nonce-fw-0123456789", "PN200000002SE")
    t0 = datetime.now(timezone.utc) - timedelta(days=2)
    batch = {"events": [scan("e-transit", "PN200000002SE", "EN_ROUTE", t0 + timedelta(hours=5)),
                        scan("e-arrived", "PN200000002SE", "DELIVERED", t0 + timedelta(days=1))]}
    assert post_signed(client, "postnord", batch).status_code == 200
    ret = get_return(demo_engine, rid)
    assert ret.status == "arrived" and ret.arrived_at == t0 + timedelta(days=1)
    assert ret.proof_of_sending_at == t0 + timedelta(hours=5)
    # a late "in transit" and an earlier drop-off scan arriving after "delivered"
    late = {"events": [scan("e-late", "PN200000002SE", "71", t0 + timedelta(hours=20)),
                       scan("e-first", "PN200000002SE", "AA", t0)]}
    out = post_signed(client, "postnord", late).json()["results"]
    assert [r["moved"] for r in out] == [False, False]
    ret = get_return(demo_engine, rid)
    assert ret.status == "arrived" and ret.proof_of_sending_at == t0  # the earliest scan is the proof
    with Session(demo_engine) as s:
        ignored = [e.data for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == rid)) if "ignored_state" in e.data]
        assert {d["ignored_state"] for d in ignored} == {"in_transit", "dropped_off"}
        assert len(s.exec(select(CarrierEvent).where(CarrierEvent.tracking_number == "PN200000002SE")).all()) == 4


def test_consolidation_only_for_norway_and_exceptions_keep_state(demo_engine):
    no_id = register(demo_engine, "NO-2001", "nonce-no-0123456789", "PN300000003NO")
    se_id = register(demo_engine, "SE-1004", "nonce-se-0123456789", "PN300000004SE")
    now = datetime.now(timezone.utc)
    with Session(demo_engine) as s:
        apply_carrier_event(s, "postnord", "c1", "PN300000003NO", "NO_CONSOL", now, {})
        apply_carrier_event(s, "postnord", "c2", "PN300000004SE", "NO_CONSOL", now, {})
        apply_carrier_event(s, "postnord", "c3", "PN300000004SE", "DELAYED", now + timedelta(hours=1), {})
        unknown = apply_carrier_event(s, "postnord", "c4", "UNKNOWN-TRACKING", "AA", now, {"x": 1})
        s.commit()
    assert get_return(demo_engine, no_id).status == "at_consolidation"
    assert get_return(demo_engine, se_id).status == "in_transit"
    assert unknown.return_id is None and not unknown.duplicate
    with Session(demo_engine) as s:
        assert s.exec(select(ReturnEvent).where(ReturnEvent.return_id == se_id, ReturnEvent.type == "parcel.exception")).one()


# --- polling against a real loopback tracking API ---------------------------------------------------------------


class TrackingApi(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}
    t0 = datetime.now(timezone.utc) - timedelta(days=1)

    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):  # noqa: N802
        tracking = self.path.rsplit("/", 1)[-1]
        n = TrackingApi.calls[tracking] = TrackingApi.calls.get(tracking, 0) + 1
        if tracking.startswith("SLOW"):
            time.sleep(0.6)
        if tracking.startswith("FLAKY") and n == 1:
            return self._send(500, b"boom")
        if tracking.startswith("DOWN"):
            return self._send(503, b"down")
        if tracking.startswith("BROKEN"):
            return self._send(200, b'{"events": [')
        if not tracking.startswith(("GOOD", "FLAKY", "SLOW")):
            return self._send(404, b'{"events": []}')
        events = [{"event_id": f"{tracking}-2", "code": "DELIVERED", "occurred_at": (self.t0 + timedelta(hours=8)).isoformat()},
                  {"event_id": f"{tracking}-1", "code": "AA", "occurred_at": self.t0.isoformat()},
                  {"event_id": 5, "code": None}]
        return self._send(200, json.dumps({"events": events}).encode())

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def tracking_server():
    TrackingApi.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), TrackingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_polling_survives_slow_failing_and_malformed_answers(demo_engine, tracking_server):
    ids = {t: register(demo_engine, n, f"nonce-{t}-0123456789", t) for t, n in
           (("GOOD1", "SE-1001"), ("FLAKY1", "DK-3001"), ("SLOW1", "FI-4001"), ("BROKEN1", "SE-1004"), ("DOWN1", "NO-2001"))}
    sleeps: list[float] = []
    with httpx.Client() as client:
        result = polling.poll_tracking(demo_engine, datetime.now(timezone.utc), client, tracking_server, timeout=0.3,
                                       retries=2, backoff_s=0.01, rate_per_s=1000, sleep=sleeps.append)
    assert get_return(demo_engine, ids["GOOD1"]).status == "arrived"
    good = get_return(demo_engine, ids["GOOD1"])
    assert good.proof_of_sending_at == TrackingApi.t0 and good.arrived_at == TrackingApi.t0 + timedelta(hours=8)
    assert get_return(demo_engine, ids["FLAKY1"]).status == "arrived"  # 500, then retried
    assert TrackingApi.calls["FLAKY1"] == 2
    assert TrackingApi.calls["SLOW1"] == 3 and TrackingApi.calls["DOWN1"] == 3  # 1 + 2 retries each
    failures = dict((t, why) for t, why in result.failures if t in ids)
    assert "timed out" in failures["SLOW1"] and "503" in failures["DOWN1"] and failures["BROKEN1"] == "malformed JSON"
    for t in ("SLOW1", "BROKEN1", "DOWN1"):
        assert get_return(demo_engine, ids[t]).status == "label_issued"
    assert result.applied == 4 and 0.01 in sleeps and 0.02 in sleeps  # exponential back-off
    # the next round: arrived returns are no longer asked, repeats are duplicates
    TrackingApi.calls = {}
    with httpx.Client() as client:
        polling.poll_tracking(demo_engine, datetime.now(timezone.utc), client, tracking_server, timeout=0.3, retries=0,
                              rate_per_s=1000, sleep=lambda s: None)
    assert "GOOD1" not in TrackingApi.calls and "BROKEN1" in TrackingApi.calls


def test_token_bucket_keeps_the_rate():
    clock = [0.0]
    waits: list[float] = []

    def sleep(s):
        waits.append(s)
        clock[0] += s

    bucket = polling.TokenBucket(rate=4, burst=1, clock=lambda: clock[0], sleep=sleep)
    for _ in range(9):
        bucket.acquire()
    assert clock[0] == pytest.approx(2.0)  # 9 requests at 4/s after the first: 8 * 0.25 s


def test_scheduled_poll_job_reads_the_url_from_the_environment(demo_engine, tracking_server, monkeypatch):
    rid = register(demo_engine, "SE-1001", "nonce-job-0123456789", "GOOD9")
    monkeypatch.delenv("CARRIER_TRACKING_URL_POSTNORD", raising=False)
    assert polling.poll_job(demo_engine, datetime.now(timezone.utc)) == {}
    monkeypatch.setenv("CARRIER_TRACKING_URL_POSTNORD", tracking_server)
    monkeypatch.setenv("CARRIER_RATE_PER_S_POSTNORD", "1000")
    results = polling.poll_job(demo_engine, datetime.now(timezone.utc))
    assert results["postnord"].applied >= 2 and get_return(demo_engine, rid).status == "arrived"
