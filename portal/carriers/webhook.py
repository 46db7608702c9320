"""POST /webhooks/carriers/{carrier}: a carrier reports scans.

Signed like our own webhooks: ``X-Portal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t." + body>``
with the secret in CARRIER_WEBHOOK_SECRET_<CARRIER> (e.g. CARRIER_WEBHOOK_SECRET_POSTNORD); signatures
older than 5 minutes are refused (replays). Body: one event
``{"event_id": "...", "tracking_number": "...", "code": "...", "occurred_at": "2026-11-20T10:00:00Z"}``
or ``{"events": [ ... up to 100 ... ]}``. Idempotent on (carrier, event_id). Errors are RFC 9457 problems.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody
from sqlmodel import Session

from portal.carriers import service
from portal.carriers.adapters import adapter_for
from portal.outbox import signing
from portal.web.errors import problem

log = logging.getLogger("portal.carriers")
SECRET_ENV_PREFIX = "CARRIER_WEBHOOK_SECRET_"
MAX_BODY = 256 * 1024
MAX_EVENTS = 100
CARRIER_RE = re.compile(r"^[a-z0-9_-]{1,30}$")


def carrier_secret(carrier: str) -> str:
    return os.environ.get(SECRET_ENV_PREFIX + carrier.upper().replace("-", "_"), "").strip()


def parse_events(body: bytes) -> tuple[list[dict], list[dict]]:
    """The events and a list of {"field", "message"} problems."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return [], [{"field": "body", "message": "The body is not valid JSON."}]
    if not isinstance(data, dict):
        return [], [{"field": "body", "message": "The body must be a JSON object."}]
    items = data.get("events", [data]) if "events" in data else [data]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        return [], [{"field": "events", "message": f"events must be a list of 1 to {MAX_EVENTS} events."}]
    events, errors = [], []
    for i, item in enumerate(items):
        where = f"events[{i}]." if "events" in data else ""
        if not isinstance(item, dict):
            errors.append({"field": where.rstrip(".") or "body", "message": "An event is a JSON object."})
            continue
        for name, limit in (("event_id", 120), ("tracking_number", 40), ("code", 40)):
            value = item.get(name)
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                errors.append({"field": where + name, "message": f"{name} must be a non-empty string of at most {limit} characters."})
        occurred = item.get("occurred_at")
        try:
            parsed = datetime.fromisoformat(occurred.replace("Z", "+00:00")) if isinstance(occurred, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            errors.append({"field": where + "occurred_at", "message": "occurred_at must be an ISO 8601 date-time."})
        events.append({**item, "_occurred_at": parsed})
    return events, errors


class CarrierWebhookController(Controller):
    path = "/webhooks/carriers"
    tags = ["webhooks"]

    @post("/{carrier:str}", name="carrier_webhook", sync_to_thread=True, status_code=200,
          summary="A carrier reports tracking events (signed with CARRIER_WEBHOOK_SECRET_<CARRIER>)")
    def receive(self, request: Request, carrier: FromPath[str], body: RawBody, db: NamedDependency[Session]) -> Response:
        carrier = carrier.lower()
        if not CARRIER_RE.match(carrier) or adapter_for(carrier) is None:
            return problem(404, "This portal does not know that carrier.")
        secret = carrier_secret(carrier)
        if not secret:
            return problem(401, f"Webhooks from {carrier} are not enabled: set {SECRET_ENV_PREFIX}{carrier.upper()}.")
        if len(body) > MAX_BODY:
            return problem(413, f"The body is larger than {MAX_BODY} bytes.")
        try:
            signing.verify(secret, body, request.headers.get(signing.SIGNATURE_HEADER))
        except signing.SignatureError as exc:
            log.warning("carrier webhook from %s refused: %s", carrier, exc)
            return problem(401, f"Signature refused: {exc}.")
        events, errors = parse_events(body)
        if errors:
            return problem(400, "The events have invalid fields; none was stored.", errors)
        results = []
        for item in events:
            applied = service.apply_carrier_event(db, carrier, item["event_id"].strip(), item["tracking_number"].strip(),
                                                  item["code"].strip(), item["_occurred_at"],
                                                  {k: v for k, v in item.items() if k != "_occurred_at"})
            results.append({"event_id": applied.event.event_id, "duplicate": applied.duplicate,
                            "matched": applied.return_id is not None, "mapped_state": applied.event.mapped_state,
                            "moved": applied.moved})
        return Response({"carrier": carrier, "results": results}, status_code=200, media_type="application/json")
