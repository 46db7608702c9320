"""Back-office services for notification rules: list, save with validation, activate, preview, test-send.

No web imports: the handlers in portal.notify.views parse the form, call these, and render.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session, select

from portal.config import SUPPORTED_LANGUAGES, Settings
from portal.i18n import staff_text
from portal.models import NotificationRule, NotificationTemplate, Order, Return, utcnow
from portal.notify import sms as sms_codec
from portal.notify.rules import AUDIENCES, CHANNELS, TRIGGERS, normalise_phone, sender_keys
from portal.notify.templates import RenderError, render_all, validate_template
from portal.notify.variables import build_variables
from portal.outbox.service import enqueue

SENDER_NAME_MAX = 50
SMS_SENDER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,10}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TEMPLATE_PARTS = ("subject", "body_text", "body_html", "sms_text")


class RuleFormError(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class VersionConflict(Exception):
    pass


@dataclass
class RuleInput:
    name: str = ""
    trigger: str = ""
    channels: list[str] = field(default_factory=list)
    audience: str = "customer"
    internal_recipients: str = ""  # one per line
    countries: str = ""  # comma separated
    resolutions: str = ""
    reasons: str = ""
    offset_days: str = "0"
    marketing: bool = False
    starts_on: str = ""
    ends_on: str = ""
    sender_name: str = ""
    sms_sender_id: str = ""
    templates: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> part -> text


def input_of(session: Session, rule: NotificationRule) -> RuleInput:
    c = rule.conditions or {}
    return RuleInput(
        name=rule.name, trigger=rule.trigger, channels=list(rule.channels), audience=rule.audience,
        internal_recipients="\n".join(rule.internal_recipients or []), countries=", ".join(c.get("country") or []),
        resolutions=", ".join(c.get("resolution") or []), reasons=", ".join(c.get("reason") or []),
        offset_days=str(rule.offset_days), marketing=rule.marketing,
        starts_on=rule.starts_on.isoformat() if rule.starts_on else "", ends_on=rule.ends_on.isoformat() if rule.ends_on else "",
        sender_name=c.get("sender_name", ""), sms_sender_id=c.get("sms_sender_id", ""),
        templates={t.language: {p: getattr(t, p) for p in TEMPLATE_PARTS} for t in templates_of(session, rule.id)},
    )


def templates_of(session: Session, rule_id: int) -> list[NotificationTemplate]:
    return list(session.exec(select(NotificationTemplate).where(NotificationTemplate.rule_id == rule_id)
                             .order_by(NotificationTemplate.language)))


def list_rules(session: Session) -> list[tuple[NotificationRule, list[str]]]:
    rules = list(session.exec(select(NotificationRule).order_by(NotificationRule.id)))
    return [(r, [t.language for t in templates_of(session, r.id)]) for r in rules]


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,\s]+", text or "") if p.strip()]


def _date(text: str, name: str, errors: dict) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        errors[name] = staff_text("Use the form YYYY-MM-DD.")
        return None


def _validate(values: RuleInput) -> tuple[dict, dict]:
    errors: dict[str, str] = {}
    clean: dict = {}
    if not values.name.strip():
        errors["name"] = staff_text("Give the rule a name.")
    elif len(values.name.strip()) > 120:
        errors["name"] = staff_text("At most 120 characters.")
    if values.trigger not in TRIGGERS:
        errors["trigger"] = staff_text("Choose a trigger.")
    channels = [c for c in CHANNELS if c in values.channels]
    if not channels or len(channels) != len(set(values.channels)):
        errors["channels"] = staff_text("Choose e-mail, SMS or both.")
    if values.audience not in AUDIENCES:
        errors["audience"] = staff_text("Choose customer or internal.")
    recipients = [r.strip() for r in values.internal_recipients.splitlines() if r.strip()]
    if values.audience == "internal":
        bad = [r for r in recipients if not (EMAIL_RE.match(r) if "@" in r else normalise_phone(r, "SE"))]
        if not recipients:
            errors["internal_recipients"] = staff_text("Internal rules need at least one staff e-mail address or phone number.")
        elif bad:
            errors["internal_recipients"] = staff_text("Not an e-mail address or phone number: %(values)s", values=", ".join(bad))
    try:
        offset = int(values.offset_days.strip() or "0")
        if not 0 <= offset <= 365:
            raise ValueError
    except ValueError:
        errors["offset_days"] = staff_text("A whole number of days from 0 to 365.")
        offset = 0
    starts, ends = _date(values.starts_on, "starts_on", errors), _date(values.ends_on, "ends_on", errors)
    if starts and ends and ends < starts:
        errors["ends_on"] = staff_text("The end date is before the start date.")
    sender = values.sender_name.strip()
    if len(sender) > SENDER_NAME_MAX:
        errors["sender_name"] = staff_text("At most %(limit)s characters (this is %(length)s).", limit=SENDER_NAME_MAX,
                                           length=len(sender))
    sms_sender = values.sms_sender_id.strip()
    if sms_sender and not SMS_SENDER_RE.match(sms_sender):
        errors["sms_sender_id"] = staff_text("3–11 letters or digits (A–Z, 0–9), not starting with a digit.")
    countries = [c.upper() for c in _split(values.countries)]
    if any(not re.fullmatch(r"[A-Z]{2}", c) for c in countries):
        errors["countries"] = staff_text("Two-letter country codes, e.g. SE, NO.")
    has_template = False
    for language, parts in values.templates.items():
        if language not in SUPPORTED_LANGUAGES:
            continue
        for part in TEMPLATE_PARTS:
            problems = validate_template(parts.get(part, ""))
            if problems:
                errors[f"{part}_{language}"] = "; ".join(problems)
        if any(parts.get(p, "").strip() for p in TEMPLATE_PARTS):
            has_template = True
            if "email" in channels and not (parts.get("subject", "").strip() and parts.get("body_text", "").strip()):
                errors.setdefault(f"subject_{language}", staff_text("E-mail needs a subject and a text body."))
            if "sms" in channels and not parts.get("sms_text", "").strip():
                errors.setdefault(f"sms_text_{language}", staff_text("SMS needs a text."))
    if not has_template and "templates" not in errors:
        errors["templates"] = staff_text("Write the message in at least one language.")
    conditions = {}
    if countries:
        conditions["country"] = countries
    if _split(values.resolutions):
        conditions["resolution"] = _split(values.resolutions)
    if _split(values.reasons):
        conditions["reason"] = _split(values.reasons)
    if sender:
        conditions["sender_name"] = sender
    if sms_sender:
        conditions["sms_sender_id"] = sms_sender
    clean.update(name=values.name.strip(), trigger=values.trigger, channels=channels, audience=values.audience,
                 internal_recipients=recipients if values.audience == "internal" else [], conditions=conditions,
                 offset_days=offset, marketing=bool(values.marketing), starts_on=starts, ends_on=ends)
    return clean, errors


def save_rule(session: Session, rule: NotificationRule | None, values: RuleInput, version: str = "") -> NotificationRule:
    """Create (rule None, inactive) or update a rule and its templates. Raises RuleFormError / VersionConflict."""
    clean, errors = _validate(values)
    if errors:
        raise RuleFormError(errors)
    if rule is not None and version and version != version_of(rule):
        raise VersionConflict(staff_text("The rule was changed by someone else; reload and try again."))
    if rule is None:
        rule = NotificationRule(active=False, **clean)
        session.add(rule)
    else:
        for k, v in clean.items():
            setattr(rule, k, v)
        rule.updated_at = utcnow()
    session.flush()
    existing = {t.language: t for t in templates_of(session, rule.id)}
    for language in SUPPORTED_LANGUAGES:
        parts = values.templates.get(language, {})
        empty = not any(parts.get(p, "").strip() for p in TEMPLATE_PARTS)
        template = existing.get(language)
        if empty:
            if template is not None:
                session.delete(template)
            continue
        if template is None:
            template = NotificationTemplate(rule_id=rule.id, language=language)
            session.add(template)
        for p in TEMPLATE_PARTS:
            setattr(template, p, parts.get(p, "").strip())
    session.flush()
    return rule


def version_of(rule: NotificationRule) -> str:
    return rule.updated_at.isoformat() if rule.updated_at else ""


def set_active(session: Session, rule: NotificationRule, active: bool) -> None:
    rule.active = active
    rule.updated_at = utcnow()
    session.flush()


@dataclass(frozen=True)
class PreviewPart:
    language: str
    channel: str
    subject: str = ""
    text: str = ""
    html: str = ""
    error: str = ""
    sms: sms_codec.SmsInfo | None = None


def sample_return(session: Session, rma: str = "") -> Return | None:
    if rma.strip():
        return session.exec(select(Return).where(Return.rma == rma.strip().upper())).first()
    return session.exec(select(Return).order_by(Return.id.desc())).first()


def preview(session: Session, rule: NotificationRule, ret: Return, settings: Settings) -> list[PreviewPart]:
    """Every language the rule has, rendered with this return's data, per channel."""
    parts = []
    for template in templates_of(session, rule.id):
        try:
            rendered = render_all(template, build_variables(session, ret, template.language, settings, days=rule.offset_days))
        except RenderError as exc:
            parts.append(PreviewPart(template.language, ",".join(rule.channels), error=str(exc)))
            continue
        for channel in rule.channels:
            if channel == "email":
                parts.append(PreviewPart(template.language, "email", subject=rendered.subject, text=rendered.text,
                                         html=rendered.html))
            elif channel == "sms":
                parts.append(PreviewPart(template.language, "sms", text=rendered.sms, sms=sms_codec.analyse(rendered.sms)))
    return parts


