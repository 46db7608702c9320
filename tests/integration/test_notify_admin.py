"""Back-office for notification rules: create with validation, activate, preview with SMS details, test-send."""

from __future__ import annotations

import re
from datetime import date

from sqlmodel import Session, select

from portal.models import NotificationRule, NotificationTemplate, Order, OrderLine, OutboxMessage, Return
from portal.returns import policy, service
from tests.integration.conftest import csrf_of


def _form(csrf: str, **over) -> dict:
    data = {
        "_csrf_token": csrf, "name": "Arrived", "trigger": "parcel.arrived", "channels": ["email", "sms"],
        "audience": "customer", "offset_days": "0", "sender_name": "Nordic Shop", "sms_sender_id": "NordicShop",
        "subject_sv": "Retur {{ rma }} mottagen", "body_text_sv": "Hej {{ first_name }}!", "body_html_sv": "<p>Hej {{ first_name }}</p>",
        "sms_text_sv": "Hej {{ first_name }}! Retur {{ rma }} är här. Łódź",
        "subject_en": "Return {{ rma }} received", "body_text_en": "Hi {{ first_name }}!", "sms_text_en": "Hi {{ first_name }} €",
    }
    data.update(over)
    return data


def _register(engine) -> str:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce="notify-admin-0001"), date.today())
        s.commit()
        return ret.rma


def _rules(engine) -> list[NotificationRule]:
    with Session(engine) as s:
        return list(s.exec(select(NotificationRule)))


def test_create_refuses_unknown_variable_and_bad_sender_ids(staff_client, demo_engine):
    admin = staff_client("admin")
    csrf = csrf_of(admin.get("/staff/notifications/new").text)
    bad = _form(csrf, subject_sv="Hej {{ fornamn }}", sender_name="x" * 51, sms_sender_id="1Shop")
    response = admin.post("/staff/notifications", data=bad)
    assert response.status_code == 400
    assert re.search(r'id="subject_sv-error">Unknown variable: fornamn<', response.text)
    assert 'id="sender_name-error">At most 50 characters' in response.text
    assert 'id="sms_sender_id-error">3–11 letters or digits' in response.text
    assert "{{ fornamn }}" in response.text  # what was typed is kept
    assert _rules(demo_engine) == []
    for sender_id in ("AB", "ABCDEFGHIJKL", "Shop-1"):
        r = admin.post("/staff/notifications", data=_form(csrf, sms_sender_id=sender_id))
        assert r.status_code == 400 and 'id="sms_sender_id-error"' in r.text, sender_id
    assert _rules(demo_engine) == []


def test_create_activate_preview_and_test_send(staff_client, demo_engine):
    rma = _register(demo_engine)
    admin = staff_client("admin")
    csrf = csrf_of(admin.get("/staff/notifications/new").text)
    created = admin.post("/staff/notifications", data=_form(csrf), follow_redirects=False)
    assert created.status_code == 303
    (rule,) = _rules(demo_engine)
    assert not rule.active and rule.channels == ["email", "sms"]
    assert rule.conditions == {"sender_name": "Nordic Shop", "sms_sender_id": "NordicShop"}
    with Session(demo_engine) as s:
        langs = sorted(t.language for t in s.exec(select(NotificationTemplate).where(NotificationTemplate.rule_id == rule.id)))
    assert langs == ["en", "sv"]

    listing = admin.get("/staff/notifications")
    assert listing.status_code == 200 and f'id="rule-{rule.id}"' in listing.text and "inactive" in listing.text

    page = admin.get(f"/staff/notifications/{rule.id}")
    activated = admin.post(f"/staff/notifications/{rule.id}/activate", data={"_csrf_token": csrf_of(page.text)},
                           follow_redirects=False)
    assert activated.status_code == 303 and _rules(demo_engine)[0].active

    preview = admin.get(f"/staff/notifications/{rule.id}/preview", params={"rma": rma})
    assert preview.status_code == 200
    html = preview.text
    sv_sms = html.split('id="preview-sv-sms"')[1].split("</section>")[0]
    assert "Hej Anna! Retur " + rma in sv_sms and '<dd class="encoding">UCS-2</dd>' in sv_sms
    assert "<code>Ł</code>" in sv_sms and "<code>ź</code>" in sv_sms and "<code>é</code>" not in sv_sms
    en_sms = html.split('id="preview-en-sms"')[1].split("</section>")[0]
    assert '<dd class="encoding">GSM-7</dd>' in en_sms and '<dd class="characters">10 ' in en_sms  # "Hi Anna €"
    assert "Return " + rma + " received" in html.split('id="preview-en-email"')[1]

    unknown = admin.get(f"/staff/notifications/{rule.id}/preview", params={"rma": "R0000000"})
    assert unknown.status_code == 400 and "No return R0000000." in unknown.text

    bad = admin.post(f"/staff/notifications/{rule.id}/test-send", data={
        "_csrf_token": csrf_of(preview.text), "rma": rma, "language": "sv", "channel": "sms", "destination": "123"})
    assert bad.status_code == 400 and 'id="destination-error"' in bad.text
    sent = admin.post(f"/staff/notifications/{rule.id}/test-send", data={
        "_csrf_token": csrf_of(preview.text), "rma": rma, "language": "sv", "channel": "sms",
        "destination": "070-765 43 21"}, follow_redirects=False)
    assert sent.status_code == 303
    with Session(demo_engine) as s:
        (message,) = s.exec(select(OutboxMessage).where(OutboxMessage.event_type.like("notify.test.%"))).all()
    assert (message.channel, message.destination) == ("sms", "+46707654321")
    assert message.payload["text"].startswith("Hej Anna! Retur " + rma) and message.return_id is None


def test_edit_with_stale_version_is_409(staff_client, demo_engine):
    admin = staff_client("admin")
    csrf = csrf_of(admin.get("/staff/notifications/new").text)
    admin.post("/staff/notifications", data=_form(csrf))
    (rule,) = _rules(demo_engine)
    page = admin.get(f"/staff/notifications/{rule.id}").text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    saved = admin.post(f"/staff/notifications/{rule.id}", data=_form(csrf, name="Renamed", version=version,
                                                                      subject_en="", body_text_en="", sms_text_en=""),
                       follow_redirects=False)
    assert saved.status_code == 303
    (rule,) = _rules(demo_engine)
    assert rule.name == "Renamed"
    with Session(demo_engine) as s:
        assert [t.language for t in s.exec(select(NotificationTemplate).where(NotificationTemplate.rule_id == rule.id))] == ["sv"]
    stale = admin.post(f"/staff/notifications/{rule.id}", data=_form(csrf, name="Again", version=version))
    assert stale.status_code == 409
    assert _rules(demo_engine)[0].name == "Renamed"
    assert admin.get("/staff/notifications/99999").status_code == 404


def test_support_may_view_but_not_change(staff_client, demo_engine):
    admin = staff_client("admin")
    csrf = csrf_of(admin.get("/staff/notifications/new").text)
    admin.post("/staff/notifications", data=_form(csrf))
    (rule,) = _rules(demo_engine)
    support = staff_client("support")
    assert support.get("/staff/notifications").status_code == 200
    view = support.get(f"/staff/notifications/{rule.id}")
    assert view.status_code == 200 and "<fieldset disabled>" in view.text
    token = csrf_of(support.get("/staff/returns").text)
    assert support.post(f"/staff/notifications/{rule.id}/activate", data={"_csrf_token": token}).status_code == 403
    assert not _rules(demo_engine)[0].active
    assert staff_client("warehouse").get("/staff/notifications").status_code == 403
