"""A fast webhook receiver for benchmarks: a raw asyncio HTTP/1.1 server on 127.0.0.1.

Every POST is answered ``200 {"ok":true}`` and recorded as (receipt ``time.time_ns()``,
``data.published_at_ns`` of its JSON body); ``GET /stats`` returns the count, the count
per path, duplicates (same path and event id twice), and publish-to-receipt latency
percentiles in ms. Keep-alive and pipelining are supported; chunked bodies are not (the
router always sends ``content-length``). One core serves well over 5,000 requests/s.

A POST to a path under ``/hang/`` is never answered: the connection is held open, and
anything more sent on it ignored, until the client gives up and closes it. Such requests
are counted apart (``hang`` in ``/stats``), not in ``count`` or ``paths``.

    python bench/receiver.py --port 9000
    python bench/receiver.py --port 9000 --host 127.0.0.1 --host 127.0.0.2
    python bench/receiver.py --check      # measure its own throughput and exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections import Counter
from typing import Any

import orjson

_OK = b'{"ok":true}'
_MAX_HEAD = 64 * 1024
HANG_PREFIX = "/hang/"


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


_OK_RESPONSE = _response("200 OK", _OK)
_NOT_FOUND = _response("404 Not Found", b'{"error":"not found"}')
_BAD_REQUEST = _response("400 Bad Request", b'{"error":"bad request"}')


class Stats:
    """What the receiver saw: one entry per POST, summarised on demand."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.missing_timestamp = 0
        self.paths: Counter[str] = Counter()
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.first_ns = 0
        self.last_ns = 0
        self.hang_paths: Counter[str] = Counter()
        self.hanging: set[asyncio.Transport] = set()  # held open, never answered
        self.hang_closed_by_client = 0

    def record(self, path: str, body: bytes, received_ns: int) -> None:
        """Remember one POST received at ``received_ns``."""
        self.paths[path] += 1
        self.first_ns = self.first_ns or received_ns
        self.last_ns = received_ns
        try:
            payload = orjson.loads(body)
            published = payload["data"]["published_at_ns"]
            key = (path, str(payload.get("id")))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.missing_timestamp += 1
            return
        if key in self.seen:
            self.duplicates += 1
        self.seen.add(key)
        self.latencies_ns.append(received_ns - int(published))

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles (ms) as a JSON-ready dict."""
        return {
            "count": sum(self.paths.values()),
            "paths": dict(self.paths),
            "duplicates": self.duplicates,
            "missing_timestamp": self.missing_timestamp,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "latency_ms": percentiles_ms(self.latencies_ns),
            "hang": {
                "requests": sum(self.hang_paths.values()),
                "paths": dict(self.hang_paths),
                "open": len(self.hanging),
                "closed_by_client": self.hang_closed_by_client,
            },
        }

    def close_hanging(self) -> None:
        """Drop every connection still held open (at shutdown)."""
        for transport in list(self.hanging):
            transport.abort()
        self.hanging.clear()


def percentiles_ms(values_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/max (nearest rank) of nanosecond values, in milliseconds."""
    if not values_ns:
        return {}
    ordered = sorted(values_ns)
    last = len(ordered) - 1

    def rank(fraction: float) -> float:
        return round(ordered[min(last, int(fraction * len(ordered)))] / 1e6, 2)

    return {
        "min": round(ordered[0] / 1e6, 2),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[last] / 1e6, 2),
    }


class HttpProtocol(asyncio.Protocol):
    """Parses requests off one connection and answers each at once."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._hanging = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        received_ns = time.time_ns()
        if self._hanging:
            return
        self._buffer += data
        while self._transport is not None:
            request = self._next_request()
            if request is None:
                return
            answer = self._answer(*request, received_ns)
            if answer is None:  # a /hang/ request: never answer, ignore what follows
                self._hang()
                return
            self._transport.write(answer)

    def _hang(self) -> None:
        assert self._transport is not None
        self._hanging = True
        self._buffer.clear()
        self._stats.hanging.add(self._transport)

    def _next_request(self) -> tuple[bytes, bytes] | None:
        """Cut one complete request (head, body) off the buffer, if there is one."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._fail()
            return None
        head = bytes(self._buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                self._fail()
                return None
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        return head, body

    def _answer(self, head: bytes, body: bytes, received_ns: int) -> bytes | None:
        """The response to send; None for a request never to be answered."""
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].decode("latin-1")
        if method == b"POST" and path.startswith(HANG_PREFIX):
            self._stats.hang_paths[path] += 1
            return None
        if method == b"POST":
            self._stats.record(path, body, received_ns)
            return _OK_RESPONSE
        if method == b"GET" and path.split("?")[0] == "/stats":
            return _response("200 OK", orjson.dumps(self._stats.summary()))
        return _NOT_FOUND

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.write(_BAD_REQUEST)
            self._transport.close()
            self._transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._hanging and self._transport in self._stats.hanging:
            self._stats.hanging.discard(self._transport)
            self._stats.hang_closed_by_client += 1
        self._transport = None


async def serve(hosts: list[str], port: int, stop: asyncio.Event) -> None:
    """Serve on every address of ``hosts`` until ``stop`` is set."""
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(stats), hosts, port, reuse_address=True, backlog=1024
    )
    for host in hosts:
        print(f"receiver listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()
        stats.close_hanging()


async def _main(hosts: list[str], port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(hosts, port, stop)


async def _client(port: int, body: bytes, deadline: float) -> int:
    """One keep-alive connection POSTing one request at a time until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /check HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    sent = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            await reader.readuntil(_OK)
            sent += 1
    finally:
        writer.close()
    return sent


def check(seconds: float = 3.0, connections: int = 16) -> None:
    """Start a receiver process, hammer it from this one, print its requests/s and CPU."""
    import subprocess
    import sys

    from harness import free_port, wait_http
    from procstats import cpu_seconds

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/stats", 10.0)
        payload = {"id": "evt_x", "data": {"published_at_ns": time.time_ns(), "pad": "x" * 400}}
        body = orjson.dumps(payload)
        cpu_before, started = cpu_seconds(process.pid), time.monotonic()

        async def run() -> list[int]:
            deadline = time.monotonic() + seconds
            return await asyncio.gather(
                *(_client(port, body, deadline) for _ in range(connections))
            )

        total = sum(asyncio.run(run()))
        elapsed, cpu = time.monotonic() - started, cpu_seconds(process.pid) - cpu_before
        print(
            f"{total} requests in {elapsed:.2f} s = {total / elapsed:,.0f} req/s wall; "
            f"receiver CPU {cpu:.2f} s = {total / max(cpu, 1e-9):,.0f} req/s per CPU second"
        )
    finally:
        process.terminate()
        with contextlib.suppress(Exception):
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", action="append", help="address to listen on; repeatable (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--check", action="store_true", help="measure throughput and exit")
    args = parser.parse_args()
    if args.check:
        check()
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host or ["127.0.0.1"], args.port))


if __name__ == "__main__":
    main()
