"""Support in the back-office over HTTP: search, the staff return page, notes, resending the link, registering."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlmodel import Session, select

from portal import i18n
from portal.models import Order, OrderLine, OutboxMessage, Return, ReturnEvent, ReturnLine
from portal.returns import policy, service
from tests.integration.conftest import csrf_of, nonce_of

ROW_RE = re.compile(r'data-rma="(R[0-9A-Z]{7})"')


def register(engine, number: str, picks: dict[str, int] | None = None, nonce: str | None = None,
             resolution: str = "refund", language: str = "sv") -> str:
    """A consumer return straight through the service: {sku: quantity}, default one of the first returnable line."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        lines = list(s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)))
        picks = picks or {next(l.sku for l in lines if l.returnable): 1}
        requested = [policy.RequestedLine(l.id, str(picks[l.sku]), "too_small", "") for l in lines if l.sku in picks]
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=requested, resolution=resolution, language=language,
            form_nonce=nonce or f"nonce-{number}-{sorted(picks.items())}-0123456789"), date.today())
        s.commit()
        return ret.rma


def found(client, q: str | None) -> list[str]:
    response = client.get("/staff/returns", params={} if q is None else {"q": q})
    assert response.status_code == 200, response.text
    return ROW_RE.findall(response.text)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#34;", '"').replace("&#39;", "'")


def events(engine, rma: str, type_: str | None = None) -> list[ReturnEvent]:
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        stmt = select(ReturnEvent).where(ReturnEvent.return_id == ret.id).order_by(ReturnEvent.id)
        if type_:
            stmt = stmt.where(ReturnEvent.type == type_)
        return list(s.exec(stmt))


