"""The consumer flow over HTTP against the real app and database."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import Order, OrderLine, Return, ReturnEvent, ReturnLine
from tests.integration.conftest import csrf_of, nonce_of

STATUS_LINK_RE = re.compile(r"/r/(R[0-9A-Z]{7})/([A-Za-z0-9_-]{20,})")


def find(client, number: str, credential: str):
    page = client.get("/")
    return client.post("/", data={"_csrf_token": csrf_of(page.text), "order_number": number, "credential": credential},
                       follow_redirects=False)


def open_order(client, number: str, credential: str) -> str:
    response = find(client, number, credential)
    assert response.status_code == 302, response.text
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def lines_of(engine, number: str) -> dict[str, OrderLine]:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        return {l.sku: l for l in s.exec(select(OrderLine).where(OrderLine.order_id == order.id))}


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(sa.func.count()).select_from(model)).one()


def submit(client, number: str, html: str, fields: dict, nonce: str | None = None):
    data = {"_csrf_token": csrf_of(html), "form_nonce": nonce or nonce_of(html), "resolution": "refund", **fields}
    return client.post(f"/orders/{number}", data=data, follow_redirects=False)


def test_consumer_returns_two_lines_and_follows_status(client, demo_engine):
    html = open_order(client, "SE-1001", "anna.svensson@example.se")
    lines = lines_of(demo_engine, "SE-1001")
    ts, hd = lines["TS-100"].id, lines["HD-200"].id
    response = submit(client, "SE-1001", html, {f"qty_{ts}": "2", f"reason_{ts}": "too_small",
                                               f"qty_{hd}": "1", f"reason_{hd}": "damaged", f"comment_{hd}": "Hål i ärmen"})
    assert response.status_code == 302
    rma, token = STATUS_LINK_RE.search(response.headers["location"]).groups()
    status = client.get(response.headers["location"])
    assert status.status_code == 200
    assert rma in status.text and "Organic cotton T-shirt" in status.text and "Merino hoodie" in status.text
    assert "Hål i ärmen" in status.text
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        assert ret.status == "label_issued" and ret.status_token == token and ret.language == "sv"
        got = {(l.order_line_id, l.quantity, l.reason) for l in s.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id))}
        assert got == {(ts, 2, "too_small"), (hd, 1, "damaged")}
        types = [e.type for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id).order_by(ReturnEvent.id))]
        assert types == ["return.registered", "label.issued"]
    # Refund so far: 2 x 299.00 + (1199.00 - 120.00) = 1677.00 kr, no delivery refund (socks kept).
    assert "1\xa0677,00\xa0kr" in status.text or "1 677,00 kr" in status.text.replace("\xa0", " ")


def test_postcode_works_as_credential_with_any_spacing(client):
    assert find(client, "se-1001", "11455").status_code == 302
    assert find(client, " SE-1001 ", "114 55").status_code == 302


def test_wrong_number_and_wrong_email_look_the_same(client):
    wrong_email = find(client, "SE-1001", "someone@example.se")
    wrong_number = find(client, "SE-9999", "anna.svensson@example.se")
    assert wrong_email.status_code == wrong_number.status_code == 404
    strip = lambda t: CSRF_STRIP.sub("", t)
    assert strip(wrong_email.text).replace("someone@example.se", "X").replace("SE-1001", "N") == \
        strip(wrong_number.text).replace("anna.svensson@example.se", "X").replace("SE-9999", "N")
    assert "SE-1001" in wrong_email.text  # what the consumer typed is kept


CSRF_STRIP = re.compile(r'value="[0-9a-f]{40,}"')


def test_missing_fields_are_marked_and_kept(client):
    response = find(client, "SE-1001", "")
    assert response.status_code == 400
    assert 'id="credential-error"' in response.text and 'value="SE-1001"' in response.text


def test_lookup_is_rate_limited_per_client(client, settings):
    for _ in range(settings.lookup_rate_limit):
        assert find(client, "SE-1001", "wrong@example.se").status_code == 404
    limited = find(client, "SE-1001", "anna.svensson@example.se")
    assert limited.status_code == 429


def test_order_page_needs_the_lookup_first(client):
    assert client.get("/orders/SE-1001").status_code == 404


def test_double_submit_creates_one_return(client, demo_engine):
    html = open_order(client, "DK-3001", "freja.nielsen@example.dk")
    ts = lines_of(demo_engine, "DK-3001")["TS-100"].id
    fields = {f"qty_{ts}": "1", f"reason_{ts}": "too_large"}
    first = submit(client, "DK-3001", html, fields)
    second = submit(client, "DK-3001", html, fields)
    assert first.status_code == second.status_code == 302
    assert first.headers["location"] == second.headers["location"]
    assert count(demo_engine, Return) == 1


def test_bad_line_input_gives_field_errors_and_changes_nothing(client, demo_engine):
    html = open_order(client, "SE-1001", "anna.svensson@example.se")
    lines = lines_of(demo_engine, "SE-1001")
    ts = lines["TS-100"].id
    cases = [
        ({f"qty_{ts}": "0", f"reason_{ts}": "too_small"}, "form-error"),
        ({f"qty_{ts}": "3", f"reason_{ts}": "too_small"}, f"qty_{ts}-error"),
        ({f"qty_{ts}": "two", f"reason_{ts}": "too_small"}, f"qty_{ts}-error"),
        ({f"qty_{ts}": "-1", f"reason_{ts}": "too_small"}, f"qty_{ts}-error"),
        ({f"qty_{ts}": "1", f"reason_{ts}": ""}, f"reason_{ts}-error"),
        ({f"qty_{ts}": "1", f"reason_{ts}": "made_up_reason"}, f"reason_{ts}-error"),
        ({f"qty_{ts}": "1", f"reason_{ts}": "too_small", f"comment_{ts}": "x" * 1001}, f"comment_{ts}-error"),
        ({"qty_999999": "1", "reason_999999": "too_small"}, "form-error"),
        ({"qty_abc": "1"}, "form-error"),
    ]
    for fields, error_id in cases:
        response = submit(client, "SE-1001", html, fields)
        assert response.status_code == 400, (fields, response.status_code)
        assert f'id="{error_id}"' in response.text, fields
    bad_resolution = submit(client, "SE-1001", html, {f"qty_{ts}": "1", f"reason_{ts}": "too_small", "resolution": "cash"})
    assert bad_resolution.status_code == 400 and 'id="resolution-error"' in bad_resolution.text
    # What the consumer typed stays in the form.
    kept = submit(client, "SE-1001", html, {f"qty_{ts}": "3", f"reason_{ts}": "too_small", f"comment_{ts}": "behåll mig"})
    assert "behåll mig" in kept.text and 'value="3"' in kept.text
    assert count(demo_engine, Return) == 0 and count(demo_engine, ReturnLine) == 0 and count(demo_engine, ReturnEvent) == 0


def test_missing_or_short_nonce_is_refused(client, demo_engine):
    html = open_order(client, "SE-1001", "anna.svensson@example.se")
    ts = lines_of(demo_engine, "SE-1001")["TS-100"].id
    response = submit(client, "SE-1001", html, {f"qty_{ts}": "1", f"reason_{ts}": "too_small"}, nonce="short")
    assert response.status_code == 400
    assert count(demo_engine, Return) == 0


def test_non_returnable_line_is_shown_greyed_and_refused(client, demo_engine):
    html = open_order(client, "SE-1002", "erik.lindqvist@example.se")
    gift = lines_of(demo_engine, "SE-1002")["GC-900"].id
    assert "Gift card" in html and f'name="qty_{gift}"' not in html
    response = submit(client, "SE-1002", html, {f"qty_{gift}": "1", f"reason_{gift}": "other"})
    assert response.status_code == 400 and count(demo_engine, Return) == 0


def test_outside_window_becomes_pending_approval(client, demo_engine):
    html = open_order(client, "SE-1003", "maja.berg@example.se")
    bt = lines_of(demo_engine, "SE-1003")["BT-600"].id
    response = submit(client, "SE-1003", html, {f"qty_{bt}": "1", f"reason_{bt}": "quality" if False else "changed_mind"})
    assert response.status_code == 302
    with Session(demo_engine) as s:
        ret = s.exec(select(Return)).one()
        assert ret.status == "pending_approval" and ret.status_reason == "outside_window"
    assert "label.pdf" not in client.get(response.headers["location"]).text


def test_quantities_already_returned_cannot_be_returned_again(client, demo_engine):
    lines = lines_of(demo_engine, "SE-1004")
    sk = lines["SK-400"].id
    html = open_order(client, "SE-1004", "oskar.nystrom@example.se")
    assert submit(client, "SE-1004", html, {f"qty_{sk}": "3", f"reason_{sk}": "too_large"}).status_code == 302
    html = client.get("/orders/SE-1004").text
    too_many = submit(client, "SE-1004", html, {f"qty_{sk}": "2", f"reason_{sk}": "too_large"})
    assert too_many.status_code == 400
    assert submit(client, "SE-1004", html, {f"qty_{sk}": "1", f"reason_{sk}": "too_large"}).status_code == 302


def test_cancel_frees_the_quantities(client, demo_engine):
    bt = lines_of(demo_engine, "FI-4002")["BT-600"].id
    html = open_order(client, "FI-4002", "eero.korhonen@example.fi")
    location = submit(client, "FI-4002", html, {f"qty_{bt}": "1", f"reason_{bt}": "too_small"}).headers["location"]
    status_url = location.split("?")[0]
    status = client.get(status_url)
    cancelled = client.post(status_url + "/cancel", data={"_csrf_token": csrf_of(status.text)}, follow_redirects=False)
    assert cancelled.status_code == 302
    with Session(demo_engine) as s:
        assert s.exec(select(Return)).one().status == "cancelled"
    html = client.get("/orders/FI-4002").text
    assert submit(client, "FI-4002", html, {f"qty_{bt}": "1", f"reason_{bt}": "too_small"}).status_code == 302


def test_status_links_that_do_not_exist_are_404(client, demo_engine):
    html = open_order(client, "DK-3002", "mads.jensen@example.dk")
    sk = lines_of(demo_engine, "DK-3002")["SK-400"].id
    location = submit(client, "DK-3002", html, {f"qty_{sk}": "1", f"reason_{sk}": "other"}).headers["location"]
    rma, token = STATUS_LINK_RE.search(location).groups()
    for path in (f"/r/{rma}/{'A' * len(token)}", f"/r/R0000000/{token}", "/r/nonsense/x", f"/r/{rma}/{token}{'x' * 100}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text
    assert client.get(f"/r/{rma.lower()}/{token}").status_code == 200  # RMA typed in lower case still works


def test_post_without_csrf_token_is_refused_politely(client):
    response = client.post("/", data={"order_number": "SE-1001", "credential": "anna.svensson@example.se"})
    assert response.status_code == 403
    assert "<html" in response.text and "Traceback" not in response.text


def test_norwegian_order_is_in_norwegian(client, demo_engine):
    html = open_order(client, "NO-2001", "ola.nordmann@example.no")
    assert '<html lang="nb">' in html
    assert "Too small" not in html and "Money back" not in html  # macros translate too
    hd = lines_of(demo_engine, "NO-2001")["HD-200"].id
    location = submit(client, "NO-2001", html, {f"qty_{hd}": "1", f"reason_{hd}": "too_small"}).headers["location"]
    status = client.get(location)
    assert '<html lang="nb">' in status.text
    with Session(demo_engine) as s:
        ret = s.exec(select(Return)).one()
        assert ret.is_norway and ret.language == "nb"


def test_language_switcher_keeps_the_page(client):
    page = client.get("/?lang=fi")
    assert '<html lang="fi">' in page.text
    assert '<html lang="fi">' in client.get("/").text  # remembered in a cookie


def test_unknown_pages_get_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "<html" in response.text