def test_send(session: Session, rule: NotificationRule, ret: Return, language: str, channel: str, destination: str,
              settings: Settings) -> int:
    """Queue one message of this rule, rendered with `ret`'s data, to a typed address or number. Returns the outbox id."""
    errors: dict[str, str] = {}
    if channel not in rule.channels:
        errors["channel"] = staff_text("This rule does not use that channel.")
    template = next((t for t in templates_of(session, rule.id) if t.language == language), None)
    if template is None:
        errors["language"] = staff_text("The rule has no template in that language.")
    destination = destination.strip()
    if channel == "email" and not EMAIL_RE.match(destination):
        errors["destination"] = staff_text("Type an e-mail address.")
    elif channel == "sms":
        order = session.get(Order, ret.order_id)
        normalised = normalise_phone(destination, order.country if order else "SE")
        if normalised is None:
            errors["destination"] = staff_text("Type a valid phone number (e.g. +46 70 123 45 67).")
        destination = normalised or destination
    if errors:
        raise RuleFormError(errors)
    try:
        rendered = render_all(template, build_variables(session, ret, language, settings, days=rule.offset_days))
    except RenderError as exc:
        raise RuleFormError({"language": f"The template does not render: {exc}"}) from None
    payload = ({"subject": rendered.subject, "text": rendered.text, "html": rendered.html} if channel == "email"
               else {"text": rendered.sms})
    payload.update(sender_keys(rule, channel))  # as the real message; no unsubscribe link to a typed address
    message = enqueue(session, key=f"notify-test:{rule.id}:{uuid.uuid4().hex}", channel=channel, destination=destination,
                      event_type=f"notify.test.{rule.trigger}", payload=payload)
    session.flush()
    return message.id
