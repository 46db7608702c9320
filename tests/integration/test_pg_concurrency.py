"""Integrity under real concurrency, on PostgreSQL only (SQLite has one writer, so nothing races there).

1. 50 consumers register returns for the same order line at the same instant: never more than bought
   (also for a Norwegian order's customs match, a double-clicked form, and 16 consumers over HTTP).
2. Two staff issue the refund of one return at the same instant (20 rounds), and the shop's "paid"
   callback arrives twice at once: one refund, one payment, one webhook each.
3. Two real `portal worker` processes for about a minute (the slow test, ~70 s): every due e-mail
   reaches a real SMTP server exactly once, and every periodic job runs once per tick.

Each racer has its own session and its own connection, opened before a barrier releases them all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlmodel import Session, create_engine, select

from portal.db import normalise_url
from portal.jobs.scheduler import last_run
from portal.models import (
    Customer,
    NotificationRule,
    NotificationTemplate,
    Order,
    OrderLine,
    OutboxMessage,
    Refund,
    Return,
    ReturnEvent,
    ReturnLine,
    ReturnLineCustoms,
    StaffUser,
)
from portal.outbox import endpoints
from portal.outbox.dispatcher import dispatch_due
from portal.outbox.service import enqueue
from portal.returns import policy, service
from portal.staff import refunding
from portal.staff.accounts import principal
from tests.integration.conftest import make_staff
from tests.integration.outbox_helpers import free_port, running_receiver, running_smtp

# PostgreSQL only: the shared `database_url` fixture is asked for its PostgreSQL variant (skips without
# TEST_DATABASE_URL), and every test gets a fresh, truncated database.
pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

ROOT = Path(__file__).resolve().parents[2]
TZ = "Europe/Stockholm"


# --- racing ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: object = None
    refused: Exception | None = None  # the business error the service raised on purpose
    crashed: BaseException | None = None  # anything else: always a failure of the test


def race(url: str, calls: list[Callable[[Session], object]], refusals: tuple[type[Exception], ...]) -> list[Outcome]:
    """Run each call in its own thread, session and connection, all released at once by a barrier.

    A call that returns commits its session; one that raises rolls back. Connections are checked out
    and a transaction begun before the barrier, so the calls really start together."""
    engine = create_engine(normalise_url(url), pool_size=len(calls), max_overflow=0, pool_timeout=60)
    barrier = threading.Barrier(len(calls), timeout=60)
    outcomes = [Outcome() for _ in calls]

    def run(index: int, call: Callable[[Session], object]) -> None:
        with Session(engine, expire_on_commit=False) as session:
            try:
                session.connection().execute(sa.text("SELECT 1"))
                barrier.wait()
                outcomes[index].value = call(session)
                session.commit()
            except refusals as exc:
                session.rollback()
                outcomes[index].refused = exc
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                session.rollback()
                outcomes[index].crashed = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads), "a racer hung"
    finally:
        engine.dispose()
    crashed = Counter(repr(o.crashed)[:300] for o in outcomes if o.crashed is not None)
    assert not crashed, f"unhandled errors instead of business errors: {crashed.most_common(3)}"
    return outcomes


# --- set-up helpers ----------------------------------------------------------------------------------


def add_order(engine, number: str, quantity: int, unit_price_minor: int = 29900) -> int:
    """A delivered Swedish order with one returnable line of `quantity` units; returns the line's id."""
    with Session(engine) as s:
        customer = Customer(email=f"{number.lower()}@example.se", first_name="Race", last_name="Tester", language="sv",
                            street="Storgatan 1", postcode="111 22", city="Stockholm", country="SE")
        s.add(customer)
        s.flush()
        delivered = datetime.now(timezone.utc) - timedelta(days=3)
        order = Order(number=number, customer_id=customer.id, email=customer.email, postcode=customer.postcode,
                      country="SE", currency="SEK", placed_at=delivered - timedelta(days=2), delivered_at=delivered)
        s.add(order)
        s.flush()
        line = OrderLine(order_id=order.id, line_no=1, sku="TS-100", name="Organic cotton T-shirt",
                         category="clothing", quantity=quantity, unit_price_minor=unit_price_minor,
                         vat_rate=Decimal("0.25"))
        s.add(line)
        s.commit()
        return line.id


