"""A real HTTP receiver for tests: records every request, answers as told."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson


class _QuietServer(ThreadingHTTPServer):
    """Clients that vanish mid-request (a worker killed or cut off on purpose) are the
    tests' business, not a traceback on stderr; anything else is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


Responder = Callable[[Received], "tuple[int, dict[str, str]]"]


class Receiver:
    """A threaded HTTP server on 127.0.0.1.

    It answers ``status``, or what ``responder`` says for each request when set.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.failure_body = b'{"error": "nope"}'  # what a non-2xx answer carries
        self.delay_s = 0.0
        self.responder: Responder | None = None
        self._delivered: list[str] = []
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver._lock:
                    receiver.requests.append(received)
                    status, extra = receiver.status, {}
                    if receiver.responder is not None:
                        status, extra = receiver.responder(received)
                    if 200 <= status < 300:
                        receiver._delivered.append(received.headers.get("webhook-id", ""))
                    receiver._lock.notify_all()
                reply = b'{"ok": true}' if 200 <= status < 300 else receiver.failure_body
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_first(self, failures: int, status: int = 503) -> None:
        """Fail the first ``failures`` requests of every event (by webhook-id), then 200."""
        seen: dict[str, int] = {}

        def respond(request: Received) -> tuple[int, dict[str, str]]:
            key = request.headers.get("webhook-id", "")
            seen[key] = seen.get(key, 0) + 1
            return (status if seen[key] <= failures else 200), {}

        self.responder = respond

    def delivered_ids(self) -> list[str]:
        """webhook-id of every request answered 2xx, in arrival order."""
        with self._lock:
            return list(self._delivered)

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[Received]:
        """Block until ``count`` requests arrived; fail the test if they do not."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver got {len(self.requests)} requests, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self.requests)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
