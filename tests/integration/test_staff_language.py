"""The back-office in English and Swedish: each staff user's own language, a switch in the header (audited),
the log-in page following the browser, Swedish dates and money, and staff error pages in the staff language.
Consumer error pages: the detail is in the consumer's language too."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

from litestar.testing import TestClient
from sqlmodel import Session, select

from portal import i18n
from portal.app import create_app
from portal.models import AuditEntry, Order, OrderLine, Return, StaffUser
from portal.returns import policy, service
from tests.integration.conftest import csrf_of, login, make_staff

LANGUAGES = ("sv", "nb", "da", "fi", "en")


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&#34;", '"')


def register(engine, number: str, nonce: str) -> Return:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=nonce), date.today())
        s.commit()
        s.refresh(ret)
        return ret


def switch_language(client, language: str, back_to: str):
    page = client.get(back_to)
    return client.post("/staff/account/language", data={"_csrf_token": csrf_of(page.text), "language": language,
                                                         "next": back_to}, follow_redirects=False)


def staff_user(engine, email: str) -> StaffUser:
    with Session(engine) as s:
        return s.exec(select(StaffUser).where(StaffUser.email == email)).one()


def test_a_swedish_staff_user_sees_the_back_office_in_swedish_and_can_switch_back(settings, demo_engine):
    ret = register(demo_engine, "SE-1001", "nonce-staff-language-0001")
    make_staff(demo_engine, "admin", "astrid@shop.example")
    with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as c:
        assert login(c, "astrid@shop.example").status_code == 302
        english = c.get("/staff/receive")
        assert '<html lang="en">' in english.text and "<h1>Receive parcels</h1>" in english.text
        assert ">På svenska</button>" in english.text

        switched = switch_language(c, "sv", "/staff/receive")
        assert switched.status_code in (302, 303) and switched.headers["location"] == "/staff/receive"
        assert staff_user(demo_engine, "astrid@shop.example").language == "sv"
        with Session(demo_engine) as s:
            [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "staff.language_changed")).all()
        assert entry.actor == "astrid@shop.example" and entry.before == {"language": "en"} and entry.after == {"language": "sv"}

        receive = c.get("/staff/receive")
        assert '<html lang="sv">' in receive.text
        for nav in ("Ta emot", "Returer", "Återbetalningar", "Översikt", "Norge", "Aviseringar", "Användare", "Varumärke"):
            assert f">{nav}</a>" in receive.text, nav
        assert "<h1>Ta emot paket</h1>" in receive.text and ">In English</button>" in receive.text
        assert "<h1>Hitta en retur</h1>" in c.get("/staff/returns").text
        notifications = c.get("/staff/notifications").text
        assert "<h1>Aviseringsregler</h1>" in notifications and "Leveranslogg" in notifications
        assert "<h1>Översikt</h1>" in c.get("/staff/dashboard").text
        assert "<h1>Användare</h1>" in c.get("/staff/users").text

        page = c.get(f"/staff/returns/{ret.rma}")
        assert page.status_code == 200
        body = text_of(page.text)
        assert f"Retur {ret.rma}" in body and "Sammanfattning" in body and "Tidslinje" in body
        assert "registrerad" in body and "för liten" in body  # status and reason by their Swedish names
        with Session(demo_engine) as s:  # money and dates in Swedish
            line = s.exec(select(OrderLine).where(OrderLine.order_id == ret.order_id, OrderLine.returnable)).first()
            price = i18n.money(line.unit_price_minor, "SEK", "sv")
            created = i18n.local_datetime(ret.created_at, "sv", settings.timezone)
        assert price in page.text.replace("&nbsp;", "\u00a0") and created in page.text

        # A run-time message next to a field, in Swedish.
        note = c.post(f"/staff/returns/{ret.rma}/notes", data={"_csrf_token": csrf_of(page.text), "note": "   "})
        assert note.status_code == 400 and "Skriv anteckningen innan du sparar den." in note.text

        # A staff error page: the consumer look, the staff user's language, the detail translated.
        missing = c.get("/staff/returns/R0000000")
        assert missing.status_code == 404
        assert "Vi hittade inte sidan" in missing.text and "Ingen retur med RMA R0000000." in missing.text

        back = switch_language(c, "en", f"/staff/returns/{ret.rma}")
        assert back.headers["location"] == f"/staff/returns/{ret.rma}"
        english_page = text_of(c.get(f"/staff/returns/{ret.rma}").text)
        assert f"Return {ret.rma}" in english_page and "Summary" in english_page and "too small" in english_page
        assert i18n.money(line.unit_price_minor, "SEK", "en") in c.get(f"/staff/returns/{ret.rma}").text
        assert staff_user(demo_engine, "astrid@shop.example").language == "en"


def test_the_language_switch_refuses_other_languages_and_needs_csrf(settings, demo_engine, staff_client):
    c = staff_client("warehouse")
    page = c.get("/staff/receive")
    refused = c.post("/staff/account/language", data={"_csrf_token": csrf_of(page.text), "language": "de"})
    assert refused.status_code == 400 and "Choose English or Swedish." in refused.text
    assert c.post("/staff/account/language", data={"language": "sv"}).status_code == 403
    with Session(demo_engine) as s:
        assert s.exec(select(StaffUser).where(StaffUser.language == "sv")).first() is None
    # An unsafe "next" goes to the start page, not to another site.
    away = c.post("/staff/account/language", data={"_csrf_token": csrf_of(page.text), "language": "sv",
                                                   "next": "https://evil.example/"}, follow_redirects=False)
    assert away.headers["location"] == "/staff/"


def test_the_log_in_page_follows_the_browser_language(client):
    swedish = client.get("/staff/login", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert '<html lang="sv">' in swedish.text and "<h1>Inloggning för personal</h1>" in swedish.text
    assert ">Lösenord</label>" in swedish.text and ">Logga in</button>" in swedish.text
    english = client.get("/staff/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "<h1>Staff log-in</h1>" in english.text
    wrong = client.post("/staff/login", headers={"Accept-Language": "sv"},
                        data={"_csrf_token": csrf_of(swedish.text), "email": "nobody@shop.example", "password": "x" * 12})
    assert wrong.status_code == 401 and "Fel e-postadress eller lösenord." in wrong.text


# --- Consumer error pages: the detail in the consumer's language ---------------------------------

DETAILS = {
    403: "Your form expired or was sent from another page. Please go back, reload and try again.",
    404: "This status link is not valid. Check that you copied the whole link.",
    409: "There is no label for this return: it is not approved, or it was cancelled.",
    429: "Too many attempts. Please wait a few minutes and try again.",
    503: "Please try again in a minute.",
}


def detail_in(language: str, status: int) -> str:
    return i18n.gettext(language, DETAILS[status])


def assert_detail(response, language: str, status: int) -> None:
    assert response.status_code == status, (language, status, response.text[:300])
    expected = detail_in(language, status)
    if language != "en":
        assert expected != DETAILS[status], f"{DETAILS[status]!r} is not translated to {language}"
    assert f"<p>{expected}</p>" in response.text.replace("&#39;", "'"), (language, status)
    assert f'lang="{language}"' in response.text


def test_consumer_error_pages_show_the_detail_in_each_language(settings, demo_engine, database_url):
    pending = register(demo_engine, "SE-1003", "nonce-error-pages-0001")  # outside the window: waits for approval
    assert pending.status == "pending_approval"
    limited = replace(settings, status_miss_limit=len(LANGUAGES), status_miss_window_s=600)
    with TestClient(create_app(limited, demo_engine), base_url="http://testserver.local") as c:
        for language in LANGUAGES:
            assert_detail(c.post(f"/?lang={language}", data={"order": "SE-1001"}), language, 403)  # no CSRF token
            assert_detail(c.get(f"/r/{pending.rma}/{pending.status_token}/label.pdf?lang={language}"), language, 409)
        for language in LANGUAGES:  # wrong links up to the limit, then every link waits
            assert_detail(c.get(f"/r/{pending.rma}/{'x' * 43}?lang={language}"), language, 404)
        for language in LANGUAGES:
            assert_detail(c.get(f"/r/{pending.rma}/{pending.status_token}?lang={language}"), language, 429)
        if database_url.startswith("sqlite"):  # the database gone: every page says to try again in a minute
            path = database_url.removeprefix("sqlite:///")
            import os

            os.replace(path, path + ".away")
            demo_engine.dispose()
            try:
                for language in LANGUAGES:
                    assert_detail(c.get(f"/r/{pending.rma}/{'y' * 43}?lang={language}"), language, 503)
            finally:
                demo_engine.dispose()
                os.replace(path + ".away", path)