def line_of(engine, number: str, sku: str) -> tuple[int, int, int]:
    """(order id, order line id, quantity bought) of a demo order's line."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.sku == sku)).one()
        return order.id, line.id, line.quantity


def add_endpoint(engine, url: str, types: list[str]) -> str:
    with Session(engine) as s:
        _endpoint, secret = endpoints.create_endpoint(s, url, types, "race test", "test@shop.example")
        s.commit()
        return secret


def registration(order_id: int, line_id: int, quantity: int, nonce: str) -> Callable[[Session], Return]:
    request = service.ReturnRequest(order_id=order_id, lines=[policy.RequestedLine(line_id, str(quantity), "too_small", "")],
                                    resolution="refund", language="sv", form_nonce=nonce)
    return lambda session: service.register_return(session, request, date.today())


def outbox_rows(engine, event_type: str) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.id)))


def assert_returns_whole(engine, order_id: int, rmas: set[str], webhooks: bool = True) -> None:
    """Exactly the winners' returns exist, each with its lines, its events and its webhook: nothing half-written."""
    with Session(engine) as s:
        returns = list(s.exec(select(Return).where(Return.order_id == order_id)))
        assert {r.rma for r in returns} == rmas
        for ret in returns:
            lines = list(s.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id)))
            assert len(lines) == 1 and lines[0].quantity >= 1, ret.rma
            types = [e.type for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id))]
            assert types.count("return.registered") == 1 and types.count("label.issued") == 1, (ret.rma, types)
            assert ret.status == "label_issued"
        hooks = [m for m in s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "return.registered"))
                 if m.payload["data"]["order_number"] == s.get(Order, order_id).number]
        expected = sorted(rmas) if webhooks else []
        assert sorted(m.payload["data"]["rma"] for m in hooks) == expected  # one webhook per return, no orphans


# --- 1. registrations ------------------------------------------------------------------------------


RACERS = 50


def test_fifty_simultaneous_registrations_never_return_more_than_was_bought(demo_engine, database_url):
    add_endpoint(demo_engine, "https://shop.example/hooks", ["return.registered"])
    bought = 7
    line_id = add_order(demo_engine, "SE-RACE-1", bought)
    with Session(demo_engine) as s:
        order_id = s.get(OrderLine, line_id).order_id
    # Half ask for one unit, half for two: the one-unit askers alone would take all seven.
    asked = [1 + i % 2 for i in range(RACERS)]
    outcomes = race(database_url, [registration(order_id, line_id, q, f"race-nonce-{i:02d}-{'x' * 8}")
                                   for i, q in enumerate(asked)], (service.ReturnError,))

    won = [(q, o.value) for q, o in zip(asked, outcomes) if o.refused is None]
    lost = [(q, o.refused) for q, o in zip(asked, outcomes) if o.refused is not None]
    assert sum(q for q, _ in won) == bought  # never more, and nothing left that a one-unit asker was refused
    assert len({ret.rma for _, ret in won}) == len(won)
    for q, error in lost:
        assert error.code == "invalid_selection"
        assert error.fields in ({f"qty_{line_id}": "line_not_returnable"},  # all seven claimed
                                {f"qty_{line_id}": "quantity_too_many"}), error.fields  # asked 2, one was left
        assert q == 2 or error.fields[f"qty_{line_id}"] == "line_not_returnable"
    with Session(demo_engine) as s:
        assert service.returned_quantities(s, order_id) == {line_id: bought}
        eligibility = service.order_eligibility(s, s.get(Order, order_id), service.get_policy(s), date.today())
        assert eligibility[line_id].max_quantity == 0
    assert_returns_whole(demo_engine, order_id, {ret.rma for _, ret in won})


