"""How one outbox message leaves the building: a signed webhook POST, or an e-mail (SMTP or a mail folder).

Every sender either returns (delivered) or raises `DeliveryError` saying whether trying again can help
(`permanent=False`: timeouts, 5xx, SMTP 4xx, connection errors) or not (`permanent=True`: 4xx answers,
SMTP 5xx, a payload that cannot be sent). The dispatcher turns that into retry-with-backoff or dead letter.
No database and no web imports here.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from portal import __version__
from portal.outbox import mime
from portal.outbox.mime import OutgoingEmail
from portal.outbox.signing import SIGNATURE_HEADER, sign
from portal.numbers import is_digits

WEBHOOK_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 30.0
USER_AGENT = f"nordic-returns-portal/{__version__} (webhooks)"
EVENT_HEADER = "X-Portal-Event"
DELIVERY_HEADER = "X-Portal-Delivery"
RETRYABLE_4XX = {408, 429}
MAX_ERROR = 1000
LEADING_DOT = re.compile(rb"(?m)^\.")


class DeliveryError(Exception):
    """The message was not delivered. `permanent` says whether another attempt is pointless."""

    def __init__(self, message: str, *, permanent: bool, retry_after_s: float | None = None):
        super().__init__(message[:MAX_ERROR])
        self.permanent = permanent
        self.retry_after_s = retry_after_s


# --- Webhooks ----------------------------------------------------------------------------


def webhook_body(payload: dict) -> bytes:
    """The exact bytes that are signed and sent (compact JSON, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def webhook_headers(secret: str, body: bytes, event_type: str, delivery_id: str, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body, timestamp),
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
    }


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if is_digits(value.strip()) else None


def send_webhook(client: httpx.Client, url: str, secret: str, payload: dict, event_type: str, delivery_id: str,
                 timeout_s: float = WEBHOOK_TIMEOUT_S) -> int:
    """POST the signed payload; the HTTP status on 2xx, DeliveryError otherwise. Redirects are not followed."""
    if not secret:
        raise DeliveryError("the webhook endpoint has no signing secret", permanent=True)
    body = webhook_body(payload)
    try:
        response = client.post(url, content=body, headers=webhook_headers(secret, body, event_type, delivery_id),
                               timeout=timeout_s, follow_redirects=False)
    except httpx.TimeoutException:
        raise DeliveryError(f"no answer within {timeout_s:g} s (timeout)", permanent=False) from None
    except httpx.InvalidURL as exc:
        raise DeliveryError(f"invalid URL: {exc}", permanent=True) from None
    except httpx.HTTPError as exc:  # connection refused, DNS, TLS, protocol errors
        raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    snippet = response.text[:200].strip().replace("\n", " ")
    message = f"HTTP {status} {response.reason_phrase}" + (f": {snippet}" if snippet else "")
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        raise DeliveryError(f"HTTP {status} redirect to {location!r} (not followed; change the endpoint URL)",
                            permanent=True)
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        raise DeliveryError(message, permanent=True)
    raise DeliveryError(message, permanent=False, retry_after_s=_retry_after(response))


# --- E-mail ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str  # "none" | "starttls" | "tls"
    username: str
    password: str


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:pass@]host[:25]` (plain), `smtp+starttls://…[:587]` (STARTTLS required),
    `smtps://…[:465]` (TLS from the start). `smtp+tls` and `smtp+ssl` are accepted spellings."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    security = {"smtp": "none", "smtp+starttls": "starttls", "smtp+tls": "starttls",
                "smtps": "tls", "smtp+ssl": "tls"}.get(scheme)
    if security is None or not parts.hostname:
        raise ValueError(f"SMTP_URL must look like smtp://user:password@host:port (got scheme {scheme!r})")
    default_port = {"none": 25, "starttls": 587, "tls": 465}[security]
    return SmtpTarget(parts.hostname, parts.port or default_port, security,
                      unquote(parts.username or ""), unquote(parts.password or ""))


