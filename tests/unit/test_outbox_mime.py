"""The hand-written MIME composer: what it writes must read back, through Python's strict modern parser,
exactly as given (Nordic letters, long subjects, quoted names), and stay within the line limits."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from portal.outbox import channels, mime
from portal.outbox.channels import DeliveryError

NORDIC = "Åsa Ødegård & Æbelø: återbetalning för väskan är klar — tack!"
TEXT = "Hej Åsa,\n\nvi har tagit emot paketet (ä ö ø æ å).\n.en rad som börjar med punkt\nMvh Butiken"
HTML = "<p>Hej Åsa,</p><p>vi har tagit emot <b>paketet</b> (æ ø å).</p>" + "<span>x</span>" * 80


def _parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def _compose(**overrides) -> mime.OutgoingEmail:
    fields = dict(message_id="<outbox-7@shop.example>", from_name="Nordic Outdoor AB",
                  from_address="kundservice@nordicoutdoor.example", to="asa@example.se", subject=NORDIC,
                  text=TEXT, html=HTML, date=datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc))
    fields.update(overrides)
    return mime.compose(**fields)


def test_nordic_headers_and_bodies_read_back_exactly():
    out = _compose(from_name="Åsa på Nordic Outdoor")
    msg = _parse(out.data)
    assert msg["Subject"] == NORDIC
    assert msg["From"].addresses[0].display_name == "Åsa på Nordic Outdoor"
    assert msg["From"].addresses[0].addr_spec == "kundservice@nordicoutdoor.example"
    assert msg["To"] == "asa@example.se" and msg["Message-ID"] == "<outbox-7@shop.example>"
    assert msg["Date"].datetime == datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)
    assert msg.get_content_type() == "multipart/alternative" and msg["MIME-Version"] == "1.0"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == TEXT + "\n"
    assert html.get_content().replace("\r\n", "\n") == HTML + "\n"
    assert not msg.defects and not plain.defects and not html.defects
    assert (out.envelope_from, out.recipients) == ("kundservice@nordicoutdoor.example", ("asa@example.se",))


def test_wire_format_is_7bit_crlf_with_short_lines():
    data = _compose().data
    assert data.isascii()  # quoted-printable bodies and encoded-word headers: through any relay
    assert b"\n" not in data.replace(b"\r\n", b"")  # every line ends in CRLF, no bare LF or CR
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "=?utf-8?b?" in head and "Åsa" not in head


def test_plain_ascii_subject_stays_readable_and_long_ones_are_folded():
    msg = _parse(_compose(subject="Your return R4KX9P2T has arrived").data)
    assert "Subject: Your return R4KX9P2T has arrived\r\n" in _compose(subject="Your return R4KX9P2T has arrived").data.decode()
    long_subject = "Your return " + "and more words " * 12 + "end"
    data = _compose(subject=long_subject).data
    assert _parse(data)["Subject"] == long_subject
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert msg["Subject"] == "Your return R4KX9P2T has arrived"


@pytest.mark.parametrize("name, expected_header", [
    ("Nordic Outdoor AB", "From: Nordic Outdoor AB <kundservice@nordicoutdoor.example>"),
    ("Shop, Inc.", 'From: "Shop, Inc." <kundservice@nordicoutdoor.example>'),
    ('He said "hi"', 'From: "He said \\"hi\\"" <kundservice@nordicoutdoor.example>'),
    ("=?utf-8?q?fake?=", "From: =?utf-8?b?PT91dGYtOD9xP2Zha2U/PQ==?=\r\n <kundservice@nordicoutdoor.example>"),
])
def test_display_names_are_quoted_where_needed(name, expected_header):
    data = _compose(from_name=name).data.decode()
    assert expected_header + "\r\n" in data
    assert _parse(data.encode())["From"].addresses[0].display_name == name


def test_text_only_message_is_a_single_part():
    msg = _parse(_compose(html=None).data)
    assert msg.get_content_type() == "text/plain" and not msg.is_multipart()
    assert msg.get_content().replace("\r\n", "\n") == TEXT + "\n"


def test_boundary_cannot_occur_in_a_quoted_printable_body():
    text = "--=_" + "a" * 30 + "\n=_ looks like a boundary"
    msg = _parse(_compose(text=text).data)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text + "\n"


@pytest.mark.parametrize("field, value", [
    ("subject", "Hello\r\nBcc: victim@example.com"),
    ("from_name", "Shop\nBcc: victim@example.com"),
    ("to", "a@example.se\r\nBcc: victim@example.com"),
    ("to", "Anna <a@example.se>"),
    ("to", "not-an-address"),
    ("to", "åsa@example.se"),
    ("reply_to", "x@example.se\nBcc: y@example.com"),
])
def test_header_injection_and_non_addresses_are_refused(field, value):
    with pytest.raises(ValueError):
        _compose(**{field: value})


def test_international_domain_goes_out_in_idna_form():
    out = _compose(to="anna@strömsbruk.se")
    assert out.recipients == ("anna@xn--strmsbruk-27a.se",)
    assert _parse(out.data)["To"] == "anna@xn--strmsbruk-27a.se"


def test_payload_errors_are_permanent_delivery_errors():
    sender = ("Nordic Outdoor AB", "kundservice@nordicoutdoor.example")
    with pytest.raises(DeliveryError) as err:
        channels.email_from_payload({"subject": "Hi\nBcc: x@example.com", "text": "t"}, message_id="<m@x>",
                                    to="a@example.se", sender=sender, delivery_id="k")
    assert err.value.permanent and "line breaks" in str(err.value)


def test_list_unsubscribe_headers_are_folded_and_read_back():
    headers = channels.list_unsubscribe_headers("https://returns.example/unsubscribe/5.email.abc", "shop@example.se")
    out = _compose(headers=headers)
    msg = _parse(out.data)
    assert msg["List-Unsubscribe"] == ("<https://returns.example/unsubscribe/5.email.abc>, "
                                       "<mailto:shop@example.se?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with pytest.raises(ValueError):
        _compose(headers={"X-Bad": "a\r\nBcc: x@example.com"})


def test_extra_headers_keep_ascii_as_it_is_and_encode_other_text():
    key = "notify:5:2:email:0:åsa@lager.example"  # an internal recipient's address is part of the key
    msg = _parse(_compose(headers={"X-Portal-Delivery": key, "X-Plain": "notify:5:2:email:0"}).data)
    assert msg["X-Portal-Delivery"] == key and msg["X-Plain"] == "notify:5:2:email:0"
    with pytest.raises(ValueError):
        _compose(headers={"Bad Name": "x"})


def test_a_wrong_merchant_address_is_a_temporary_failure_not_the_messages_fault():
    with pytest.raises(DeliveryError) as err:
        channels.email_from_payload({"subject": "Hej", "text": "t"}, message_id="<m@x>", to="a@example.se",
                                    sender=("Butiken", "support at butiken"), delivery_id="k")
    assert not err.value.permanent and "sender address" in str(err.value)