def outbox(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


# --- Search ----------------------------------------------------------------------------------------


def test_each_search_kind_finds_its_return_and_nothing_else(staff_client, demo_engine):
    anna = register(demo_engine, "SE-1001")          # Anna Svensson, +46701234567
    ola = register(demo_engine, "NO-2001")           # Ola Nordmann, +4791234567
    freja = register(demo_engine, "DK-3001")         # Freja Nielsen, +4520123456
    maja = register(demo_engine, "SE-1003")          # Maja Berg (outside the window: pending approval)
    ingrid = register(demo_engine, "NO-2004")        # Ingrid Berg
    aino = register(demo_engine, "FI-4001")          # Aino Virtanen, +358401234567
    with Session(demo_engine) as s:
        s.exec(sa.update(Return).where(Return.rma == ola).values(tracking_number="00370712345678901234"))
        s.commit()
    support = staff_client("support")

    cases = {
        anna.lower()[:4] + "-" + anna.lower()[4:]: {anna},  # RMA typed sloppily
        "se-1001": {anna},                                  # order number, any case
        "ANNA.Svensson@EXAMPLE.se": {anna},                 # e-mail, any case
        "070-123 45 67": {anna},                            # Swedish local phone form
        "+46 70 123 45 67": {anna},                         # E.164 with spaces
        "0046701234567": {anna},                            # 00 instead of +
        "912 34 567": {ola},                                # Norwegian local form (no trunk 0)
        "040 123 4567": {aino},                             # Finnish local form
        "00370712345678901234": {ola},                      # tracking number
        "svens": {anna},                                    # last-name prefix
        "FREJA": {freja},                                   # first name, any case
        "Freja Nielsen": {freja},                           # full name
        "nielsen freja": {freja},                           # full name, last name first
        "berg": {maja, ingrid},                             # two customers with that last name
        "ingrid berg": {ingrid},
    }
    for q, expected in cases.items():
        assert set(found(support, q)) == expected, q

    nothing = support.get("/staff/returns", params={"q": "nobody@example.com"})
    assert nothing.status_code == 200 and ROW_RE.findall(nothing.text) == []
    assert "No returns found" in nothing.text
    assert found(support, "R0000000") == [] and found(support, "berga") == [] and found(support, "Ola Berg") == []
    assert found(support, "an%") == [] and found(support, "ann_") == [] and found(support, "anna\x00") == [anna]  # LIKE wildcards, NUL
    assert support.get("/staff/orders/SE%00/register").status_code == 404

    # An empty query lists the newest returns first, and everyone with a login may search.
    assert found(staff_client("warehouse"), None) == [aino, ingrid, maja, freja, ola, anna]
    assert found(support, "   ") == [aino, ingrid, maja, freja, ola, anna]


def test_search_shows_status_refund_state_and_offers_registering(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001")
    support = staff_client("support")
    page = support.get("/staff/returns", params={"q": "SE-1001"}).text
    row = page[page.index(f'data-rma="{rma}"'):]
    row = row[:row.index("</tr>")]
    assert "label issued" in row and "SE-1001" in row and "Anna Svensson" in row and "no refund yet" in row
    assert 'href="/staff/orders/SE-1001/register"' in row
    # An order without any return is still offered, so support can register the first one.
    empty = support.get("/staff/returns", params={"q": "SE-1002"}).text
    assert "No returns found" in empty and 'href="/staff/orders/SE-1002/register"' in empty
    # The warehouse may search but not register: no links to a page it cannot open.
    assert "/register" not in staff_client("warehouse").get("/staff/returns", params={"q": "SE-1001"}).text


# --- The return page, notes -----------------------------------------------------------------------


def test_return_page_shows_lines_estimate_due_date_and_timeline(staff_client, demo_engine, settings, client):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2, "HD-200": 1})
    support = staff_client("support")
    page = support.get(f"/staff/returns/{rma.lower()}")
    assert page.status_code == 200
    html = text_of(page.text)
    assert f"Return {rma}" in html and "Anna Svensson" in html and "anna.svensson@example.se" in html
    assert "+46701234567" in html and "Svenska (sv)" in html and "Version 1" in html
    assert "Organic cotton T-shirt" in html and "Merino hoodie" in html and "too small" in html
    # 2 x 299.00 + (1 199.00 - 120.00 line discount) = 1 677.00; delivery not refunded (socks kept).
    assert "Expected refund SEK1,677.00" in html.replace("\xa0", "")
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        earliest = i18n.local_date(ret.created_at + timedelta(days=14), "en", settings.timezone, "long")
        token = ret.status_token
    assert f"Due date not fixed yet (at the earliest {earliest})" in html
    assert "waiting for the goods or proof of sending" in html
    assert f'href="http://testserver.local/r/{rma}/{token}"' in page.text
    assert f'href="/staff/returns/{rma}/inspect"' not in page.text  # support does not inspect
    assert f'href="/staff/returns/{rma}/refund"' in page.text
    assert 'href="/staff/orders/SE-1001/register"' in page.text
    assert [e.type for e in events(demo_engine, rma)] == ["return.registered", "label.issued"]
    assert html.index("label.issued") < html.index("return.registered")  # newest first

    with Session(demo_engine) as s:  # the parcel arrives: the due date is fixed
        s.exec(sa.update(Return).where(Return.rma == rma).values(arrived_at=datetime.now(timezone.utc)))
        s.commit()
    html = text_of(support.get(f"/staff/returns/{rma}").text)
    assert f"Legally due by {earliest}." in html

    note = "Customer called: wants the refund to her card, not store credit."
    response = support.post(f"/staff/returns/{rma}/notes", data={"_csrf_token": csrf_of(page.text), "note": note},
                            follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith(f"/staff/returns/{rma}")
    shown = support.get(response.headers["location"]).text
    entry = shown[shown.index('data-type="note.added"'):]
    entry = text_of(entry[:entry.index("</tr>")])
    assert note in entry and "support-0@shop.example" in entry and "(support)" in entry
    [saved] = events(demo_engine, rma, "note.added")
    assert saved.actor == "support-0@shop.example" and saved.data["text"] == note and saved.data["role"] == "support"
    # Notes are for staff: the customer's status page does not show them.
    status = client.get(f"/r/{rma}/{token}")
    assert status.status_code == 200 and note not in status.text

    warehouse = staff_client("warehouse")
    wpage = warehouse.get(f"/staff/returns/{rma}")
    assert f'href="/staff/returns/{rma}/inspect"' in wpage.text and "resend-link" not in wpage.text
    assert warehouse.post(f"/staff/returns/{rma}/notes", data={"_csrf_token": csrf_of(wpage.text), "note": "Box dented"},
                          follow_redirects=False).status_code == 303
    assert [e.actor for e in events(demo_engine, rma, "note.added")] == ["support-0@shop.example", "warehouse-1@shop.example"]


def test_staff_events_show_before_and_after(staff_client, demo_engine):
    from portal.staff.accounts import StaffPrincipal
    from portal.staff.common import staff_event

    rma = register(demo_engine, "DK-3001")
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        staff_event(s, ret, StaffPrincipal(1, "ada@shop.example", "Ada", "admin"), "line.inspected",
                    before={"condition": "unknown"}, after={"condition": "as_new_marker"})
        s.commit()
    html = staff_client("support").get(f"/staff/returns/{rma}").text
    entry = html[html.index('data-type="line.inspected"'):]
    entry = text_of(entry[:entry.index("</tr>")])
    assert "ada@shop.example" in entry and "Before" in entry and "unknown" in entry and "After" in entry
    assert "as_new_marker" in entry


def test_note_validation(staff_client, demo_engine):
    rma = register(demo_engine, "FI-4001")
    support = staff_client("support")
    csrf = csrf_of(support.get(f"/staff/returns/{rma}").text)
    for text, message in (("", "Write the note"), ("   \n ", "Write the note"), ("x" * 2001, "too long")):
        response = support.post(f"/staff/returns/{rma}/notes", data={"_csrf_token": csrf, "note": text})
        assert response.status_code == 400, text
        assert 'id="note-error"' in response.text and message in response.text
    assert events(demo_engine, rma, "note.added") == []
    longest = support.post(f"/staff/returns/{rma}/notes", data={"_csrf_token": csrf, "note": "y" * 2000},
                           follow_redirects=False)
    assert longest.status_code == 303 and len(events(demo_engine, rma, "note.added")) == 1
    assert support.post(f"/staff/returns/{rma}/notes", data={"_csrf_token": csrf, "note": "nul\x00byte"},
                        follow_redirects=False).status_code == 303
    assert [e.data["text"] for e in events(demo_engine, rma, "note.added")] == ["y" * 2000, "nulbyte"]
    assert support.post("/staff/returns/R0000000/notes", data={"_csrf_token": csrf, "note": "hi"}).status_code == 404
    assert support.get("/staff/returns/R0000000").status_code == 404


# --- Resending the status link -------------------------------------------------------------------


def test_resend_link_queues_one_email_per_click_and_stops_at_three_an_hour(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001")
    support = staff_client("support")
    page = support.get(f"/staff/returns/{rma}").text
    csrf = csrf_of(page)
    first = support.post(f"/staff/returns/{rma}/resend-link", data={"_csrf_token": csrf}, follow_redirects=False)
    assert first.status_code == 303
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
    [message] = outbox(demo_engine)
    status_url = f"http://testserver.local/r/{rma}/{ret.status_token}"
    assert message.channel == "email" and message.destination == "anna.svensson@example.se"
    assert message.event_type == "status_link.resent" and message.return_id == ret.id
    assert message.idempotency_key == f"status-link:{ret.id}:0"
    assert message.payload["status_url"] == status_url and status_url in message.payload["text"]
    assert message.payload["language"] == "sv"
    assert message.payload["subject"] == i18n.gettext("sv", "Return %(rma)s") % {"rma": rma} != f"Return {rma}"
    [event] = events(demo_engine, rma, "status_link.resent")
    assert event.actor == "support-0@shop.example" and event.data["after"]["to"] == "anna.svensson@example.se"
    assert "status_link.resent" in support.get(first.headers["location"]).text

    for _ in range(2):
        assert support.post(f"/staff/returns/{rma}/resend-link", data={"_csrf_token": csrf},
                            follow_redirects=False).status_code == 303
    fourth = support.post(f"/staff/returns/{rma}/resend-link", data={"_csrf_token": csrf})
    assert fourth.status_code == 429
    assert "already sent 3 times within the last hour" in fourth.text and 'id="resend-error"' in fourth.text
    assert [m.idempotency_key for m in outbox(demo_engine)] == [f"status-link:{ret.id}:{n}" for n in range(3)]
    assert len(events(demo_engine, rma, "status_link.resent")) == 3
    # Another return has its own allowance.
    other = register(demo_engine, "DK-3001")
    assert support.post(f"/staff/returns/{other}/resend-link", data={"_csrf_token": csrf},
                        follow_redirects=False).status_code == 303
    assert len(outbox(demo_engine)) == 4


def test_resend_counts_the_last_sixty_minutes_not_the_clock_hour(staff_client, demo_engine):
    """Three resends at 10:59 and three more at 11:00 would pass a fixed window; the timeline refuses."""
    from portal.staff import return_view
    from portal.staff.accounts import StaffPrincipal

    rma = register(demo_engine, "SE-1001")
    sender = StaffPrincipal(1, "s@shop.example", "S", "support")
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        for _ in range(3):
            return_view.resend_status_link(s, ret, sender, "http://x", allowed_by_counter=True)
        s.commit()
        try:
            return_view.resend_status_link(s, ret, sender, "http://x", allowed_by_counter=True)
        except return_view.SupportError as exc:
            assert exc.status_code == 429 and "3 times" in exc.fields["resend"]
        else:
            raise AssertionError("a fourth resend within the hour went through")
        s.rollback()
        s.exec(sa.update(ReturnEvent).where(ReturnEvent.type == "status_link.resent")
               .values(at=datetime.now(timezone.utc) - timedelta(minutes=61)))
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        return_view.resend_status_link(s, ret, sender, "http://x", allowed_by_counter=True)
        s.commit()
    assert len(outbox(demo_engine)) == 4


def test_warehouse_cannot_resend_or_register(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001")
    warehouse = staff_client("warehouse")
    csrf = csrf_of(warehouse.get(f"/staff/returns/{rma}").text)
    assert warehouse.post(f"/staff/returns/{rma}/resend-link", data={"_csrf_token": csrf}).status_code == 403
    assert warehouse.get("/staff/orders/SE-1001/register").status_code == 403
    assert outbox(demo_engine) == []


# --- Registering on the customer's behalf ----------------------------------------------------------


def test_register_on_behalf_records_the_staff_member_and_the_status_link_works(staff_client, demo_engine, client):
    support = staff_client("support")
    form = support.get("/staff/orders/se-1001/register")
    assert form.status_code == 200 and "Anna Svensson" in form.text
    assert '<option value="sv" selected>' in form.text  # the customer's language is preselected
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        lines = {l.sku: l.id for l in s.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
    ts, hd = lines["TS-100"], lines["HD-200"]
    data = {"_csrf_token": csrf_of(form.text), "form_nonce": nonce_of(form.text), "resolution": "refund", "language": "en",
            f"qty_{ts}": "1", f"reason_{ts}": "too_large", f"qty_{hd}": "1", f"reason_{hd}": "damaged",
            f"comment_{hd}": "Seam open, told us on the phone"}
    response = support.post("/staff/orders/SE-1001/register", data=data, follow_redirects=False)
    assert response.status_code == 303
    rma = re.search(r"/staff/returns/(R[0-9A-Z]{7})", response.headers["location"]).group(1)
    again = support.post("/staff/orders/SE-1001/register", data=data, follow_redirects=False)  # double submit
    assert again.status_code == 303 and rma in again.headers["location"]
    with Session(demo_engine) as s:
        [ret] = s.exec(select(Return).where(Return.order_id == order.id)).all()
        assert ret.rma == rma and ret.language == "en" and ret.status == "label_issued"
        got = {(l.order_line_id, l.quantity, l.reason, l.comment) for l in s.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id))}
        assert got == {(ts, 1, "too_large", ""), (hd, 1, "damaged", "Seam open, told us on the phone")}
    registered = events(demo_engine, rma, "return.registered")
    assert [e.actor for e in registered] == ["support-0@shop.example"]

    page = support.get(response.headers["location"])
    assert "Return registered on the customer" in page.text
    entry = page.text[page.text.index('data-type="return.registered"'):]
    assert "support-0@shop.example" in entry[:entry.index("</tr>")]
    status_url = re.search(r'href="http://testserver\.local(/r/R[0-9A-Z]{7}/[A-Za-z0-9_-]+)"', page.text).group(1)
    status = client.get(status_url)  # what the customer sees, without any login
    assert status.status_code == 200 and rma in status.text and "Merino hoodie" in status.text


def test_register_on_behalf_explains_bad_input_next_to_the_field(staff_client, demo_engine):
    support = staff_client("support")
    form = support.get("/staff/orders/SE-1001/register").text
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        ts = s.exec(select(OrderLine.id).where(OrderLine.order_id == order.id, OrderLine.sku == "TS-100")).one()
    base = {"_csrf_token": csrf_of(form), "form_nonce": nonce_of(form), "resolution": "refund", "language": "sv"}

    nothing = support.post("/staff/orders/SE-1001/register", data=base)
    assert nothing.status_code == 400 and "Enter a quantity for at least one line." in nothing.text
    too_many = support.post("/staff/orders/SE-1001/register", data={**base, f"qty_{ts}": "3", f"reason_{ts}": "too_small"})
    assert too_many.status_code == 400 and f'id="qty_{ts}-error"' in too_many.text
    assert "more than can still be returned" in too_many.text and 'value="3"' in too_many.text
    no_reason = support.post("/staff/orders/SE-1001/register", data={**base, f"qty_{ts}": "1"})
    assert no_reason.status_code == 400 and f'id="reason_{ts}-error"' in no_reason.text
    bad_language = support.post("/staff/orders/SE-1001/register",
                                data={**base, "language": "de", f"qty_{ts}": "1", f"reason_{ts}": "too_small"})
    assert bad_language.status_code == 400 and 'id="language-error"' in bad_language.text
    forged = support.post("/staff/orders/SE-1001/register", data={**base, "qty_999999": "1"})
    assert forged.status_code == 400 and "did not match the order" in forged.text
    assert support.get("/staff/orders/XX-0000/register").status_code == 404
    with Session(demo_engine) as s:
        assert s.exec(select(sa.func.count()).select_from(Return)).one() == 0


def test_norwegian_return_page_shows_the_customs_match_per_line(staff_client, demo_engine):
    from portal.models import ReturnLineCustoms

    rma = register(demo_engine, "NO-2001", {"HD-200": 1, "TS-100": 2})
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        rows = list(s.exec(select(ReturnLineCustoms).join(ReturnLine).where(ReturnLine.return_id == ret.id)))
        assert len(rows) == 2 and all(r.mrn and r.relief == "F01" for r in rows)
        # One line loses its match: staff must see the flag and the failing rule's reason.
        rows[0].needs_attention = True
        rows[0].results = [*rows[0].results, {"ok": False, "code": "test_rule", "reason": "Goods item marker-reason"}]
        s.add(rows[0])
        s.commit()
        mrn = rows[0].mrn
    html = text_of(staff_client("warehouse").get(f"/staff/returns/{rma}").text)
    customs = html[html.index("Norway customs"):html.index("Refund")]
    assert f"HD-200 {mrn} item" in customs and f"TS-100 {mrn} item" in customs and customs.count("6110 / F01") == 2
    assert "needs attention" in customs and "test_rule: Goods item marker-reason" in customs
    assert "item 1 × 1" in customs or "item 2 × 1" in customs
