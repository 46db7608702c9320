"""The brand settings page (admin) and the public brand assets: /brand/logo and /brand/theme.css."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlmodel import Session, select

from portal.brand.cache import DEFAULT_COLOUR, BrandCache, current_logo, version_of
from portal.brand.service import BrandError, LogoChange, form_values, save_brand, settings_version
from portal.i18n import COUNTRY_LANGUAGE, staff_text
from portal.models import AuditEntry
from portal.returns import service
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.templating import page

MultipartForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
ADMIN = ("admin",)
# The logo may be 512 KB; a somewhat bigger file still reaches the form and gets its message
# next to the field, anything beyond this is refused before it is read (413).
MAX_BODY_BYTES = 2 * 1024 * 1024
LANGUAGE_REGION = {language: country for country, language in COUNTRY_LANGUAGE.items()}
FOREVER = "public, max-age=31536000, immutable"  # versioned URLs: a new logo or colour is a new URL
BRIEFLY = "public, max-age=300"
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def brand_cache(request: Request) -> BrandCache:
    return request.app.state.brand_cache


def _text(data: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):  # a repeated field, or a file where text belongs: take none of it
        return ""
    return value[:limit]


def _upload(data: dict[str, Any]) -> bytes | None:
    """The chosen file's bytes; None when no file was chosen (browsers send an empty, nameless part)."""
    upload = data.get("logo")
    if not isinstance(upload, UploadFile):
        return None
    content = upload.file.read()
    return content if upload.filename or content else None


class BrandSettingsController(Controller):
    path = "/staff/settings"
    guards = [staff_guard]
    include_in_schema = False

    def _form(self, request: Request, db: Session, values: dict[str, str], errors: dict[str, str] | None = None,
              status_code: int = 200, logo_dropped: bool = False) -> Template:
        merchant = service.get_policy(db)
        trail = db.exec(select(AuditEntry).where(AuditEntry.action == "brand.updated")
                        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(10)).all()
        return page(request, "staff/brand_settings.html", status_code=status_code, staff=staff_of(request),
                    values=values, errors=errors or {}, logo_dropped=logo_dropped, trail=trail,
                    logo_url=f"/brand/logo?v={version_of(merchant.logo_updated_at)}" if merchant.logo_content_type else "",
                    done=request.query_params.get("done") == "saved")

    @get("/brand", name="staff_brand", opt={"roles": ADMIN}, sync_to_thread=True)
    def edit(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._form(request, db, form_values(service.get_policy(db)))

    @post("/brand", name="staff_brand_save", opt={"roles": ADMIN}, sync_to_thread=True,
          request_max_body_size=MAX_BODY_BYTES)
    def save(self, request: Request, data: MultipartForm, db: NamedDependency[Session]) -> Template | Redirect:
        values = {name: _text(data, name) for name in (
            "merchant_name", "support_email", "support_phone", "support_url", "brand_colour", "version")}
        values["remove_logo"] = "1" if _text(data, "remove_logo") == "1" else ""
        upload = _upload(data)
        region = LANGUAGE_REGION.get(request.app.state.settings.default_language, "SE")
        try:
            save_brand(db, staff_of(request), values, LogoChange(upload, values["remove_logo"] == "1"),
                       region=region, client_ip=client_ip(request))
        except BrandError as exc:
            db.rollback()
            if exc.status_code == 409:  # the admin has now seen the newer save: the next save may replace it
                values["version"] = settings_version(service.get_policy(db))
            # A browser cannot be handed a file back: say so when a good logo came with bad fields.
            dropped = upload is not None and "logo" not in exc.fields
            return self._form(request, db, values, exc.fields, exc.status_code, logo_dropped=dropped)
        db.commit()  # before the cache is told, so it cannot re-read the old row
        brand_cache(request).invalidate()
        return Redirect(path="/staff/settings/brand", query_params={"done": "saved"})


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


class BrandAssetsController(Controller):
    """Public, no session: the logo for pages, e-mails and anyone's browser cache, and the theme colour."""

    path = "/brand"
    include_in_schema = False
    # No session and no CSRF cookie: a response that sets cookies is not cached by shared caches.
    opt = {"skip_session": True, "exclude_from_csrf": True}

    @get("/logo", name="brand_logo", sync_to_thread=True)
    def logo(self, request: Request, db: NamedDependency[Session]) -> Response:
        logo = current_logo(db)
        if logo is None:
            raise NotFoundException(detail=staff_text("This shop has no logo."))
        headers = {"ETag": logo.etag, "Cache-Control": FOREVER if request.query_params.get("v") == logo.version else BRIEFLY}
        if _etag_matches(request, logo.etag):
            return Response(b"", status_code=304, headers=headers)
        return Response(logo.content, media_type=logo.content_type, headers=headers)

    @get("/theme.css", name="brand_theme", sync_to_thread=False, media_type="text/css; charset=utf-8")
    def theme(self, request: Request) -> Response:
        colour = brand_cache(request).get().colour
        colour = colour.lower() if _HEX_COLOUR.match(colour) else DEFAULT_COLOUR  # it lands in CSS
        current = request.query_params.get("v") == colour.lstrip("#")
        etag = f'"theme-{colour.lstrip("#")}"'
        headers = {"ETag": etag, "Cache-Control": FOREVER if current else BRIEFLY}
        if _etag_matches(request, etag):
            return Response(b"", status_code=304, headers=headers)
        return Response(f":root {{ --brand: {colour}; }}\n", media_type="text/css; charset=utf-8", headers=headers)