def build_email(*, message_id: str, sender: tuple[str, str], to: str, subject: str, text: str,
                html: str | None = None, reply_to: str | None = None, headers: dict[str, str] | None = None,
                date: datetime | None = None) -> OutgoingEmail:
    """A text (and HTML) message with a stable Message-ID, so a resent copy is recognisably the same mail.
    `sender` is (display name, address)."""
    return mime.compose(message_id=message_id, from_name=sender[0], from_address=sender[1], to=to, subject=subject,
                        text=text, html=html, reply_to=reply_to, headers=headers, date=date)


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 + RFC 8058 headers for marketing mail: the one-click HTTPS link first, the mailto as a fallback."""
    links = [f"<{url}>"] + ([f"<mailto:{mailto}?subject=unsubscribe>"] if mailto else [])
    return {"List-Unsubscribe": ",\r\n ".join(links), "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def email_from_payload(payload: dict, *, message_id: str, to: str, sender: tuple[str, str], delivery_id: str,
                       list_unsubscribe: dict[str, str] | None = None) -> OutgoingEmail:
    """The message of an outbox row. `sender` is the merchant's (name, address); the payload's `sender_name`
    (a rule's setting) replaces the name only. `list_unsubscribe`: headers for marketing mail, else None."""
    subject, text, html = payload.get("subject"), payload.get("text"), payload.get("html")
    if not isinstance(subject, str) or not subject.strip() or not isinstance(text, str):
        raise DeliveryError("e-mail payload needs a non-empty 'subject' and a 'text' body", permanent=True)
    if html is not None and not isinstance(html, str):
        raise DeliveryError("e-mail payload 'html' must be a string", permanent=True)
    if not to or "@" not in to or any(c in to for c in "\r\n"):
        raise DeliveryError(f"not an e-mail address: {to!r}", permanent=True)
    try:
        mime.address(sender[1])
    except ValueError as exc:  # the merchant's settings, not this message: keep it until they are fixed
        raise DeliveryError(f"the sender address (the merchant's support e-mail) is wrong: {exc}",
                            permanent=False) from None
    name = payload.get("sender_name")
    if isinstance(name, str) and name.strip():
        sender = (name.strip(), sender[1])
    reply_to = payload.get("reply_to") if isinstance(payload.get("reply_to"), str) else None
    headers = {DELIVERY_HEADER: delivery_id, **(list_unsubscribe or {})}
    try:
        return build_email(message_id=message_id, sender=sender, to=to, subject=subject.strip(), text=text,
                           html=html or None, reply_to=reply_to, headers=headers)
    except ValueError as exc:  # header injection, not an address, and the like
        raise DeliveryError(f"cannot build the e-mail: {exc}", permanent=True) from None


def _smtp_code_error(code: int, text: bytes | str, what: str) -> DeliveryError:
    reply = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return DeliveryError(f"SMTP {code} {what}: {reply}".strip(), permanent=500 <= code < 600)


def send_smtp(target: SmtpTarget, msg: OutgoingEmail, timeout_s: float = SMTP_TIMEOUT_S,
              local_hostname: str | None = None) -> None:
    """Hand one message to the relay on its own connection. SMTP 5xx = permanent, 4xx and connection
    problems = temporary (DeliveryError)."""
    connection = SmtpConnection(target, timeout_s, local_hostname)
    try:
        connection.send(msg)
    finally:
        connection.close()


def _nothing() -> None:
    return None


class _BeforeData:
    """smtplib's sendmail with one hook after the relay said "354 go ahead" and before the message itself:
    the dispatcher's barrier, so that the previous message's outcome is committed before the relay can
    accept this one (see portal/outbox/dispatcher.py), while MAIL, RCPT and DATA overlap that commit."""

    before_data: Callable[[], None] = staticmethod(_nothing)

    def data(self, msg: bytes):  # smtplib.SMTP.data for bytes, plus the hook
        self.putcmd("data")  # type: ignore[attr-defined]
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        self.before_data()
        body = LEADING_DOT.sub(b"..", msg)  # dot-stuffing (RFC 5321 4.5.2)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.send(body + b".\r\n")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined]


class _SMTP(_BeforeData, smtplib.SMTP):
    pass


class _SMTP_SSL(_BeforeData, smtplib.SMTP_SSL):  # noqa: N801 (smtplib's spelling)
    pass


class SmtpConnection:
    """One SMTP session reused for many messages within a dispatch run (connect and EHLO once, not per mail).
    Any error closes it, so the next message starts on a clean connection; a relay that dropped an idle
    connection is reconnected once before the message counts as failed."""

    def __init__(self, target: SmtpTarget, timeout_s: float = SMTP_TIMEOUT_S, local_hostname: str | None = None):
        self.target = target
        self.timeout_s = timeout_s
        self.local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        target = self.target
        if target.security == "tls":
            smtp: smtplib.SMTP = _SMTP_SSL(target.host, target.port, timeout=self.timeout_s,
                                           local_hostname=self.local_hostname, context=ssl.create_default_context())
        else:
            smtp = _SMTP(target.host, target.port, timeout=self.timeout_s, local_hostname=self.local_hostname)
        try:
            if target.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if target.username:
                smtp.login(target.username, target.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, msg: OutgoingEmail, before_data: Callable[[], None] | None = None) -> None:
        """Send one message on the session. `before_data` runs after MAIL and RCPT were accepted, right
        before DATA: the last moment before the relay can take the message."""
        reused = self._smtp is not None
        try:
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                refused = self._sendmail(msg, before_data)
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                self.close()  # the relay dropped our idle connection: one fresh try
                self._smtp = self._connect()
                refused = self._sendmail(msg, before_data)
        except BaseException as exc:
            self.close()
            raise _smtp_error(exc) from None
        if refused:
            code, text = next(iter(refused.values()))
            raise _smtp_code_error(code, text, "recipient refused")

    def _sendmail(self, msg: OutgoingEmail, before_data: Callable[[], None] | None) -> dict:
        self._smtp.before_data = before_data or _nothing  # type: ignore[union-attr]
        return self._smtp.sendmail(msg.envelope_from, list(msg.recipients), msg.data)  # type: ignore[union-attr]

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _smtp_error(exc: BaseException) -> BaseException:
    """Map an smtplib/socket error to DeliveryError (the same rules as send_smtp); others pass unchanged."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return _smtp_code_error(code, text, "recipient refused")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"SMTP login failed ({exc.smtp_code}); check SMTP_URL", permanent=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _smtp_code_error(exc.smtp_code, exc.smtp_error, "refused")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"SMTP relay does not support what SMTP_URL asks for: {exc}", permanent=False)
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return DeliveryError(f"SMTP connection problem: {type(exc).__name__}: {exc}", permanent=False)
    return exc


def write_mail_file(mail_dir: Path, name: str, msg: OutgoingEmail) -> Path:
    """Write `<name>.eml` atomically (temporary file + rename): a reader never sees half a message,
    and writing the same message again replaces the file instead of adding a duplicate."""
    mail_dir = Path(mail_dir)
    try:
        mail_dir.mkdir(parents=True, exist_ok=True)
        target = mail_dir / f"{name}.eml"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=mail_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msg.as_bytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise DeliveryError(f"cannot write to MAIL_DIR {mail_dir}: {exc}", permanent=False) from None
    return target
