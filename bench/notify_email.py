"""Benchmark: 10,000 queued e-mails sent by the outbox dispatcher to a local SMTP server (aiosmtpd),
next to the raw rate of smtplib and aiosmtplib sending the same messages to the same server in the same run.

Run by hand:  .venv/bin/python bench/notify_email.py [--messages 10000] [--batch 50] [--database-url URL]

The database is a freshly migrated temporary SQLite file unless --database-url names an EMPTY database.
It times:

  raw smtplib     one smtplib connection, sendmail for each prebuilt message (the floor for any
                  synchronous sender; no database)
  raw aiosmtplib  one aiosmtplib connection, the same messages, awaited one after another
  dispatcher      dispatch_due(limit=--batch) until the outbox is empty: claim, build the message
                  (stable Message-ID), send over one SMTP connection per batch, record "sent" and the
                  DeliveryEvent in one transaction per message (committed before the next DATA)

The raw senders get the very bytes the dispatcher sends (same builder, same headers, same merchant as
sender, same sizes), built before their clock starts; the dispatcher builds each message inside its run.
Target: the dispatcher at least half the raw smtplib rate. The server counts what it received, so
the figures are checked, not assumed.
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.config import Settings  # noqa: E402
from portal.db import make_engine, migrate  # noqa: E402
from portal.models import MerchantPolicy, utcnow  # noqa: E402
from portal.notify.sms_providers import SmsConfig  # noqa: E402
from portal.outbox import channels  # noqa: E402
from portal.outbox.dispatcher import Throttle, dispatch_due  # noqa: E402
from portal.outbox.service import enqueue  # noqa: E402

TARGET_RATIO = 0.5


SERVER = """
import sys, time
from aiosmtpd.controller import Controller
class Counter:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Counter.count += 1
        return "250 OK"
c = Controller(Counter(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
for line in sys.stdin:  # "count" -> how many messages so far
    print(Counter.count, flush=True)
c.stop()
"""


class SmtpServer:
    """aiosmtpd in its own process, so the server does not compete with the senders for the GIL."""

    def __init__(self, port: int):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def count(self) -> int:
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload(i: int) -> dict:
    return {"subject": f"Vi har tagit emot din retur R{i:07d}",
            "text": f"Hej kund {i},\n\nvi har tagit emot paketet och återbetalar inom 14 dagar.\n\nMvh Butiken",
            "html": f"<p>Hej kund {i},</p><p>vi har tagit emot <b>paketet</b>.</p>"}


SENDER = ("Butiken", "retur@butiken.example")  # also the merchant the dispatcher reads, so the bytes match


def messages(n: int):
    """The very messages the dispatcher sends (same builder, headers and sizes), built before timing."""
    return [channels.email_from_payload(payload(i), message_id=f"<outbox-{i + 1}@bench.local>",
                                        to=f"kund{i}@example.se", sender=SENDER, delivery_id=f"bench:{i}")
            for i in range(n)]


def raw_smtplib(port: int, msgs) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local") as smtp:
        for msg in msgs:
            smtp.sendmail(msg.envelope_from, list(msg.recipients), msg.data)
    return time.perf_counter() - started


def raw_aiosmtplib(port: int, msgs) -> float:
    async def run():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.local", start_tls=False)
        await smtp.connect()
        for msg in msgs:
            await smtp.sendmail(msg.envelope_from, list(msg.recipients), msg.data)
        await smtp.quit()

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    n = args.messages

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate(url)
        engine = make_engine(url)
        port = free_port()
        handler = SmtpServer(port)
        try:
            msgs = messages(n)
            t_smtplib = raw_smtplib(port, msgs)
            t_aiosmtplib = raw_aiosmtplib(port, msgs)
            assert handler.count == 2 * n, handler.count

            started = time.perf_counter()
            with Session(engine) as s:
                s.add(MerchantPolicy(merchant_name=SENDER[0], support_email=SENDER[1]))
                now = utcnow()
                for i in range(n):
                    enqueue(s, key=f"bench:{i}", channel="email", destination=f"kund{i}@example.se",
                            event_type="return.received", payload=payload(i), not_before=now)
                s.commit()
            t_queue = time.perf_counter() - started

            settings = Settings(database_url=url, smtp_url=f"smtp://127.0.0.1:{port}", base_url="http://bench.local",
                                mail_dir=Path(tmp) / "mail")
            no_sms = SmsConfig("46elks", "", "", "", "")
            before = handler.count
            started = time.perf_counter()
            sent = 0
            while True:
                report = dispatch_due(engine, limit=args.batch, settings=settings, sms_config=no_sms,
                                      throttle=Throttle({}))
                sent += report.sent
                if not report.claimed:
                    break
            t_dispatch = time.perf_counter() - started
            assert sent == n and handler.count - before == n, (sent, handler.count - before)
        finally:
            handler.stop()
            engine.dispose()

    rate = lambda t: n / t  # noqa: E731
    db = "SQLite (temporary file)" if not args.database_url else args.database_url.split("@")[-1]
    print(f"{n:,} e-mails to a local aiosmtpd server; database {db}; dispatcher batch {args.batch}")
    print(f"  raw smtplib     {rate(t_smtplib):8.0f} msg/s  ({t_smtplib:.2f} s)")
    print(f"  raw aiosmtplib  {rate(t_aiosmtplib):8.0f} msg/s  ({t_aiosmtplib:.2f} s)")
    print(f"  queueing        {rate(t_queue):8.0f} msg/s  ({t_queue:.2f} s, one transaction)")
    print(f"  dispatcher      {rate(t_dispatch):8.0f} msg/s  ({t_dispatch:.2f} s)")
    ratio = t_smtplib / t_dispatch
    best_raw = min(t_smtplib, t_aiosmtplib)
    print(f"  dispatcher / raw smtplib = {ratio:.2f}, / fastest raw = {best_raw / t_dispatch:.2f} "
          f"(target ≥ {TARGET_RATIO}): {'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
