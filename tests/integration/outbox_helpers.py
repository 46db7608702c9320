"""Real servers on loopback for the outbox tests: a merchant's webhook receiver and an SMTP server."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from portal.outbox.signing import SIGNATURE_HEADER, SignatureError, verify


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    signature_ok: bool
    signature_error: str = ""


@dataclass
class Receiver:
    """The merchant's webhook endpoint. `script` is a list of answers used in turn (then 200):
    an int status, or ("sleep", seconds) to answer 200 only after that long."""

    secret: str = ""
    script: list = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def next_action(self):
        with self.lock:
            return self.script.pop(0) if self.script else 200

    def record(self, item: Received) -> None:
        with self.lock:
            self.requests.append(item)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER))
            item = Received(body, {k.lower(): v for k, v in self.headers.items()}, True)
        except SignatureError as exc:
            item = Received(body, {k.lower(): v for k, v in self.headers.items()}, False, str(exc))
        receiver.record(item)
        action = receiver.next_action()
        status = 200
        if isinstance(action, tuple) and action[0] == "sleep":
            time.sleep(action[1])
        else:
            status = int(action)
        if not item.signature_ok:
            status = 401
        reply = b"ok" if status < 300 else b"nope"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:
            pass  # the sender gave up (timeout) and closed the connection

    def log_message(self, *args):  # keep test output quiet
        pass


class running_receiver:
    """Context manager: a Receiver served by http.server on 127.0.0.1, a free port."""

    def __init__(self, secret: str = ""):
        self.receiver = Receiver(secret=secret)

    def __enter__(self) -> Receiver:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.receiver = self.receiver  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.receiver.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/returns"
        return self.receiver

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailSink:
    """aiosmtpd handler: records every DATA it is given; `data_replies` / `rcpt_reply` script refusals."""

    def __init__(self):
        self.received: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.data_replies: list[str] = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(envelope.content)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.data_replies.pop(0) if self.data_replies else "250 Message accepted for delivery"


class running_smtp:
    def __init__(self):
        self.sink = MailSink()

    def __enter__(self) -> tuple[MailSink, int]:
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self.sink, self.port

    def __exit__(self, *exc):
        self.controller.stop()
