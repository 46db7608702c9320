"""Composing an outgoing e-mail as the exact bytes that go on the wire (RFC 5322 + MIME, CRLF line ends).

Why not `email.message.EmailMessage`: with `policy.default` every header goes through the header registry
(a class is created per header and the value is parsed and refolded), which made building and flattening
a message cost more than sending it. The messages the outbox sends have one fixed shape, so they are
written directly:

- headers: printable ASCII that fits on a 78-character line as it is; anything else (Nordic letters, or a
  very long subject) as RFC 2047 base64 encoded-words of whole UTF-8 characters, one per folded line of at
  most 76 characters; display names quoted where RFC 5322 needs it; CR/LF in a value is refused
  (header injection).
- bodies: UTF-8, quoted-printable (7-bit clean through any relay, lines ≤ 76), text/plain alone or
  multipart/alternative with text/html; the boundary starts with "=_", which quoted-printable can never
  produce, so it cannot occur in a body.
- addresses: ASCII local parts; a domain with non-ASCII letters is sent in its IDNA (xn--) form.

No database and no web imports here.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

CRLF = "\r\n"
MAX_LINE = 78
WORD_BYTES = 39  # UTF-8 bytes per encoded-word: "=?utf-8?b?" + 52 base64 chars + "?=" keeps lines ≤ 76
ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")  # a phrase that needs no quoting (atoms and spaces)
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True)
class OutgoingEmail:
    """A composed message: its envelope and the bytes that are sent (or written to the mail folder)."""

    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes

    def as_bytes(self) -> bytes:
        return self.data


def _no_line_breaks(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"the {name} header must not contain line breaks")
    return value


def encoded_words(text: str) -> list[str]:
    """RFC 2047 "B" encoded-words of `text`, each at most WORD_BYTES of UTF-8, never splitting a character."""
    words, chunk, size = [], [], 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > WORD_BYTES and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def header_text(name: str, value: str) -> str:
    """An unstructured header (Subject) as one folded line: plain when it can be, encoded-words otherwise."""
    _no_line_breaks(name, value)
    if PRINTABLE_ASCII.fullmatch(value) and "=?" not in value and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}"
    return f"{name}: " + f"{CRLF} ".join(encoded_words(value))


def extra_header(name: str, value: str) -> str:
    """A header the caller adds (X-Portal-Delivery, List-Unsubscribe): ASCII as it is, folded only where the
    caller folded it (CRLF + space); other text as encoded-words. Anything else with a line break is refused."""
    if not HEADER_NAME.fullmatch(name):
        raise ValueError(f"not a header name: {name!r}")
    if PRINTABLE_ASCII.fullmatch(value.replace(CRLF + " ", " ")) and len(name) + 2 + len(value) <= 998:
        return f"{name}: {value}"
    return header_text(name, value)


def address(addr: str) -> str:
    """A bare address fit for a header and the envelope: no spaces or brackets, ASCII local part,
    the domain in IDNA form. ValueError when it is not an address."""
    addr = _no_line_breaks("address", addr.strip())
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(c in addr for c in ' <>(),;:"\\[]\t'):
        raise ValueError(f"not an e-mail address: {addr!r}")
    if not local.isascii():
        raise ValueError(f"e-mail addresses with non-ASCII letters before the @ are not supported: {addr!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"not a valid e-mail domain: {domain!r}") from None
    return f"{local}@{domain}"


def mailbox(display_name: str, addr: str) -> str:
    """`Name <address>`: the name as it is, quoted, or encoded-words (folded), whichever it needs."""
    addr = address(addr)
    name = " ".join(_no_line_breaks("display name", display_name).split())
    if not name:
        return addr
    if name.isascii() and "=?" not in name:  # "=?" would be decoded as an encoded-word, even quoted
        if ATOM.fullmatch(name):
            return f"{name} <{addr}>"
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr}>'
    return f"{CRLF} ".join(encoded_words(name)) + f"{CRLF} <{addr}>"


def quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends, whatever line ends `text` had, ending in a line break
    (as EmailMessage.set_content did)."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF).encode("utf-8")
    encoded = binascii.b2a_qp(normalised, quotetabs=False, istext=True, header=False)
    # b2a_qp writes its soft line breaks with "\n" when the input has no CRLF at all: make every end CRLF.
    encoded = encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return encoded if encoded.endswith(b"\r\n") else encoded + b"\r\n"


def _text_part_headers(subtype: str) -> str:
    return f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}Content-Transfer-Encoding: quoted-printable{CRLF}'


def compose(*, message_id: str, from_name: str, from_address: str, to: str, subject: str, text: str,
            html: str | None = None, reply_to: str | None = None, headers: dict[str, str] | None = None,
            date: datetime | None = None) -> OutgoingEmail:
    """The whole message. `headers` are extra ASCII headers (names and values checked, no line breaks)."""
    sender, recipient = address(from_address), address(to)
    lines = [
        f"Message-ID: {_no_line_breaks('Message-ID', message_id)}",
        f"Date: {format_datetime(date or datetime.now(timezone.utc))}",
        f"From: {mailbox(from_name, sender)}",
        f"To: {recipient}",
    ]
    if reply_to:
        lines.append(f"Reply-To: {address(reply_to)}")
    lines.append(header_text("Subject", subject))
    for name, value in (headers or {}).items():
        lines.append(extra_header(name, value))
    lines.append("MIME-Version: 1.0")
    head = CRLF.join(lines) + CRLF
    if html:
        boundary = f"=_{random.getrandbits(96):024x}"  # unique enough: "=_" alone keeps it out of the bodies
        body = b"".join([
            f'{head}Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}'
            f"--{boundary}{CRLF}{_text_part_headers('plain')}{CRLF}".encode("ascii"),
            quoted_printable(text),
            f"{CRLF}--{boundary}{CRLF}{_text_part_headers('html')}{CRLF}".encode("ascii"),
            quoted_printable(html),
            f"{CRLF}--{boundary}--{CRLF}".encode("ascii"),
        ])
    else:
        body = f"{head}{_text_part_headers('plain')}{CRLF}".encode("ascii") + quoted_printable(text)
    return OutgoingEmail(message_id=message_id, envelope_from=sender, recipients=(recipient,), data=body)
