"""Firing notification rules for a return: conditions, language, consent, recipients, outbox rows.

`fire` runs inside the caller's transaction (the one that records the event), so the outbox rows are
committed together with the event or not at all. Idempotency key per (return, rule, channel, offset):
the same rule never sends the same message twice for one return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import phonenumbers
from sqlmodel import Session, select

from portal.config import SUPPORTED_LANGUAGES, Settings, get_settings
from portal.i18n import staff_text
from portal.models import (
    Consent,
    Customer,
    DeliveryEvent,
    NotificationRule,
    NotificationTemplate,
    Order,
    Return,
    ReturnLine,
)
from portal.notify.templates import RenderError, render_all
from portal.notify.variables import build_variables
from portal.outbox.service import enqueue
from portal.returns import service

CHANNELS = ("email", "sms")
AUDIENCES = ("customer", "internal")

# Triggers fired by return events (trigger name = the event type, plus two derived inspection outcomes).
EVENT_TRIGGERS: dict[str, str] = {
    "return.registered": staff_text("Return registered"),
    "label.issued": staff_text("Label created"),
    "parcel.dropped_off": staff_text("Dropped off (first carrier scan)"),
    "parcel.in_transit": staff_text("In transit"),
    "parcel.at_consolidation": staff_text("Waiting at Norwegian consolidation"),
    "collection.collected": staff_text("Collected from consolidation"),
    "parcel.arrived": staff_text("Arrived at the merchant"),
    "return.inspected.accepted": staff_text("Inspected: all accepted"),
    "return.inspected.partly_rejected": staff_text("Inspected: partly rejected"),
    "refund.issued": staff_text("Refund issued"),
    "refund.failed": staff_text("Refund failed"),
    "exchange.shipped": staff_text("Exchange shipped"),
    "return.cancelled": staff_text("Return cancelled"),
    "return.expired": staff_text("Return expired"),
    "customs.needs_attention": staff_text("Customs needs attention (internal)"),
    "collection.not_collected": staff_text("Collection failed (internal)"),
    "parcel.exception": staff_text("Carrier exception (internal)"),
}
# Time-based triggers, evaluated by portal.notify.sweep; offset_days is N.
TIME_TRIGGERS: dict[str, str] = {
    "time.label_unused": staff_text("Label not dropped off after N days"),
    "time.window_ending": staff_text("N days left of the return window"),
    "time.refund_due": staff_text("Refund due in N days (internal)"),
    "time.refund_overdue": staff_text("Refund overdue by N days (internal)"),
    "time.consolidation_waiting": staff_text("Waiting at consolidation for N days (internal)"),
}
TRIGGERS = EVENT_TRIGGERS | TIME_TRIGGERS


@dataclass(frozen=True)
class FireResult:
    queued: int = 0
    suppressed: int = 0
    invalid: int = 0
    failed: int = 0


def local_today(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def conditions_match(conditions: dict, *, country: str, resolution: str, reasons: set[str]) -> bool:
    """Each condition is a list of allowed values; an empty or missing list allows everything."""
    countries = [c.upper() for c in (conditions or {}).get("country") or []]
    if countries and country.upper() not in countries:
        return False
    resolutions = (conditions or {}).get("resolution") or []
    if resolutions and resolution not in resolutions:
        return False
    wanted = set((conditions or {}).get("reason") or [])
    if wanted and not (wanted & reasons):
        return False
    return True


def in_window(rule: NotificationRule, today: date) -> bool:
    return (rule.starts_on is None or rule.starts_on <= today) and (rule.ends_on is None or today <= rule.ends_on)


def pick_template(session: Session, rule_id: int, language: str, default_language: str) -> NotificationTemplate | None:
    templates = {t.language: t for t in session.exec(select(NotificationTemplate).where(NotificationTemplate.rule_id == rule_id))}
    for candidate in (language, default_language, "en"):
        if candidate in templates:
            return templates[candidate]
    return None


def normalise_phone(raw: str | None, region: str) -> str | None:
    """E.164, or None when the number is missing or not a valid number."""
    if not raw or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def has_consent(session: Session, customer_id: int, channel: str) -> bool:
    latest = session.exec(
        select(Consent).where(Consent.customer_id == customer_id, Consent.channel == channel,
                              Consent.purpose == "marketing").order_by(Consent.at.desc(), Consent.id.desc())
    ).first()
    return bool(latest and latest.granted)


def _once(session: Session, ret: Return, kind: str, key: str, detail: dict, at: datetime, event_type: str | None) -> bool:
    """A DeliveryEvent (and optional staff timeline event) for a decision, once per key."""
    existing = session.exec(
        select(DeliveryEvent.id, DeliveryEvent.detail).where(DeliveryEvent.return_id == ret.id, DeliveryEvent.kind == kind)
    ).all()
    if any((d or {}).get("key") == key for _, d in existing):
        return False
    session.add(DeliveryEvent(return_id=ret.id, kind=kind, at=at, detail=dict(detail, key=key)))
    if event_type:
        service.record_event(session, ret, event_type, "system", dict(detail), at)
    return True


def active_rules(session: Session, trigger: str) -> list[NotificationRule]:
    return list(session.exec(
        select(NotificationRule).where(NotificationRule.trigger == trigger, NotificationRule.active).order_by(NotificationRule.id)
    ))


def fire(session: Session, ret: Return, trigger: str, at: datetime, *, settings: Settings | None = None,
         rules: list[NotificationRule] | None = None) -> FireResult:
    """Queue the messages of every active rule for `trigger` that applies to this return."""
    settings = settings or session.info.get("settings") or get_settings()
    candidates = rules if rules is not None else active_rules(session, trigger)
    if not candidates:
        return FireResult()
    session.flush()
    order = session.get(Order, ret.order_id)
    customer = session.get(Customer, order.customer_id)
    reasons = {r for r in session.exec(select(ReturnLine.reason).where(ReturnLine.return_id == ret.id))}
    today = local_today(at, settings.timezone)
    counts = {"queued": 0, "suppressed": 0, "invalid": 0, "failed": 0}
    for rule in candidates:
        if not rule.active or rule.trigger != trigger or not in_window(rule, today):
            continue
        if not conditions_match(rule.conditions, country=order.country, resolution=ret.resolution, reasons=reasons):
            continue
        # Customers read their return's language; staff read the merchant's default language.
        language = ret.language if rule.audience == "customer" else settings.default_language
        if language not in SUPPORTED_LANGUAGES:
            language = settings.default_language
        template = pick_template(session, rule.id, language, settings.default_language)
        if template is None:
            continue
        for channel in [c for c in rule.channels if c in CHANNELS]:
            key = f"notify:{ret.id}:{rule.id}:{channel}:{rule.offset_days}"
            base = {"rule_id": rule.id, "rule": rule.name, "trigger": trigger, "channel": channel}
            if rule.marketing and rule.audience == "customer" and not has_consent(session, customer.id, channel):
                if _once(session, ret, "suppressed", key, dict(base, reason="no marketing consent"), at, "notification.suppressed"):
                    counts["suppressed"] += 1
                continue
            try:
                context = build_variables(session, ret, template.language, settings, days=rule.offset_days)
                rendered = render_all(template, context)
            except RenderError as exc:
                if _once(session, ret, "failed", key, dict(base, reason=f"template error: {exc}"), at, "notification.failed"):
                    counts["failed"] += 1
                continue
            if channel == "email":
                payload = {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
                if not rendered.subject or not (rendered.text or rendered.html):
                    continue  # the template has no e-mail part
            else:
                payload = {"text": rendered.sms}
                if not rendered.sms:
                    continue  # the template has no SMS part
            payload.update(sender_keys(rule, channel))
            if channel == "email" and rule.marketing and rule.audience == "customer":
                payload.update(marketing=True, customer_id=customer.id)  # the dispatcher adds List-Unsubscribe
            for destination, suffix in _recipients(rule, channel, order, customer):
                msg_key = key + suffix
                if destination is None:
                    if _once(session, ret, "invalid_recipient", msg_key, dict(base, reason="invalid or missing phone number"),
                             at, "notification.invalid_recipient"):
                        counts["invalid"] += 1
                    continue
                message = enqueue(session, key=msg_key, channel=channel, destination=destination,
                                  event_type=f"notify.{trigger}", payload=payload, return_id=ret.id)
                if message is None:
                    continue
                session.flush()
                session.add(DeliveryEvent(outbox_id=message.id, return_id=ret.id, kind="queued", at=at,
                                          detail=dict(base, key=msg_key, language=template.language, destination=destination)))
                service.record_event(session, ret, "notification.queued", "system",
                                     dict(base, language=template.language, destination=destination, outbox_id=message.id), at)
                counts["queued"] += 1
    return FireResult(**counts)


def sender_keys(rule: NotificationRule, channel: str) -> dict:
    """The rule's own sender for the outbox payload: the e-mail From name (the address stays the merchant's)
    or the SMS sender ID; empty when the rule uses the configured defaults."""
    conditions = rule.conditions or {}
    if channel == "email" and conditions.get("sender_name"):
        return {"sender_name": conditions["sender_name"]}
    if channel == "sms" and conditions.get("sms_sender_id"):
        return {"sender": conditions["sms_sender_id"]}
    return {}


def _recipients(rule: NotificationRule, channel: str, order: Order, customer: Customer | None):
    """(destination or None when invalid, key suffix) pairs."""
    if rule.audience == "internal":
        out = []
        for raw in rule.internal_recipients or []:
            raw = str(raw).strip()
            is_email = "@" in raw
            if channel == "email" and is_email:
                out.append((raw, f":{raw.lower()}"))
            elif channel == "sms" and not is_email:
                out.append((normalise_phone(raw, order.country), f":{raw}"))
        return out
    if channel == "email":
        return [(order.email, "")]
    return [(normalise_phone(customer.phone if customer else None, order.country), "")]
