"""Hypothesis fuzzes every public (consumer) form and query string on the real app and database:
arbitrary and huge text, unicode, missing and repeated fields, unknown fields, invalid UTF-8 bodies and query
strings, with a valid CSRF token (and sometimes without one). Every answer must be below 500, must not show a stack
trace or an exception's name, and an error page must be the portal's own page."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import quote
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.models import Order, OrderLine
from portal.notify.unsubscribe import make_token
from portal.returns import policy, service
from tests.integration.conftest import csrf_of

FUZZ = hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])
LEAK = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(?:Error|Exception)\b|sqlalchemy|psycopg|File \"")
TEXT_TYPES = ("text/html", "text/plain", "application/json", "application/problem+json", "text/css")

# Values: arbitrary unicode (control characters and NUL included), huge strings, numbers-that-are-not.
text = st.text(max_size=60)
huge = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(2_000, 60_000))
tricky = st.sampled_from(["", " ", "0", "-1", "1e9", "99999999999999999999999", "²", "١٢", "NaN", "\x00", "%00",
                          "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd", "R4KX9P2T", "SE-1001"])
value = st.one_of(text, tricky, huge)
with_csrf = st.sampled_from([True, True, True, False])  # now and then a form without its CSRF token
field_value = st.one_of(value, st.lists(value, min_size=2, max_size=3))  # a list = the field repeated
# Quantities: digits of every script and number-like text ("²".isdigit() is True, int("²") raises).
numberish = st.one_of(st.integers().map(str), st.sampled_from(["1.5", "1e3", "0x10", " 1", "+1", "1_0", "²"]),
                      st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4))


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(TEXT_TYPES):
        assert not LEAK.search(response.text), LEAK.search(response.text).group(0)
        if response.status_code >= 400 and content_type.startswith("text/html"):
            assert "/static/portal.css" in response.text, "an error page that is not the portal's"


def form(known: list[str], valid: dict[str, str] | None = None, odd_names: list[str] | None = None):
    """A valid submission (when given) with some of its fields dropped, each known field fuzzed or left out, plus
    unknown fields (now and then an odd name): most bugs hide behind the first check a random form fails."""
    valid = valid or {}
    unknown = st.one_of(text, text, text, st.sampled_from(odd_names)) if odd_names else text
    return st.builds(lambda drop, extra, fields: {**{k: v for k, v in valid.items() if k not in drop}, **extra,
                                                  **fields},
                     st.sets(st.sampled_from(sorted(valid)), max_size=1) if valid else st.just(set()),
                     st.dictionaries(unknown, field_value, max_size=2),
                     st.fixed_dictionaries({}, optional={
                         name: st.one_of(numberish, field_value) if name.startswith("qty_") else field_value
                         for name in known}))


@pytest.fixture
def fuzz_client(settings, demo_engine):
    # Rate limits high enough that the fuzzer reaches the forms' own checks (the limits have their own tests).
    app = create_app(replace(settings, lookup_rate_limit=1_000_000, status_miss_limit=1_000_000), demo_engine)
    with TestClient(app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def status_path(demo_engine) -> str:
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce="fuzz-nonce-000000001"), date.today())
        s.commit()
        return f"/r/{ret.rma}/{ret.status_token}"


def csrf(client) -> str:
    page = client.get("/")
    check(page)
    return csrf_of(page.text)


def post_form(client, path: str, data: dict, token: str, with_token: bool) -> None:
    check(client.post(path, data={**data, **({"_csrf_token": token} if with_token else {})}, follow_redirects=False))


def post_raw(client, path: str, body: bytes, token: str) -> None:
    """Bytes as a form body: invalid UTF-8, broken percent-escapes, NUL bytes."""
    check(client.post(path, content=b"_csrf_token=" + token.encode() + b"&" + body, follow_redirects=False,
                      headers={"content-type": "application/x-www-form-urlencoded"}))


def test_find_order_form(fuzz_client):
    token = csrf(fuzz_client)
    valid = {"order_number": "SE-1001", "credential": "anna.svensson@example.se"}

    @FUZZ
    @given(form(list(valid), valid), with_csrf, st.binary(max_size=300))
    def run(data, with_token, raw):
        post_form(fuzz_client, "/", data, token, with_token)
        post_raw(fuzz_client, "/", raw, token)

    run()


def test_choose_lines_and_register_form(fuzz_client, demo_engine):
    token = csrf(fuzz_client)
    granted = fuzz_client.post("/", data={"_csrf_token": token, "order_number": "SE-1001",
                                          "credential": "anna.svensson@example.se"}, follow_redirects=False)
    assert granted.status_code == 302
    with Session(demo_engine) as s:
        ids = [str(l.id) for l in s.exec(select(OrderLine).join(Order).where(Order.number == "SE-1001"))]
    valid = {f"qty_{ids[0]}": "1", f"reason_{ids[0]}": "too_small", "resolution": "refund"}
    names = [f"{kind}_{i}" for i in ids for kind in ("qty", "reason", "comment")] + ["resolution", "form_nonce"]
    odd = ["qty_", "qty_x", "qty_²", "qty_١", "qty_99999999999999999999", "qty_-1", "reason_x"]

    @FUZZ
    @given(form(names, valid, odd), with_csrf, st.binary(max_size=300),
           st.sampled_from(["SE-1001", "SE-1001", "SE-1001", "se-1001", "SE-1002", "X" * 300]),
           st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=16, max_size=32))
    def run(data, with_token, raw, number, nonce):
        data.setdefault("form_nonce", nonce)  # unless fuzzed: a fresh, valid nonce
        post_form(fuzz_client, f"/orders/{number}", data, token, with_token)
        post_raw(fuzz_client, "/orders/SE-1001", raw, token)

    run()


def test_cancel_form_and_status_links(fuzz_client, status_path):
    token = csrf(fuzz_client)
    _, _, rma, secret = status_path.split("/")

    @FUZZ
    @given(form(["reason"]), with_csrf, st.binary(max_size=200), st.sampled_from([rma, "R0000000", "r4kx9p2t"]),
           st.one_of(st.just(secret), text))
    def run(data, with_token, raw, link_rma, link_token):
        post_form(fuzz_client, f"{status_path}/cancel", data, token, with_token)
        post_raw(fuzz_client, f"{status_path}/cancel", raw, token)
        for suffix in ("", "/cancel", "/qr.svg", "/label.zpl"):
            path = f"/r/{quote(link_rma, safe='')}/{quote(link_token, safe='')}{suffix}"
            check(fuzz_client.post(path, data={"_csrf_token": token}, follow_redirects=False) if suffix == "/cancel"
                  else fuzz_client.get(path))

    run()


def test_query_strings_and_language_switch(fuzz_client, status_path):
    paths = ["/", "/orders/SE-1001", status_path, f"{status_path}/label.pdf", f"{status_path}/qr.svg",
             "/brand/logo", "/brand/theme.css", "/unsubscribe/1.email.x"]
    names = ["lang", "new", "layout", "v", "done", "next"]

    @FUZZ
    @given(st.sampled_from(paths), st.dictionaries(st.one_of(st.sampled_from(names), text),
                                                   st.one_of(text, tricky, st.lists(text, min_size=2, max_size=3)),
                                                   max_size=4),
           st.binary(max_size=100))
    def run(path, params, raw):
        if params.get("layout") in ("a4", "thermal"):
            params["layout"] = "a5"  # a real label render takes a second; label tests cover those
        check(fuzz_client.get(path, params=params))
        # Raw bytes in the query string: percent-escaped invalid UTF-8 and broken escapes.
        query = "".join("%" if b % 7 == 0 else f"%{b:02X}" for b in raw)
        check(fuzz_client.get(f"{path}?lang={query}&{query}={query}"))

    run()


def test_unsubscribe_forms(fuzz_client, demo_engine, settings):
    token = csrf(fuzz_client)
    with Session(demo_engine) as s:
        customer_id = s.exec(select(Order.customer_id).where(Order.number == "SE-1001")).one()
    genuine = make_token(settings.secret_key, customer_id)

    @FUZZ
    @given(st.one_of(st.just(genuine), text, tricky, st.just(f"{customer_id}².email.x"), st.just("²" * 3 + ".email.x")),
           form(["List-Unsubscribe"]), with_csrf, st.binary(max_size=200))
    def run(link, data, with_token, raw):
        link = quote(link, safe="")
        check(fuzz_client.get(f"/unsubscribe/{link}"))
        post_form(fuzz_client, f"/unsubscribe/{link}/confirm", data, token, with_token)
        check(fuzz_client.post(f"/unsubscribe/{link}", data=data, follow_redirects=False))  # one-click: no CSRF
        check(fuzz_client.post(f"/unsubscribe/{link}", content=raw, follow_redirects=False,
                               headers={"content-type": "application/x-www-form-urlencoded"}))

    run()


def test_digits_that_int_refuses_are_a_form_error(fuzz_client, demo_engine):
    """Found by the fuzzer: "²".isdigit() is True but int("²") raises; a quantity or a line id like that was a 500."""
    token = csrf(fuzz_client)
    fuzz_client.post("/", data={"_csrf_token": token, "order_number": "SE-1001",
                                "credential": "anna.svensson@example.se"})
    with Session(demo_engine) as s:
        line = s.exec(select(OrderLine).join(Order).where(Order.number == "SE-1001")).first()
    valid = {"_csrf_token": token, "form_nonce": "fuzz-nonce-regression-1", "resolution": "refund",
             f"reason_{line.id}": "too_small"}
    for fields in ({f"qty_{line.id}": "²"}, {"qty_²": "1"}, {f"qty_{line.id}": "1", "qty_³": "1"}):
        response = fuzz_client.post("/orders/SE-1001", data={**valid, **fields}, follow_redirects=False)
        check(response)
        assert response.status_code == 400, fields
    assert fuzz_client.get("/unsubscribe/1%C2%B2.email.x").status_code == 404  # "1²" as a customer id
