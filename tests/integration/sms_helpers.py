"""A real HTTP server on loopback playing an SMS provider: 46elks (/a1/sms) and Twilio (/2010-04-01/…).

It checks what a real provider checks (basic auth, the form fields) and records every accepted SMS.
`script` is a list of answers used in turn (then 200/201): an int status, or ("sleep", s)."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from portal.notify.sms_providers import SmsConfig

ELKS_USER, ELKS_PASSWORD = "u1234567890abcdef", "elks-secret-password"
TWILIO_SID, TWILIO_TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token-0123"


@dataclass
class SmsRequest:
    provider: str
    path: str
    form: dict[str, str]
    auth: tuple[str, str] | None
    headers: dict[str, str]
    status: int
    message_id: str | None


@dataclass
class SmsProvider:
    script: list = field(default_factory=list)
    requests: list[SmsRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    observer: object = None  # called with each SmsRequest, e.g. to interleave it with a test's own trace

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else None

    @property
    def accepted(self) -> list[SmsRequest]:
        with self.lock:
            return [r for r in self.requests if r.message_id]

    def config(self, provider: str = "46elks", sender: str = "Butiken") -> SmsConfig:
        if provider == "twilio":
            return SmsConfig("twilio", self.url, TWILIO_SID, TWILIO_TOKEN, sender)
        return SmsConfig("46elks", self.url, ELKS_USER, ELKS_PASSWORD, sender)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        provider: SmsProvider = self.server.provider  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        auth = None
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            auth = (user, password)
        if self.path == "/a1/sms":
            name, expected, fields, id_key = "46elks", (ELKS_USER, ELKS_PASSWORD), ("from", "to", "message"), "id"
        elif self.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
            name, expected, fields, id_key = "twilio", (TWILIO_SID, TWILIO_TOKEN), ("From", "To", "Body"), "sid"
        else:
            return self._answer(404, {"error": "no such path"})
        action = provider.next_action()
        if isinstance(action, tuple) and action[0] == "sleep":
            time.sleep(action[1])
            action = None
        if auth != expected:
            status, body = 401, {"error": "bad credentials"}
        elif any(not form.get(f) for f in fields) or set(form) != set(fields):
            status, body = 400, {"error": f"need exactly {fields}"}
        elif form[fields[1]].startswith("+46000"):  # the test range: "not a valid mobile number"
            status, body = 400, {"error": "Invalid 'to' number"}
        elif action is not None:
            status, body = int(action), {"error": "scripted"}
        else:
            status = 200 if name == "46elks" else 201
            prefix = "s" if name == "46elks" else "SM"
            body = {id_key: f"{prefix}{next(provider.counter):08d}", "status": "created"}
        message_id = body.get(id_key) if status < 300 else None
        with provider.lock:
            provider.requests.append(SmsRequest(name, self.path, form, auth,
                                                {k.lower(): v for k, v in self.headers.items()}, status, message_id))
        if provider.observer:
            provider.observer(provider.requests[-1])
        self._answer(status, body)

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class running_sms_provider:
    def __enter__(self) -> SmsProvider:
        self.provider = SmsProvider()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.provider = self.provider  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.provider.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.provider

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
