"""Brand settings: the admin page, the public logo and theme, and the brand on pages, e-mails and labels."""

from __future__ import annotations

import io
import os
import re
import time

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader
from sqlmodel import Session, select

from portal import i18n
from portal.brand.cache import BrandCache
from portal.models import AuditEntry, MerchantPolicy
from tests.integration.conftest import csrf_of
from tests.integration.test_label_download import decode, register
from tests.integration.test_notify_rules import _arrive, _outbox, _register, _rule

VERSION_RE = re.compile(r'name="version" value="([^"]*)"')
GOOD = {
    "merchant_name": "Fjällvind Outlet",
    "support_email": "hjalp@fjallvind.example",
    "support_phone": "08-765 43 21",
    "support_url": "https://fjallvind.example/hjalp",
    "brand_colour": "#5A2D82",
}


def png(size: tuple[int, int] = (300, 100), colour=(90, 45, 130)) -> bytes:
    image = Image.new("RGBA", size, (255, 255, 255, 0))
    ImageDraw.Draw(image).ellipse((0, 0, size[0] - 1, size[1] - 1), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    """Random pixels do not compress: a PNG about side * side * 3 bytes big."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (40, 20)).save(buffer, format="GIF")
    return buffer.getvalue()


def post_brand(admin, fields: dict | None = None, logo: tuple[str, bytes, str] | None = None, **extra):
    form = admin.get("/staff/settings/brand")
    assert form.status_code == 200
    data = {"_csrf_token": csrf_of(form.text), "version": VERSION_RE.search(form.text).group(1), **(fields or GOOD), **extra}
    # Browsers send an empty, nameless file part when no file was chosen.
    files = {"logo": logo or ("", b"", "application/octet-stream")}
    return admin.post("/staff/settings/brand", data=data, files=files, follow_redirects=False)


def stored(engine) -> MerchantPolicy:
    with Session(engine) as s:
        return s.exec(select(MerchantPolicy).order_by(MerchantPolicy.id)).first()


def brand_audits(engine) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == "brand.updated").order_by(AuditEntry.id)))


def test_saved_brand_shows_on_consumer_pages_without_restart(staff_client, client, demo_engine):
    assert "Nordic Outdoor AB" in client.get("/").text  # this app (another "process") has read the old brand
    client.app.state.brand_cache.max_age_s = 0.2
    admin = staff_client("admin")

    response = post_brand(admin)
    assert response.status_code == 302 and response.headers["location"] == "/staff/settings/brand?done=saved"
    saved = stored(demo_engine)
    assert (saved.merchant_name, saved.support_email, saved.support_phone, saved.support_url, saved.brand_colour) == (
        "Fjällvind Outlet", "hjalp@fjallvind.example", "+4687654321", "https://fjallvind.example/hjalp", "#5a2d82")

    # The saving app shows it at once; the form shows the phone grouped for reading.
    form = admin.get("/staff/settings/brand?done=saved").text
    assert "were saved" in form and 'value="+46 8 765 43 21"' in form and "/brand/theme.css?v=5a2d82" in form

    time.sleep(0.25)  # the other app re-reads the brand within its max age
    page = client.get("/?lang=sv").text
    assert "Fjällvind Outlet" in page and "Nordic Outdoor AB" not in page
    assert 'href="mailto:hjalp@fjallvind.example"' in page
    assert 'href="tel:+4687654321">+46 8 765 43 21</a>' in page
    assert 'href="https://fjallvind.example/hjalp"' in page
    assert '<link rel="stylesheet" href="/brand/theme.css?v=5a2d82">' in page
    theme = client.get("/brand/theme.css?v=5a2d82")
    assert theme.status_code == 200 and theme.headers["content-type"].startswith("text/css")
    assert theme.text.strip() == ":root { --brand: #5a2d82; }"
    assert "immutable" in theme.headers["cache-control"]
    assert "unsafe-inline" not in theme.headers["content-security-policy"]

    (entry,) = brand_audits(demo_engine)
    assert entry.actor.startswith("admin-") and entry.target == f"merchant_policy:{saved.id}"
    assert entry.before["merchant_name"] == "Nordic Outdoor AB" and entry.after["merchant_name"] == "Fjällvind Outlet"
    assert entry.after["support_phone"] == "+4687654321" and "logo" not in entry.after


@pytest.mark.parametrize("lang", ["sv", "nb", "da", "fi", "en"])
def test_support_contact_footer_in_every_language(staff_client, client, lang):
    assert post_brand(staff_client("admin")).status_code == 302
    client.app.state.brand_cache.invalidate()
    page = client.get(f"/?lang={lang}").text
    footer = page.split('<footer class="site">')[1]
    for message in ("Questions about your return?", "E-mail", "Phone", "Help and contact"):
        translated = i18n.gettext(lang, message)
        assert translated in footer, (lang, message)
        if lang != "en":
            assert translated != message or message == "E-mail", (lang, message)  # "E-mail" is Danish too
    assert i18n.gettext(lang, "Contact %(merchant)s:") % {"merchant": "Fjällvind Outlet"} in footer


def test_logo_upload_is_served_with_etag_and_304_and_can_be_removed(staff_client, client, demo_engine):
    admin = staff_client("admin")
    logo = png()
    assert post_brand(admin, logo=("logo.png", logo, "image/png")).status_code == 302
    saved = stored(demo_engine)
    assert saved.logo == logo and saved.logo_content_type == "image/png" and saved.logo_updated_at is not None

    client.app.state.brand_cache.invalidate()
    page = client.get("/").text
    src = re.search(r'<img src="(/brand/logo\?v=[0-9a-f]+)" alt="Fjällvind Outlet">', page)
    assert src, "the header shows the logo, with the shop's name as its text"
    client.cookies.clear()  # public: no session, no cookies needed
    served = client.get(src.group(1))
    assert served.status_code == 200 and served.content == logo and served.headers["content-type"] == "image/png"
    assert "immutable" in served.headers["cache-control"] and "set-cookie" not in served.headers
    etag = served.headers["etag"]
    unversioned = client.get("/brand/logo")
    assert unversioned.headers["etag"] == etag and unversioned.headers["cache-control"] == "public, max-age=300"
    again = client.get("/brand/logo", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""

    newer = png(colour=(20, 90, 40))
    assert post_brand(admin, logo=("logo.png", newer, "image/png")).status_code == 302
    changed = client.get("/brand/logo", headers={"If-None-Match": etag})  # a new logo, a new ETag
    assert changed.status_code == 200 and changed.content == newer and changed.headers["etag"] != etag
    (_, replaced) = brand_audits(demo_engine)
    assert replaced.before["logo"]["content_type"] == "image/png"
    assert replaced.after["logo"]["width"] == 300 and replaced.after["logo"]["bytes"] == len(newer)

    assert post_brand(admin, remove_logo="1").status_code == 302
    assert stored(demo_engine).logo is None
    assert client.get("/brand/logo").status_code == 404
    client.app.state.brand_cache.invalidate()
    page = client.get("/").text
    assert "/brand/logo" not in page and ">Fjällvind Outlet <span>" in page


@pytest.mark.parametrize(("filename", "content", "content_type", "message"), [
    ("logo.png", gif(), "image/png", "must be a PNG or JPEG image"),
    ("logo.png", b"I am a text file, honest.\n" * 20, "image/png", "must be a PNG or JPEG image"),
    ("logo.png", noise_png(450), "image/png", "at most 512 KB"),
    ("wide.png", png((2400, 40)), "image/png", "2400 × 40 pixels; at most 2000 × 2000"),
    ("cut.png", png()[:-40], "image/png", "damaged"),
])
def test_bad_logo_is_refused_next_to_the_field_and_nothing_is_saved(staff_client, demo_engine, filename, content,
                                                                    content_type, message):
    before = stored(demo_engine)
    response = post_brand(staff_client("admin"), logo=(filename, content, content_type))
    assert response.status_code == 400
    error = re.search(r'<p class="error" id="logo-error">([^<]+)</p>', response.text)
    assert error and message in error.group(1), response.text
    assert 'aria-invalid="true"' in response.text.split('id="logo"')[1].split(">")[0]
    assert 'value="Fjällvind Outlet"' in response.text and 'value="08-765 43 21"' in response.text  # as typed
    after = stored(demo_engine)
    assert (after.merchant_name, after.logo, after.logo_updated_at) == (before.merchant_name, before.logo, before.logo_updated_at)
    assert brand_audits(demo_engine) == []


def test_every_wrong_field_is_named_and_typed_values_are_kept(staff_client, demo_engine):
    typed = {"merchant_name": "N" * 51, "support_email": "not-an-address", "support_phone": "12345",
             "support_url": "http://fjallvind.example/help", "brand_colour": "#ffcc00"}
    response = post_brand(staff_client("admin"), typed, logo=("logo.png", png(), "image/png"))
    assert response.status_code == 400
    errors = dict(re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]+)</p>', response.text))
    assert set(errors) == {"merchant_name", "support_email", "support_phone", "support_url", "brand_colour"}
    assert "At most 50 characters (this is 51)" in errors["merchant_name"]
    assert "https://" in errors["support_url"]
    assert "only 1.51:1" in errors["brand_colour"] and "at least 4.5:1" in errors["brand_colour"]
    for value in typed.values():
        assert f'value="{value}"' in response.text
    assert "choose it again" in response.text  # the good logo cannot come back with the form
    assert stored(demo_engine).merchant_name == "Nordic Outdoor AB" and brand_audits(demo_engine) == []


@pytest.mark.parametrize(("colour", "accepted"), [("#767676", True), ("#777777", False), ("#1F4E79", True), ("1f4e79", False)])
def test_contrast_threshold_is_4_5_to_1(staff_client, demo_engine, colour, accepted):
    response = post_brand(staff_client("admin"), dict(GOOD, brand_colour=colour))
    assert (response.status_code == 302) is accepted, response.text
    if not accepted:
        assert "4.47:1" in response.text if colour == "#777777" else "six hexadecimal digits" in response.text


def test_a_save_over_a_newer_save_is_refused(staff_client, demo_engine):
    admin = staff_client("admin")
    stale = admin.get("/staff/settings/brand").text
    assert post_brand(admin).status_code == 302
    data = {"_csrf_token": csrf_of(stale), "version": VERSION_RE.search(stale).group(1), **GOOD, "merchant_name": "Late"}
    response = admin.post("/staff/settings/brand", data=data, files={"logo": ("", b"", "application/octet-stream")})
    assert response.status_code == 409 and "Someone else saved the brand settings" in response.text
    assert 'value="Late"' in response.text and stored(demo_engine).merchant_name == "Fjällvind Outlet"
    # Having seen the conflict, the admin may save over the newer settings.
    data["version"] = VERSION_RE.search(response.text).group(1)
    again = admin.post("/staff/settings/brand", data=data, files={"logo": ("", b"", "application/octet-stream")},
                       follow_redirects=False)
    assert again.status_code == 302 and stored(demo_engine).merchant_name == "Late"


@pytest.mark.parametrize("role", ["warehouse", "support"])
def test_only_admins_open_or_save_the_brand_settings(staff_client, role):
    c = staff_client(role)
    assert c.get("/staff/settings/brand").status_code == 403
    home = c.get("/staff/").text
    assert "/staff/settings/brand" not in home
    response = c.post("/staff/settings/brand", data={"_csrf_token": csrf_of(home), **GOOD},
                      files={"logo": ("", b"", "application/octet-stream")})
    assert response.status_code == 403


def test_oversized_request_is_refused_before_it_is_read(staff_client, demo_engine):
    response = post_brand(staff_client("admin"), logo=("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024), "image/png"))
    assert response.status_code == 413 and 'class="card error-page"' in response.text  # the error page, not a 500
    assert stored(demo_engine).merchant_name == "Nordic Outdoor AB"


def test_other_processes_see_an_edit_within_the_cache_age(demo_engine):
    now = [0.0]
    cache = BrandCache(demo_engine, max_age_s=2.0, clock=lambda: now[0])
    assert cache.get().name == "Nordic Outdoor AB"
    with Session(demo_engine) as s:  # another process saves
        s.exec(select(MerchantPolicy)).first().merchant_name = "Elsewhere AB"
        s.commit()
    now[0] = 1.9
    assert cache.get().name == "Nordic Outdoor AB"  # no query inside the max age
    now[0] = 2.0
    assert cache.fresh() is None  # stale: the event loop's reader gets nothing (a worker thread refreshes)
    assert cache.get().name == "Elsewhere AB" and cache.fresh().name == "Elsewhere AB"


def test_label_carries_the_logo_and_still_scans(staff_client, client, demo_engine):
    status_path = register(client, demo_engine, "SE-1001", "anna.svensson@example.se", "TS-100")
    rma = status_path.split("/")[2]

    def label_images(pdf: bytes) -> list[tuple[int, int]]:
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        objects = [o.get_object() for o in page["/Resources"]["/XObject"].values()]
        return sorted((o["/Width"], o["/Height"]) for o in objects if o["/Subtype"] == "/Image")

    for layout, dpi in (("a4", 150), ("thermal", 203)):
        pdf = client.get(f"{status_path}/label.pdf?layout={layout}").content
        images = label_images(pdf)
        assert len(images) == 3, images  # barcode, QR code and the demo shop's logo (360 x 120: wide)
        assert any(w > 2 * h > 2 for w, h in images)
        assert decode(pdf, dpi).get("Code128") == rma
    before = set(label_images(pdf))

    # A new logo (square) is a new fingerprint: the stored label is rendered again with it.
    assert post_brand(staff_client("admin"), logo=("square.png", png((200, 200)), "image/png")).status_code == 302
    pdf = client.get(f"{status_path}/label.pdf?layout=thermal").content
    (new_logo,) = set(label_images(pdf)) - before
    assert new_logo[0] == new_logo[1] and len(label_images(pdf)) == 3
    assert decode(pdf, 203).get("Code128") == rma
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Anna Svensson" in text


def test_email_html_has_the_logo_url_colour_and_support_contact(staff_client, client, demo_engine):
    assert post_brand(staff_client("admin"), logo=("logo.png", png(), "image/png")).status_code == 302
    version = re.search(r"/brand/logo\?v=([0-9a-f]+)", client.get("/").text).group(1)
    _rule(demo_engine, channels=("email",))
    return_id = _register(demo_engine, "SE-1001", "brand-mail-0001")
    assert _arrive(demo_engine, return_id).queued == 1
    (email,) = _outbox(demo_engine, return_id)
    html = email.payload["html"]
    assert html.startswith("<!doctype html>") and "<p>[sv] Anna</p>" in html
    logo_url = re.search(r'<img src="(https?://[^"]+/brand/logo\?v=([0-9a-f]+))" alt="Fjällvind Outlet"', html)
    assert logo_url and logo_url.group(2) == version  # absolute: a mail client has no base address
    assert "background:#5a2d82" in html
    footer = html.split("<p>[sv] Anna</p>")[1]
    assert i18n.gettext("sv", "Questions about your return?") in footer
    assert 'href="mailto:hjalp@fjallvind.example"' in footer
    assert 'href="tel:+4687654321"' in footer and "+46 8 765 43 21" in footer
    assert 'href="https://fjallvind.example/hjalp"' in footer and i18n.gettext("sv", "Help and contact") in footer
    assert client.get(f"/brand/logo?v={version}").content == stored(demo_engine).logo
