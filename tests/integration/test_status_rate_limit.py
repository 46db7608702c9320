"""Status links: wrong tokens are limited per client address, in the database (every process counts the same);
right links keep working in normal use; X-Forwarded-For counts only from trusted proxies (FORWARDED_ALLOW_IPS)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import date

import httpx
import pytest
import uvicorn
from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.db import make_engine
from portal.models import Order, OrderLine
from portal.returns import policy, service

LIMIT = 20  # the default: 20 wrong links per 10 minutes


def _register(engine, number: str = "SE-1001") -> tuple[str, str]:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=f"rate-limit-{number}-0123456789"), date.today())
        s.commit()
        return ret.rma, ret.status_token


def _wrong(rma: str, i: int) -> str:
    return f"/r/{rma}/{'x' * 40}{i:04d}"


def test_valid_links_work_misses_are_limited_then_everything_waits(client, demo_engine, settings):
    assert settings.status_miss_limit == LIMIT and settings.status_miss_window_s == 600
    rma, token = _register(demo_engine)
    for _ in range(40):  # normal use: a consumer reloading their page is never limited
        assert client.get(f"/r/{rma}/{token}").status_code == 200
    for i in range(LIMIT):
        wrong = client.get(_wrong(rma, i) if i % 2 else f"/r/R{i:07d}/{'y' * 43}")  # wrong token, unknown RMA
        assert wrong.status_code == 404, i
        assert "Den här statuslänken är inte giltig" in wrong.text  # the detail in the page's language (sv)
    limited = client.get(_wrong(rma, 99), headers={"accept-language": "sv"})
    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 601
    assert "För många försök" in limited.text and 'class="card error-page"' in limited.text  # the portal's own page
    # Over the limit a right link waits too: otherwise 200-vs-429 would tell a guesser when a token is right.
    assert client.get(f"/r/{rma}/{token}").status_code == 429
    assert client.get(f"/r/{rma}/{token}/label.pdf").status_code == 429
    assert client.get(f"/r/{rma}/{token}/qr.svg").status_code == 429
    assert client.get("/").status_code == 200  # the rest of the portal is not affected


def test_the_count_is_shared_by_every_process(settings, demo_engine, database_url):
    """Two apps with their own engines (as two `portal serve` workers): misses on either count together."""
    rma, token = _register(demo_engine)
    second_engine = make_engine(database_url)
    try:
        with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as one, \
                TestClient(create_app(settings, second_engine), base_url="http://testserver.local") as two:
            for i in range(LIMIT):
                assert (one if i % 2 else two).get(_wrong(rma, i)).status_code == 404
            assert one.get(_wrong(rma, 50)).status_code == 429
            assert two.get(f"/r/{rma}/{token}").status_code == 429
    finally:
        second_engine.dispose()


def test_the_limit_lifts_when_the_window_has_passed(settings, demo_engine):
    short = replace(settings, status_miss_limit=3, status_miss_window_s=1)
    rma, token = _register(demo_engine)
    with TestClient(create_app(short, demo_engine), base_url="http://testserver.local") as c:
        statuses = [c.get(_wrong(rma, i)).status_code for i in range(10)]
        assert statuses[:3] == [404, 404, 404] and 429 in statuses[3:]
        time.sleep(2.1)  # this window and the one before it are over
        assert c.get(f"/r/{rma}/{token}").status_code == 200
        assert c.get(_wrong(rma, 9)).status_code == 404


@contextmanager
def _served(app, forwarded_allow_ips: str, monkeypatch):
    """uvicorn on loopback as `portal serve` runs it: proxy headers on, trusted proxies from FORWARDED_ALLOW_IPS."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", forwarded_allow_ips)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, proxy_headers=True, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline, "test server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("trusted", [True, False], ids=["behind-trusted-proxy", "untrusted-peer"])
def test_forwarded_for_counts_only_from_trusted_proxies(settings, demo_engine, monkeypatch, trusted):
    rma, token = _register(demo_engine)
    # The test client connects from 127.0.0.1: a trusted proxy in the first case, a stranger in the second.
    with _served(create_app(settings, demo_engine), "127.0.0.1" if trusted else "10.0.0.0/8", monkeypatch) as base, \
            httpx.Client(base_url=base) as http:
        for i in range(LIMIT):  # one client (as the proxy reports it) guesses
            assert http.get(_wrong(rma, i), headers={"x-forwarded-for": "203.0.113.7"}).status_code == 404
        guesser = http.get(_wrong(rma, 77), headers={"x-forwarded-for": "203.0.113.7"})
        assert guesser.status_code == 429
        other = http.get(f"/r/{rma}/{token}", headers={"x-forwarded-for": "198.51.100.20"})
        spoofed = http.get(_wrong(rma, 78), headers={"x-forwarded-for": "192.0.2.99"})
    if trusted:  # behind the proxy every consumer has their own count
        assert other.status_code == 200 and spoofed.status_code == 404
    else:  # a forged header from an untrusted peer changes nothing: it is all one client, over the limit
        assert other.status_code == 429 and spoofed.status_code == 429
