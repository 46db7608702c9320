"""SMS through an HTTP provider: a 46elks-compatible and a Twilio-compatible adapter (httpx, with timeouts).

Configured from the environment (read on every call so a rotated secret applies without a restart):

| variable | meaning |
|---|---|
| `SMS_PROVIDER` | `46elks` (default) or `twilio` |
| `SMS_API_URL` | base URL, default `https://api.46elks.com` / `https://api.twilio.com` |
| `SMS_USERNAME` / `SMS_PASSWORD` | 46elks API username and password (basic auth) |
| `TWILIO_ACCOUNT_SID` / `TWILIO_AUTH_TOKEN` | Twilio account and token (basic auth; the token also signs delivery reports) |
| `SMS_SENDER` | sender ID (3–11 alphanumerics) or an E.164 number; a rule's own sender ID replaces it |
| `SMS_WEBHOOK_SECRET` | shared secret 46elks delivery reports carry in `?secret=` |

Errors: a 4xx answer (invalid number, refused sender, bad credentials) is permanent, except 408/429;
5xx answers, timeouts and connection problems are temporary. No database and no web imports here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from portal.outbox.channels import RETRYABLE_4XX, DeliveryError
from portal.numbers import is_digits

SMS_TIMEOUT_S = 10.0
PROVIDERS = ("46elks", "twilio")
DEFAULT_URLS = {"46elks": "https://api.46elks.com", "twilio": "https://api.twilio.com"}
MAX_SMS_TEXT = 1600  # both providers refuse longer texts (10 segments of UCS-2 is already less)
IDEMPOTENCY_HEADER = "Idempotency-Key"
ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z][A-Za-z0-9]{2,10}")
E164_SENDER = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class SmsConfig:
    provider: str
    api_url: str
    username: str  # 46elks user or Twilio account SID
    password: str  # 46elks password or Twilio auth token
    sender: str
    webhook_secret: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.provider in PROVIDERS and self.api_url and self.username and self.password and self.sender)


def sms_config_from_env(environ: Mapping[str, str] | None = None) -> SmsConfig:
    env = os.environ if environ is None else environ
    provider = env.get("SMS_PROVIDER", "46elks").strip().lower() or "46elks"
    if provider == "twilio":
        user, password = env.get("TWILIO_ACCOUNT_SID", ""), env.get("TWILIO_AUTH_TOKEN", "")
    else:
        user, password = env.get("SMS_USERNAME", ""), env.get("SMS_PASSWORD", "")
    api_url = (env.get("SMS_API_URL", "").strip() or DEFAULT_URLS.get(provider, "")).rstrip("/")
    return SmsConfig(provider=provider, api_url=api_url, username=user.strip(), password=password.strip(),
                     sender=env.get("SMS_SENDER", "").strip(), webhook_secret=env.get("SMS_WEBHOOK_SECRET", "").strip())


def sender_id_ok(sender: str) -> bool:
    """An alphanumeric sender ID (3–11 letters/digits, starting with a letter) or an E.164 number."""
    return bool(ALPHANUMERIC_SENDER.fullmatch(sender) or E164_SENDER.fullmatch(sender))


def send_sms(client: httpx.Client, config: SmsConfig, to: str, text: str, *, idempotency_key: str = "",
             sender: str | None = None, timeout_s: float = SMS_TIMEOUT_S) -> str:
    """Hand one SMS to the provider; its message id on success, DeliveryError otherwise.

    `sender` (a rule's sender ID) replaces SMS_SENDER for this message; empty or None uses SMS_SENDER.
    `idempotency_key` travels as an `Idempotency-Key` header: providers (or proxies) that honour it
    drop a repeated request; 46elks and Twilio ignore it, which is why the dispatcher never repeats an
    SMS whose outcome is unknown (see portal/outbox/dispatcher.py)."""
    if config.provider not in PROVIDERS:
        raise DeliveryError(f"SMS_PROVIDER must be one of {', '.join(PROVIDERS)} (got {config.provider!r})",
                            permanent=False)
    if not config.configured:
        raise DeliveryError("SMS is not configured (SMS_API_URL, credentials and SMS_SENDER)", permanent=False)
    if not isinstance(text, str) or not text.strip():
        raise DeliveryError("SMS payload needs a non-empty 'text'", permanent=True)
    if len(text) > MAX_SMS_TEXT:
        raise DeliveryError(f"SMS text is longer than {MAX_SMS_TEXT} characters", permanent=True)
    if not to.startswith("+") or not to[1:].isdigit() or not 8 <= len(to) <= 16:
        raise DeliveryError(f"not an E.164 phone number: {to!r}", permanent=True)
    sender = (sender or "").strip()
    if sender and not sender_id_ok(sender):
        raise DeliveryError(f"not a valid SMS sender ID: {sender!r} (3–11 letters/digits starting with a letter, "
                            "or an E.164 number)", permanent=True)
    sender = sender or config.sender
    if config.provider == "46elks":
        url = f"{config.api_url}/a1/sms"
        form = {"from": sender, "to": to, "message": text}
        id_field = "id"
    else:
        url = f"{config.api_url}/2010-04-01/Accounts/{config.username}/Messages.json"
        form = {"From": sender, "To": to, "Body": text}
        id_field = "sid"
    headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
    try:
        response = client.post(url, data=form, auth=(config.username, config.password), headers=headers,
                               timeout=timeout_s, follow_redirects=False)
    except httpx.TimeoutException:
        raise DeliveryError(f"SMS provider did not answer within {timeout_s:g} s (timeout)", permanent=False) from None
    except httpx.InvalidURL as exc:
        raise DeliveryError(f"invalid SMS_API_URL: {exc}", permanent=False) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"SMS provider unreachable: {type(exc).__name__}: {exc}", permanent=False) from None
    status = response.status_code
    snippet = response.text[:200].strip().replace("\n", " ")
    if 200 <= status < 300:
        try:
            message_id = response.json().get(id_field)
        except (ValueError, AttributeError):
            message_id = None
        if not isinstance(message_id, str) or not message_id:
            # Accepted, so it will probably go out: do not send again, but say we cannot match reports.
            raise DeliveryError(f"SMS provider accepted the message but gave no {id_field!r}: {snippet}",
                                permanent=True)
        return message_id[:120]
    message = f"SMS provider HTTP {status}" + (f": {snippet}" if snippet else "")
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        raise DeliveryError(message, permanent=True)
    retry_after = response.headers.get("retry-after", "")
    raise DeliveryError(message, permanent=False,
                        retry_after_s=float(retry_after) if is_digits(retry_after.strip()) else None)


# --- Delivery-report verification ---------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64(HMAC-SHA1(token, url + key1 + value1 + key2 + value2 …)),
    the POST parameters sorted by name."""
    data = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    if not auth_token or not signature:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), signature.strip().encode())


def verify_shared_secret(expected: str, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# Provider status → our DeliveryEvent kind (anything else is recorded as the provider's word, not final).
REPORT_KINDS = {
    "delivered": "delivered",
    "failed": "failed",
    "undelivered": "failed",
}
