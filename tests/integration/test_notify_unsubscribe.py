"""Marketing mail carries RFC 8058 one-click unsubscribe; service mail does not. The link's page, its
CSRF-protected button, the mail client's cookieless one-click POST, and forged links — all over real HTTP
(Litestar's test client) with the mail taken from a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.models import (
    Consent, Customer, DeliveryEvent, NotificationRule, NotificationTemplate, Order, OrderLine, OutboxMessage,
)
from portal.notify import unsubscribe
from portal.outbox.dispatcher import dispatch_due
from portal.returns import policy as return_policy, service
from tests.integration.conftest import csrf_of
from tests.integration.outbox_helpers import running_smtp

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)


def _rule(engine, *, marketing: bool, subject: str) -> int:
    with Session(engine) as s:
        rule = NotificationRule(name=subject, trigger="parcel.arrived", channels=["email"], active=True,
                                marketing=marketing)
        s.add(rule)
        s.flush()
        for lang in ("sv", "fi", "en"):
            s.add(NotificationTemplate(rule_id=rule.id, language=lang, subject=f"{subject} {{{{ rma }}}}",
                                       body_text=f"{subject}: hej {{{{ first_name }}}}", body_html=f"<p>{subject}</p>"))
        s.commit()
        return rule.id


def _customer_of(engine, number: str) -> Customer:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        return s.get(Customer, order.customer_id)


def _consent(engine, customer_id: int, granted: bool) -> None:
    with Session(engine) as s:
        s.add(Consent(customer_id=customer_id, channel="email", purpose="marketing", granted=granted, source="checkout"))
        s.commit()


def _consents(engine, customer_id: int) -> list[Consent]:
    with Session(engine) as s:
        return list(s.exec(select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id)))


def _arrive(engine, number: str, nonce: str) -> int:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        customer = s.get(Customer, order.customer_id)
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)
                      .order_by(OrderLine.line_no)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[return_policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language=customer.language, form_nonce=nonce), date.today())
        service.advance(s, ret, "arrived", "warehouse", "parcel.arrived")  # fires the rules
        s.commit()
        return ret.id


def _send_all(engine, settings) -> list:
    with running_smtp() as (sink, port):
        report = dispatch_due(engine, now=T0, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    assert report.sent == len(sink.received)
    return [message_from_bytes(raw, policy=policy.default) for raw in sink.received]


@pytest.fixture
def app_client(settings, demo_engine):
    with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as c:
        yield c


def _link(engine, settings, number: str = "FI-4001") -> str:
    customer = _customer_of(engine, number)
    return urlsplit(unsubscribe.unsubscribe_url(settings.base_url, settings.secret_key, customer.id)).path


def test_marketing_mail_has_one_click_unsubscribe_and_service_mail_has_none(demo_engine, settings):
    _rule(demo_engine, marketing=True, subject="Erbjudande")
    _rule(demo_engine, marketing=False, subject="Paketet har kommit")
    customer = _customer_of(demo_engine, "FI-4001")
    _consent(demo_engine, customer.id, True)
    _arrive(demo_engine, "FI-4001", "unsub-fi-0001")

    mails = {m["Subject"].split(" ")[0]: m for m in _send_all(demo_engine, settings)}
    assert set(mails) == {"Erbjudande", "Paketet"}
    offer, service_mail = mails["Erbjudande"], mails["Paketet"]
    assert service_mail["List-Unsubscribe"] is None and service_mail["List-Unsubscribe-Post"] is None

    https_link, mailto_link = [part.strip().strip("<>") for part in offer["List-Unsubscribe"].split(",")]
    token = unsubscribe.make_token(settings.secret_key, customer.id, "email")
    assert https_link == f"http://testserver.local/unsubscribe/{token}"
    assert mailto_link == "mailto:kundservice@nordicoutdoor.example?subject=unsubscribe"
    assert offer["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.read_token(settings.secret_key, token) == (customer.id, "email")


def test_the_page_speaks_the_customers_language_and_the_button_needs_csrf(demo_engine, settings, app_client):
    customer = _customer_of(demo_engine, "FI-4001")
    link = _link(demo_engine, settings)
    page = app_client.get(link)
    assert page.status_code == 200
    assert '<html lang="fi">' in page.text and "Et saa enää tarjouksia sähköpostitse." in page.text
    assert "Saat edelleen viestit palautuksistasi ja hyvityksistäsi." in page.text
    assert _consents(demo_engine, customer.id) == []  # opening the link (or a link scanner) changes nothing

    forged = app_client.post(f"{link}/confirm", data={})
    assert forged.status_code == 403 and _consents(demo_engine, customer.id) == []

    done = app_client.post(f"{link}/confirm", data={"_csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert done.status_code in (302, 303) and done.headers["location"] == f"{link}?done=1"
    [consent] = _consents(demo_engine, customer.id)
    assert (consent.granted, consent.channel, consent.purpose, consent.source) == (False, "email", "marketing",
                                                                                  "unsubscribe link")
    shown = app_client.get(done.headers["location"])
    assert "Tilaus on peruttu" in shown.text and "<form" not in shown.text.split("<main", 1)[1]

    en = app_client.get(f"{link}?lang=en")
    assert "You will no longer get offers by e-mail." in en.text
    again = app_client.post(f"{link}/confirm", data={"_csrf_token": csrf_of(en.text)}, follow_redirects=False)
    assert again.status_code in (302, 303) and len(_consents(demo_engine, customer.id)) == 1  # nothing new


def test_one_click_post_from_a_mail_client_without_cookies(demo_engine, settings):
    customer = _customer_of(demo_engine, "SE-1001")
    _consent(demo_engine, customer.id, True)
    link = _link(demo_engine, settings, "SE-1001")
    with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as mail_client:
        urlencoded = mail_client.post(link, content=b"List-Unsubscribe=One-Click",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert urlencoded.status_code == 200 and "Du får inga fler erbjudanden" in urlencoded.text
        assert not mail_client.cookies  # nothing needed, nothing set: the token is the authority
        multipart = mail_client.post(link, files={"List-Unsubscribe": (None, "One-Click")})
        assert multipart.status_code == 200
    granted, withdrawn = _consents(demo_engine, customer.id)
    assert (granted.granted, withdrawn.granted, withdrawn.source) == (True, False, "unsubscribe link")  # once, not twice


def test_a_post_that_is_not_one_click_changes_nothing(demo_engine, settings, app_client):
    customer = _customer_of(demo_engine, "SE-1002")
    link = _link(demo_engine, settings, "SE-1002")
    for body in (b"", b"List-Unsubscribe=Yes", b"garbage"):
        response = app_client.post(link, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 400
        assert "Öppna länken i din webbläsare och tryck på knappen" in response.text  # the customer's Swedish
    assert _consents(demo_engine, customer.id) == []


def _forgeries(settings, customer_id: int, other_id: int) -> list[str]:
    good = unsubscribe.make_token(settings.secret_key, customer_id)
    cid, channel, mac = good.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    return [
        f"{cid}.{channel}.{flipped}",  # one character of the MAC changed
        f"{other_id}.{channel}.{mac}",  # someone else's id with this MAC
        f"{cid}.sms.{mac}",  # another channel
        unsubscribe.make_token("another-secret-key-0123456789abcdef", customer_id),  # signed with another key
        unsubscribe.make_token(settings.secret_key, 999_999),  # genuine, but no such customer
        f"{cid}.{channel}",  # truncated
        "x" * 200,  # junk
        f"{cid}.{channel}.{mac}%C3%A5",  # non-ASCII tail
    ]


def test_forged_or_damaged_links_answer_404_never_500(demo_engine, settings, app_client):
    customer, other = _customer_of(demo_engine, "NO-2001"), _customer_of(demo_engine, "DK-3001")
    csrf = csrf_of(app_client.get(_link(demo_engine, settings, "NO-2001")).text)
    for token in _forgeries(settings, customer.id, other.id):
        path = f"/unsubscribe/{token}"
        assert app_client.get(path).status_code == 404, token
        one_click = app_client.post(path, content=b"List-Unsubscribe=One-Click",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert one_click.status_code == 404, token
        assert "Den här avregistreringslänken är inte giltig" in one_click.text  # no customer: DEFAULT_LANGUAGE sv
        assert app_client.post(f"{path}/confirm", data={"_csrf_token": csrf}).status_code == 404, token
    assert _consents(demo_engine, customer.id) == [] and _consents(demo_engine, other.id) == []


def test_after_unsubscribing_the_next_marketing_mail_is_suppressed(demo_engine, settings, app_client):
    _rule(demo_engine, marketing=True, subject="Erbjudande")
    customer = _customer_of(demo_engine, "SE-1003")
    _consent(demo_engine, customer.id, True)
    link = _link(demo_engine, settings, "SE-1003")
    assert app_client.post(link, content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
    return_id = _arrive(demo_engine, "SE-1003", "unsub-se-0003")
    with Session(demo_engine) as s:
        assert s.exec(select(OutboxMessage).where(OutboxMessage.return_id == return_id,
                                                  OutboxMessage.channel == "email")).all() == []
        suppressed = s.exec(select(DeliveryEvent).where(DeliveryEvent.return_id == return_id,
                                                        DeliveryEvent.kind == "suppressed")).all()
    assert [e.detail["reason"] for e in suppressed] == ["no marketing consent"]