def test_fifty_simultaneous_norwegian_registrations_match_the_export_once(demo_engine, database_url):
    """NO-2001 left on an export declaration with 3 T-shirts: the customs match never hands out a 4th."""
    add_endpoint(demo_engine, "https://shop.example/hooks", ["return.registered"])
    order_id, line_id, bought = line_of(demo_engine, "NO-2001", "TS-100")
    assert bought == 3
    outcomes = race(database_url, [registration(order_id, line_id, 1, f"race-no-nonce-{i:02d}-{'y' * 8}")
                                   for i in range(RACERS)], (service.ReturnError,))
    won = [o.value for o in outcomes if o.refused is None]
    assert len(won) == bought
    assert {o.refused.fields.get(f"qty_{line_id}") for o in outcomes if o.refused} == {"line_not_returnable"}
    with Session(demo_engine) as s:
        rows = list(s.exec(select(ReturnLineCustoms).join(ReturnLine).join(Return).where(Return.order_id == order_id)))
        assert len(rows) == bought
        assert all(r.relief == "F01" and not r.needs_attention for r in rows), [r.results for r in rows]
        allocated = Counter()
        for r in rows:
            for allocation in r.allocations:
                allocated[(r.mrn, allocation["goods_item_number"])] += allocation["quantity"]
        assert sum(allocated.values()) == bought and len(allocated) == 1  # one goods item, three units, no more
    assert_returns_whole(demo_engine, order_id, {ret.rma for ret in won})


def test_the_same_form_submitted_ten_times_at_once_gives_one_return(demo_engine, database_url):
    add_endpoint(demo_engine, "https://shop.example/hooks", ["return.registered"])
    line_id = add_order(demo_engine, "SE-RACE-2", 5)
    with Session(demo_engine) as s:
        order_id = s.get(OrderLine, line_id).order_id
    outcomes = race(database_url, [registration(order_id, line_id, 2, "double-click-nonce-0001") for _ in range(10)],
                    (service.ReturnError,))
    assert [o.refused for o in outcomes] == [None] * 10
    assert len({o.value.rma for o in outcomes}) == 1  # every click got the same return back
    with Session(demo_engine) as s:
        assert service.returned_quantities(s, order_id) == {line_id: 2}
    assert_returns_whole(demo_engine, order_id, {outcomes[0].value.rma})


HTTP_RACERS = 16


