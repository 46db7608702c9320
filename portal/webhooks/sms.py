"""POST /webhooks/sms/{provider}: delivery reports from the SMS provider, verified, stored as DeliveryEvent.

- `46elks`: form fields `id`, `status` (sent | delivered | failed), `delivered`; authenticated by the shared
  secret in the URL (`…/webhooks/sms/46elks?secret=…`, from SMS_WEBHOOK_SECRET), compared in constant time.
- `twilio`: form fields `MessageSid`, `MessageStatus` (queued | sent | delivered | undelivered | failed),
  `ErrorCode`; authenticated by `X-Twilio-Signature` (base64 HMAC-SHA1 with TWILIO_AUTH_TOKEN over the URL
  plus the sorted POST parameters). The URL is the public one (BASE_URL + path + query), or the one the
  request arrived on.

A final status (delivered, failed/undelivered) is recorded once per message and kind (a repeated report
answers 200 with "recorded": false); intermediate statuses are acknowledged and not stored. Answers are
JSON; errors are RFC 9457 problems: bad signature 401, unknown provider or message id 404, bad body 400.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import sqlalchemy as sa
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody
from litestar.response import Response
from sqlmodel import Session

from portal.models import DeliveryEvent, ReturnEvent, utcnow
from portal.notify import sms_providers

log = logging.getLogger("portal.webhooks")
MAX_BODY = 16 * 1024
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
FIELDS = {"46elks": ("id", "status"), "twilio": ("MessageSid", "MessageStatus")}


def record_report(db: Session, provider_message_id: str, kind: str, detail: dict) -> tuple[DeliveryEvent | None, bool]:
    """Store a delivered/failed report against the SMS that the provider knows by this id.
    (None, False) for an unknown id; (event, False) if the same report was stored before."""
    events = DeliveryEvent.__table__
    sent = db.execute(sa.select(events.c.outbox_id, events.c.return_id)
                      .where(events.c.provider_message_id == provider_message_id, events.c.kind == "sent")
                      .order_by(events.c.id).limit(1)).first()
    if sent is None:
        return None, False
    seen = db.execute(sa.select(events.c.id).where(events.c.provider_message_id == provider_message_id,
                                                   events.c.kind == kind).limit(1)).first()
    if seen is not None:
        return db.get(DeliveryEvent, seen[0]), False
    event = DeliveryEvent(outbox_id=sent.outbox_id, return_id=sent.return_id, kind=kind,
                          provider_message_id=provider_message_id, detail=detail, at=utcnow())
    db.add(event)
    if kind == "failed" and sent.return_id is not None:  # staff should see an SMS that never arrived
        db.add(ReturnEvent(return_id=sent.return_id, type="notification.failed", actor="sms-provider",
                           data=dict(detail, outbox_id=sent.outbox_id, provider_message_id=provider_message_id,
                                     channel="sms", report=True), at=event.at))
    db.commit()
    return event, True


class SmsDeliveryReportController(Controller):
    path = "/webhooks/sms"
    tags = ["webhooks"]

    @post("/{provider:str}", name="sms_delivery_report", sync_to_thread=True, status_code=200,
          summary="Delivery report from the SMS provider (46elks: ?secret=; Twilio: X-Twilio-Signature)")
    def delivery_report(self, request: Request, provider: FromPath[str], body: RawBody,
                        db: NamedDependency[Session]) -> Response:
        provider = provider.lower()
        if provider not in FIELDS:
            return _problem(404, f"Unknown SMS provider {provider!r}; use one of: {', '.join(FIELDS)}.")
        if len(body) > MAX_BODY:
            return _problem(413, f"The body is larger than {MAX_BODY} bytes.")
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return _problem(400, "The body is not UTF-8 form data.")
        config = sms_providers.sms_config_from_env()
        if provider == "46elks":
            ok = sms_providers.verify_shared_secret(config.webhook_secret, request.query_params.get("secret"))
        else:
            token = config.password if config.provider == "twilio" else ""
            signature = request.headers.get(TWILIO_SIGNATURE_HEADER)
            ok = any(sms_providers.verify_twilio(token, url, params, signature) for url in _urls(request))
        if not ok:
            log.warning("SMS delivery report (%s) with a bad or missing signature refused", provider)
            return _problem(401, "The delivery report is not authenticated.")
        id_field, status_field = FIELDS[provider]
        message_id, status = params.get(id_field, "").strip(), params.get(status_field, "").strip().lower()
        errors = [{"field": f, "message": f"{f} is required."} for f, v in ((id_field, message_id),
                                                                          (status_field, status)) if not v]
        if errors:
            return _problem(400, "The delivery report has missing fields.", errors)
        kind = sms_providers.REPORT_KINDS.get(status)
        if kind is None:  # queued, sent, …: not final, nothing to store
            return Response({"recorded": False, "status": status}, status_code=200, media_type="application/json")
        detail = {"provider": provider, "status": status}
        for extra in ("delivered", "ErrorCode", "ErrorMessage"):
            if params.get(extra):
                detail[extra] = params[extra][:200]
        try:
            event, recorded = record_report(db, message_id[:120], kind, detail)
        except Exception:
            db.rollback()
            raise
        if event is None:
            db.rollback()
            return _problem(404, f"No SMS with provider message id {message_id[:120]!r}.")
        return Response({"recorded": recorded, "kind": kind, "outbox_id": event.outbox_id},
                        status_code=200, media_type="application/json")


def _urls(request: Request) -> list[str]:
    """The URLs the provider may have signed: the public one (BASE_URL) and the one we were reached on."""
    settings = request.app.state.settings
    query = request.url.query
    public = settings.base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")
    return list(dict.fromkeys([public, str(request.url)]))


_TITLES = {401: "The delivery report is not authenticated", 404: "Not found", 400: "The report is not valid",
           413: "The body is too large"}


def _problem(status: int, detail: str, errors: list[dict] | None = None) -> Response:
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(body, status_code=status, media_type="application/problem+json")
