"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, no client library in the
hot loop), so the generator costs little next to the server it measures. Loopback targets only."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    path: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    generator_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    @classmethod
    def combined(cls, results: list["LoadResult"]) -> "LoadResult":
        """Several runs of the same path as one: all latencies, summed time, counts and CPU."""
        total = cls(path=results[0].path, seconds=sum(r.seconds for r in results))
        for r in results:
            total.latencies_ms.extend(r.latencies_ms)
            for status, n in r.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + n
            total.transport_errors += r.transport_errors
            total.generator_cpu_s += r.generator_cpu_s
            total.server_cpu_s += r.server_cpu_s
        return total

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.transport_errors + sum(n for status, n in self.statuses.items() if status != 200)

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]

    @property
    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / self.requests if self.requests else float("nan")

    def line(self, name: str) -> str:
        return (f"{name:<18} {self.rate:7.0f} req/s  p50 {self.percentile(50):6.1f} ms  "
                f"p95 {self.percentile(95):6.1f} ms  p99 {self.percentile(99):6.1f} ms  errors {self.errors}  (n={self.requests}; server CPU "
                f"{self.server_cpu_ms_per_request:.2f} ms/request; generator CPU {self.generator_cpu_s:.1f} s)")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for raw in lines[1:]:
        name, _, value = raw.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, not close


async def _connection(host: str, port: int, request: bytes, deadline: float, result: LoadResult) -> None:
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            status, keep_alive = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if not keep_alive:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            result.transport_errors += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _run(url: str, connections: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: portal-bench\r\n{extra}\r\n".encode()
    result = LoadResult(path=target, seconds=seconds)
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(_connection(host, port, request, deadline, result) for _ in range(connections)))
    result.seconds = time.monotonic() - started
    return result


def _event_loop_run(main):
    """uvloop when installed (a dependency of the portal): the generator then takes less of the shared CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run_load(url: str, connections: int = 64, seconds: float = 10, headers: dict[str, str] | None = None,
             server_cpu=None) -> LoadResult:
    """`connections` keep-alive connections each sending GET `url` back to back for `seconds`."""
    host = urlsplit(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError("load is only sent to loopback addresses")
    cpu_before = os.times()
    server_before = server_cpu() if server_cpu else 0.0
    result = _event_loop_run(_run(url, connections, seconds, headers or {}))
    cpu_after = os.times()
    result.generator_cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result.server_cpu_s = (server_cpu() - server_before) if server_cpu else 0.0
    return result