@contextmanager
def served(app):
    """The app on uvicorn on loopback, as `portal serve` runs it (sync handlers in its thread pool)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


def test_simultaneous_consumer_posts_over_http_never_return_more_than_was_bought(settings, demo_engine):
    """The same race through the real app over HTTP: 16 consumers (own cookies, session, CSRF token) post at once."""
    from portal.app import create_app
    from tests.integration.conftest import csrf_of, nonce_of

    bought = 5
    line_id = add_order(demo_engine, "SE-RACE-HTTP", bought)
    app = create_app(replace(settings, lookup_rate_limit=1000), demo_engine)  # one client address for sixteen
    with served(app) as base:
        clients = [httpx.Client(base_url=base, timeout=60) for _ in range(HTTP_RACERS)]
        try:
            forms = []
            for i, client in enumerate(clients):
                page = client.get("/")
                found = client.post("/", data={"_csrf_token": csrf_of(page.text), "order_number": "SE-RACE-HTTP",
                                               "credential": "se-race-http@example.se"})
                assert found.status_code == 302, found.text
                html = client.get("/orders/SE-RACE-HTTP").text
                forms.append({"_csrf_token": csrf_of(html), "form_nonce": nonce_of(html), "resolution": "refund",
                              f"qty_{line_id}": "1", f"reason_{line_id}": "too_small", f"comment_{line_id}": f"Racer {i}"})
            barrier = threading.Barrier(HTTP_RACERS, timeout=60)
            responses: list = [None] * HTTP_RACERS

            def post(i: int) -> None:
                barrier.wait()
                responses[i] = clients[i].post("/orders/SE-RACE-HTTP", data=forms[i])

            threads = [threading.Thread(target=post, args=(i,)) for i in range(HTTP_RACERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        finally:
            for client in clients:
                client.close()

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {302: bought, 400: HTTP_RACERS - bought}, statuses  # never a 500
    for response in responses:
        if response.status_code == 400:  # the page says why, at the line: the others took the last units
            assert 'role="alert"' in response.text and "Du har redan returnerat alla dessa." in response.text
    rmas = {re.search(r"/r/(R[0-9A-Z]{7})/", r.headers["location"]).group(1) for r in responses if r.status_code == 302}
    with Session(demo_engine) as s:
        order_id = s.get(OrderLine, line_id).order_id
        assert service.returned_quantities(s, order_id) == {line_id: bought}
    assert_returns_whole(demo_engine, order_id, rmas, webhooks=False)


# --- 2. refunds ------------------------------------------------------------------------------------


ROUNDS = 20


def inspected_return(engine, index: int) -> int:
    """A registered return of 2 units, received and accepted at inspection (what the warehouse leaves)."""
    line_id = add_order(engine, f"SE-REF-{index:03d}", 2)
    with Session(engine) as s:
        order_id = s.get(OrderLine, line_id).order_id
        ret = registration(order_id, line_id, 2, f"refund-race-{index:03d}-nonce")(s)
        for line in s.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id)):
            line.received_quantity, line.acceptance, line.condition, line.disposition = 2, "accepted", "as_new", "restock"
            s.add(line)
        ret.arrived_at = datetime.now(timezone.utc) - timedelta(days=1)
        ret.status = "inspected"
        s.add(ret)
        s.commit()
        return ret.id


def test_two_staff_issuing_one_refund_at_once_pay_once(demo_engine, database_url):
    with running_receiver() as receiver:
        receiver.secret = add_endpoint(demo_engine, receiver.url, ["refund.requested", "refund.issued"])
        make_staff(demo_engine, "admin", "admin-a@shop.example")
        make_staff(demo_engine, "admin", "admin-b@shop.example")
        with Session(demo_engine) as s:
            staff = [principal(s.exec(select(StaffUser).where(StaffUser.email == e)).one())
                     for e in ("admin-a@shop.example", "admin-b@shop.example")]

        refunds_issued: dict[int, int] = {}
        for round_no in range(ROUNDS):
            return_id = inspected_return(demo_engine, round_no)
            with Session(demo_engine) as s:  # both staff opened the refund page: the same form
                plan = refunding.build_plan(s, s.get(Return, return_id), None, TZ)
                form = {"sequence": str(plan.sequence), "version": str(plan.ret.version),
                        "shown_total": str(plan.total_minor)}
                assert plan.can_issue and plan.total_minor == 2 * 29900

            def issue(who):
                def call(session: Session) -> Refund:
                    return refunding.issue_refund(session, session.get(Return, return_id), who, refunding.DeductionChoice(),
                                                  tz=TZ, **form)
                return call

            outcomes = race(database_url, [issue(staff[0]), issue(staff[1])],
                            (refunding.RefundConflict, refunding.RefundError))
            [winner] = [o.value for o in outcomes if o.refused is None]
            [conflict] = [o.refused for o in outcomes if o.refused is not None]
            assert isinstance(conflict, refunding.RefundConflict), conflict  # 409 on the page, not a 400 or a 500
            assert "already issued" in str(conflict) and "Nothing was paid twice" in str(conflict)
            with Session(demo_engine) as s:
                [refund] = s.exec(select(Refund).where(Refund.return_id == return_id)).all()
                assert (refund.id, refund.state, refund.amount_minor) == (winner.id, "requested", 2 * 29900)
                assert refund.idempotency_key == f"{return_id}:1"
                events = [e.type for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id))]
                assert events.count("refund.requested") == 1 and events.count("return.resolved") == 1
                assert s.get(Return, return_id).status == "resolved"
            refunds_issued[return_id] = refund.id

            # The shop's "completed" callback arrives twice at once (its own retry): paid once.
            paid = race(database_url, [lambda session, rid=refund.id: refunding.record_payment(
                session, rid, "PSP-4711", "shop") for _ in range(2)], (refunding.RefundConflict,))
            assert sorted(o.value.changed for o in paid) == [False, True] and all(o.refused is None for o in paid)
            with Session(demo_engine) as s:
                assert s.get(Refund, refund.id).state == "issued"
                events = [e.type for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id))]
                assert events.count("refund.issued") == 1

        requested = outbox_rows(demo_engine, "refund.requested")
        issued = outbox_rows(demo_engine, "refund.issued")
        assert sorted(m.payload["data"]["refund_id"] for m in requested) == sorted(refunds_issued.values())
        assert sorted(m.payload["data"]["refund_id"] for m in issued) == sorted(refunds_issued.values())

        # What leaves for the shop: one "please pay" and one "paid" per refund, whoever sends it.
        while dispatch_due(demo_engine, now=datetime.now(timezone.utc) + timedelta(seconds=1)).claimed:
            pass
        seen = Counter()
        for request in receiver.requests:
            assert request.signature_ok, request.signature_error
            body = json.loads(request.body)
            seen[(body["type"], body["data"]["refund_id"])] += 1
        assert seen == Counter({(kind, rid): 1 for rid in refunds_issued.values()
                                for kind in ("refund.requested", "refund.issued")})


# --- 3. two worker processes ---------------------------------------------------------------------

# Slow (about 70 s): two `portal worker` processes side by side for a minute.

RUN_S = 45  # both workers side by side; with their start-up, about a minute
QUEUED_NOW, QUEUED_LATER = 200, 100
SWEEP_RETURNS = 10
JOB_EVERY_S = 5
FAST_JOBS = ("norway-cutoffs", "notification-sweep", "carrier-polling")  # the periodic jobs run every 5 s here
DONE_RE = re.compile(r"^(?P<logged>\S+ \S+) INFO portal\.worker: job (?P<job>[\w-]+): tick (?P<tick>\S+) done in",
                     re.MULTILINE)


def _worker_env(database_url: str, smtp_port: int, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_INTERVAL_", "NOTIFY_THROTTLE_", "SMS_"))
           and k not in ("PORTAL_ENV", "EMBEDDED_WORKER")}
    env.update(DATABASE_URL=database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp_port}", BASE_URL="http://testserver.local",
               MAIL_DIR=str(tmp_path / "mail"), STORAGE_DIR=str(tmp_path / "storage"),
               ECB_RATES_URL=f"http://127.0.0.1:{free_port()}/rates.xml",  # never the internet, even at 16:30 CET
               **{f"JOB_INTERVAL_{job.upper().replace('-', '_')}": str(JOB_EVERY_S) for job in FAST_JOBS})
    return env


def _sweep_rule(engine) -> int:
    """An active rule: e-mail the customer as soon as a label is issued and unused (offset 0 days)."""
    with Session(engine) as s:
        rule = NotificationRule(name="label unused", trigger="time.label_unused", channels=["email"], active=True)
        s.add(rule)
        s.flush()
        for lang in ("sv", "nb", "da", "fi", "en"):
            s.add(NotificationTemplate(rule_id=rule.id, language=lang, subject=f"[{lang}] Label {{{{ rma }}}}",
                                       body_text="Hej {{ first_name }}, {{ status_link }}"))
        s.commit()
        return rule.id


def _register_demo_returns(engine, count: int, tag: str) -> list[str]:
    """`count` one-unit returns on the demo orders (label issued, so the sweep picks them up)."""
    rmas = []
    with Session(engine) as s:
        lines = s.exec(select(OrderLine).where(OrderLine.returnable).order_by(OrderLine.id)).all()
        for line in lines:
            if len(rmas) == count:
                break
            try:
                ret = registration(line.order_id, line.id, 1, f"sweep-{tag}-{line.id}-nonce")(s)
            except service.ReturnError:  # that line is all returned already
                s.rollback()
                continue
            if ret.status == "label_issued":  # not the ones outside the window, waiting for approval
                rmas.append(ret.rma)
            s.commit()
    assert len(rmas) == count
    return rmas


def _stop(proc: subprocess.Popen) -> float:
    """SIGTERM, then the seconds it took to exit (it must exit cleanly, code 0)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - started


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, path.read_text()
        time.sleep(0.1)


