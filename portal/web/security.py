"""Security headers on every response, errors and 404s included (an app-level before_send hook)."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
BASE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # status links carry a secret: never leak them onwards
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def security_headers_hook(https: bool):
    headers = dict(BASE_HEADERS)
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            out = MutableScopeHeaders.from_message(message)
            for name, value in headers.items():
                if name not in out:
                    out[name] = value

    return before_send
