"""POST /webhooks/shop/refunds: the shop tells us whether it paid a refund.

Body (JSON): {"refund_id": 17, "status": "completed" | "failed", "reference": "PSP-123", "reason": "..."}.
Signed like our own webhooks: header ``X-Portal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"t." + body>`` with the secret in the environment variable SHOP_WEBHOOK_SECRET. Without that
secret every callback is refused. Answers are JSON; errors are RFC 9457 problems.

Idempotent: the same result sent twice answers 200 with "changed": false and records nothing.
"""

from __future__ import annotations

import json
import logging
import os

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import RawBody
from litestar.response import Response
from sqlmodel import Session

from portal.outbox import signing
from portal.staff import refunding

log = logging.getLogger("portal.webhooks")
SECRET_ENV = "SHOP_WEBHOOK_SECRET"
MAX_BODY = 64 * 1024
STATUSES = ("completed", "failed")


def shop_webhook_secret() -> str:
    """The shared secret, read on every call (so a rotated secret applies without a restart)."""
    return os.environ.get(SECRET_ENV, "").strip()


def parse_callback(body: bytes) -> tuple[dict, list[dict]]:
    """The callback's fields, and a list of {"field", "message"} problems."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}, [{"field": "body", "message": "The body is not valid JSON."}]
    if not isinstance(data, dict):
        return {}, [{"field": "body", "message": "The body must be a JSON object."}]
    errors = []
    refund_id = data.get("refund_id")
    if isinstance(refund_id, bool) or not isinstance(refund_id, int) or not 0 < refund_id < 2**63:
        errors.append({"field": "refund_id", "message": "refund_id must be the refund's id (a positive integer)."})
    status = data.get("status")
    if status not in STATUSES:
        errors.append({"field": "status", "message": f"status must be one of: {', '.join(STATUSES)}."})
    for name, limit in (("reference", refunding.MAX_REFERENCE), ("reason", refunding.MAX_REASON)):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.append({"field": name, "message": f"{name} must be a string of at most {limit} characters."})
    return data, errors


class ShopWebhookController(Controller):
    path = "/webhooks/shop"
    tags = ["webhooks"]

    @post("/refunds", name="shop_refund_callback", sync_to_thread=True, status_code=200,
          summary="The shop reports a refund as paid or failed (signed with SHOP_WEBHOOK_SECRET)")
    def refund_callback(self, request: Request, body: RawBody, db: NamedDependency[Session]) -> Response:
        secret = shop_webhook_secret()
        if not secret:
            log.warning("refund callback refused: %s is not set", SECRET_ENV)
            return _problem(401, f"Refund callbacks are not enabled: set {SECRET_ENV} on the portal.")
        if len(body) > MAX_BODY:
            return _problem(413, f"The body is larger than {MAX_BODY} bytes.")
        try:
            signing.verify(secret, body, request.headers.get(signing.SIGNATURE_HEADER))
        except signing.SignatureError as exc:
            log.warning("refund callback with a bad signature: %s", exc)
            return _problem(401, f"Signature refused: {exc}.")
        data, errors = parse_callback(body)
        if errors:
            return _problem(400, "The callback has invalid fields.", errors)
        try:
            if data["status"] == "completed":
                result = refunding.record_payment(db, data["refund_id"], data.get("reference"), "shop")
            else:
                result = refunding.record_failure(db, data["refund_id"], data.get("reason"), "shop")
        except refunding.RefundNotFound as exc:
            db.rollback()
            return _problem(404, str(exc))
        except refunding.RefundConflict as exc:
            db.rollback()
            return _problem(409, str(exc))
        refund = result.refund
        return Response({"refund_id": refund.id, "state": refund.state, "changed": result.changed,
                         "external_ref": refund.external_ref}, status_code=200, media_type="application/json")


_TITLES = {401: "The callback is not authenticated", 404: "No such refund", 409: "The refund is in another state",
           413: "The body is too large", 400: "The callback is not valid"}


def _problem(status: int, detail: str, errors: list[dict] | None = None) -> Response:
    """An RFC 9457 problem (never the staff login redirect the HTML error handler gives a 401)."""
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    headers = {"WWW-Authenticate": f'Signature header="{signing.SIGNATURE_HEADER}"'} if status == 401 else None
    return Response(body, status_code=status, media_type="application/problem+json", headers=headers)