def _unsent_mails(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(sa.func.count()).select_from(OutboxMessage)
                      .where(OutboxMessage.channel == "email", OutboxMessage.state != "sent")).one()


def _job_runs(outputs: list[str]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per job, (tick, when the run ended) from every worker's "job <id>: tick <t> done" log lines."""
    runs: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for out in outputs:
        for match in DONE_RE.finditer(out):
            ended = datetime.strptime(match["logged"], "%Y-%m-%d %H:%M:%S,%f").astimezone(timezone.utc)  # local time
            runs[match["job"]].append((datetime.fromisoformat(match["tick"]), ended))
    return runs


def test_two_worker_processes_for_a_minute_send_each_mail_once_and_run_each_tick_once(demo_engine, database_url,
                                                                                        tmp_path):
    """Slow: about 70 s. The second worker starts seconds after the first, on its own schedule."""
    rule_id = _sweep_rule(demo_engine)
    with running_smtp() as (sink, port):
        env = _worker_env(database_url, port, tmp_path)
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        procs: list[subprocess.Popen] = []
        try:
            for log_path in logs:
                with open(log_path, "w") as log_file:
                    procs.append(subprocess.Popen([str(ROOT / ".venv" / "bin" / "portal"), "worker", "--interval", "1"],
                                                  env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT))
                time.sleep(2.5)  # the next one starts at another moment: unaligned schedules would not meet
            for log_path, proc in zip(logs, procs):
                _wait_for(log_path, "job outbox-dispatch:", proc)  # its scheduler is up
            both_up = time.monotonic()
            first_due = datetime.now(timezone.utc)
            with Session(demo_engine) as s:  # with both workers up: 200 due now, 100 falling due over 30 s
                for i in range(QUEUED_NOW + QUEUED_LATER):
                    due = first_due + timedelta(seconds=0 if i < QUEUED_NOW else (i - QUEUED_NOW) * 0.3)
                    enqueue(s, key=f"race-mail:{i}", channel="email", destination=f"customer{i}@example.se",
                            event_type="return.received", payload={"subject": f"Mail {i}", "text": f"Hej {i}"},
                            not_before=due)
                s.commit()
            rmas = []
            for at, tag in ((10, "a"), (25, "b")):  # returns whose "label unused" e-mail falls due mid-run
                time.sleep(max(0.0, both_up + at - time.monotonic()))
                rmas += _register_demo_returns(demo_engine, SWEEP_RETURNS // 2, tag)
            while time.monotonic() < both_up + RUN_S or (_unsent_mails(demo_engine)
                                                          and time.monotonic() < both_up + RUN_S + 30):
                assert all(p.poll() is None for p in procs), [path.read_text() for path in logs]
                time.sleep(1)
            stop_times = [_stop(p) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        received = list(sink.received)

    outputs = [path.read_text() for path in logs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(t < 10 for t in stop_times), stop_times  # SIGTERM: the current run finishes, then out
    assert all("Worker stopped." in out and "Traceback" not in out for out in outputs), outputs

    # Every e-mail exactly once: the 300 queued ones and the sweep's one per new return.
    message_ids = Counter(message_from_bytes(raw)["Message-ID"] for raw in received)
    assert [mid for mid, n in message_ids.items() if n > 1] == []
    with Session(demo_engine) as s:
        mails = list(s.exec(select(OutboxMessage).where(OutboxMessage.channel == "email")))
        sweep_mails = [m for m in mails if m.idempotency_key.startswith("notify:")]
        assert {(m.state, m.attempts) for m in mails} == {("sent", 1)}
        assert len(mails) == QUEUED_NOW + QUEUED_LATER + SWEEP_RETURNS
        assert set(message_ids) == {f"<outbox-{m.id}@testserver.local>" for m in mails}
        assert sorted(m.payload["subject"].split()[-1] for m in sweep_mails) == sorted(rmas)
        assert {m.idempotency_key.split(":")[2] for m in sweep_mails} == {str(rule_id)}

    # Every periodic job once per tick across both workers: no tick twice, and a tick left out only
    # while that job's previous run was still going (the designed skip), never for lack of a worker.
    job_runs = _job_runs(outputs)
    for job in FAST_JOBS:
        runs = sorted(job_runs[job])
        ticks = [tick for tick, _ in runs]
        assert len(ticks) == len(set(ticks)), f"{job} ran a tick twice: {Counter(ticks).most_common(3)}"
        assert len(ticks) >= RUN_S // JOB_EVERY_S - 3, (job, ticks)
        for (tick, ended), (following, _) in zip(runs, runs[1:]):
            assert (following - tick).total_seconds() % JOB_EVERY_S == 0, (job, tick, following)
            if following - tick > timedelta(seconds=JOB_EVERY_S):  # missed ticks: only behind a long run
                assert ended >= tick + timedelta(seconds=JOB_EVERY_S), (job, tick, ended, following)
        record = last_run(demo_engine, job)  # the job's "last run" row: the latest tick, by one of the two
        assert datetime.fromisoformat(record["tick"]) == ticks[-1]
        assert record["worker"].rsplit(":", 1)[1] in {str(p.pid) for p in procs}
    skipped = sum(out.count("already run by") + out.count("another worker is running it") for out in outputs)
    assert skipped >= RUN_S // JOB_EVERY_S  # the other worker did try those ticks: the guard, not luck, kept them single


# --- a carrier scan racing the expiry job ----------------------------------------------------------------


def test_a_scan_arriving_while_the_expiry_job_expires_the_return_does_not_overwrite_it(demo_engine, database_url,
                                                                                       settings):
    """The expiry job has claimed the return (row written, not yet committed) when the carrier's scan comes
    in: the scan waits for it and then finds no active return, instead of writing `dropped_off` over
    `expired` with the state it read before."""
    from portal.carriers.service import apply_carrier_event
    from portal.returns.expiry import expire_one

    rma = _register_demo_returns(demo_engine, 1, "scan-vs-expiry")[0]
    engine = create_engine(normalise_url(database_url), pool_size=2, max_overflow=0)
    now = datetime.now(timezone.utc)
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        ret.tracking_number, ret.created_at = "PN000000991SE", now - timedelta(days=settings.return_expiry_days + 2)
        s.add(ret)
        s.commit()
    claimed, scanned = threading.Event(), {}

    def scan() -> None:
        claimed.wait(30)
        with Session(engine) as s:
            scanned["applied"] = apply_carrier_event(s, "postnord", "race-1", "PN000000991SE", "ITEM_ACCEPTED", now, {})
            s.commit()

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        with Session(engine) as s:
            assert expire_one(s, s.exec(select(Return).where(Return.rma == rma)).one(), now, settings)
            claimed.set()
            time.sleep(0.5)  # the scan is waiting for the row now (before the fix it read label_issued and went on)
            s.commit()
        scanner.join(30)
        with Session(engine) as s:
            ret = s.exec(select(Return).where(Return.rma == rma)).one()
            kinds = [e.type for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id))]
        assert ret.status == "expired" and "return.expired" in kinds and "parcel.dropped_off" not in kinds
        assert scanned["applied"].return_id is None and not scanned["applied"].moved  # kept, but matched nothing
    finally:
        engine.dispose()
