"""Request body size limit: 413 before a route sees a body larger than ``MAX_REQUEST_BYTES``.

A pure ASGI middleware rather than FastAPI's own ``max_body_size``: that one lets a route
that never reads its body run to the end and then swaps its answer for a plain-text 413
(a ``DELETE`` with a huge body would delete first), and older FastAPI versions lack it.

- A declared ``Content-Length`` over the limit is refused at once; the app never runs.
- A body without one (chunked) is counted as it streams in; the read that crosses the
  limit raises ``RequestTooLarge``, an ``ApiError``, so the route's error handling answers
  (JSON on ``/v1``, the HTML error page on ``/ui``) before the route function is called.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.errors import ApiError, error_body

# 1 MiB. The largest legitimate body is a webhook with 100 sites and four 4 KiB
# credentials (about 30 KiB); the web forms are smaller. Constant, not a ROUTER_ setting,
# until someone needs to change it.
MAX_REQUEST_BYTES = 1024 * 1024


class RequestTooLarge(ApiError):
    """The request body passed the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    """What a 413 says."""
    return f"request body too large: at most {limit} bytes"


class BodyLimitMiddleware:
    """Refuses HTTP requests whose body is, or turns out to be, over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except RequestTooLarge:
            # Normally the app's handlers answer it; this catches a read made outside a
            # route (a middleware, say), as long as nothing was sent yet.
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Connection: close, since the unread rest of the body is still on the wire.
        response = JSONResponse(
            error_body(too_large_message(self.max_bytes)),
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the server rejects a malformed length before we see it
