"""One HTTP delivery: build the signed request for a webhook and POST it, bounded in time
and size. Transport errors are mapped to the router's errors here and nowhere else.

Two deliverers behave alike: ``AiohttpDeliverer``, the hot path (httpx's connection pool
cost most of a worker's CPU), and ``HttpxDeliverer``, kept as the fallback.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import re
import socket
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import httpx
import orjson

from consumers.signing import signature_header
from router import __version__
from router.errors import DeliveryError, EndpointTimeout, EndpointUnavailable, TargetForbidden
from router.events import Event, receiver_payload
from router.targets import check_target, forbidden_reason, refusal

USER_AGENT = f"webhook-router/{__version__}"
REDACTED = "[redacted]"
# Fixed in CPython 3.12.8 and 3.13.1 (python/cpython#118960).
_LEAKS_CLOSED_TLS = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
_MAX_HEADER_BYTES = 64 * 1024
_PARSER_STATUS = re.compile(r"^\d{3}, message[:=]\s*")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the worker needs to know about a webhook to deliver to it."""

    webhook_id: str
    account_id: str
    url: str
    auth_mode: str
    auth_credentials: Mapping[str, str]
    secrets: tuple[str, ...]
    include_order: bool
    max_attempts: int | None = None
    circuit_state: str = "closed"
    circuit_retry_at: datetime | None = None
    circuit_cooldown_s: float = 0.0
    # A rotated-out secret, signed with as well until it expires.
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None

    def signing_secrets(self, now_s: float) -> tuple[str, ...]:
        """The secrets to sign with at ``now_s``: the previous one only before its expiry.

        Decided per request, not when the webhook was loaded: a worker that hears of no
        change still stops signing with the old secret on time.
        """
        expires_at = self.previous_secret_expires_at
        if self.previous_secret is None or expires_at is None:
            return self.secrets
        if now_s >= expires_at.timestamp():
            return self.secrets
        return (*self.secrets, self.previous_secret)


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """The exact request sent: body, and headers with and without credentials."""

    url: str
    body: bytes
    headers: dict[str, str]
    redacted_headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What came back: a status and body excerpt, or an error; and how long it took."""

    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int
    retry_after_s: float | None = None


def auth_headers(mode: str, credentials: Mapping[str, str]) -> dict[str, str]:
    """The header carrying the endpoint's credentials for this auth mode."""
    if mode == "basic":
        token = f"{credentials['username']}:{credentials['password']}".encode()
        return {"authorization": "Basic " + base64.b64encode(token).decode()}
    if mode == "bearer":
        return {"authorization": "Bearer " + credentials["token"]}
    if mode == "header":
        return {credentials["name"].lower(): credentials["value"]}
    return {}


def build_request(endpoint: Endpoint, event: Event, now_s: int) -> DeliveryRequest:
    """The signed POST for ``event``; ``webhook-id`` is the event id on every retry."""
    body = orjson.dumps(receiver_payload(event, endpoint.include_order))
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event.id,
        "webhook-timestamp": str(now_s),
        "webhook-signature": signature_header(
            endpoint.signing_secrets(now_s), event.id, now_s, body
        ),
    }
    credentials = auth_headers(endpoint.auth_mode, endpoint.auth_credentials)
    redacted = {**headers, **dict.fromkeys(credentials, REDACTED)}
    return DeliveryRequest(endpoint.url, body, {**headers, **credentials}, redacted)


class Deliverer(Protocol):
    """Sends delivery requests; a failed delivery is a result with ``error`` set, never raised."""

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        """POST the request, bounded in time and in how much of the answer is read."""
        ...

    async def aclose(self) -> None:
        """Close the connections held; call once, at shutdown."""
        ...


# The parts of an answer that are kept: status, body excerpt, Retry-After.
_Answer = tuple[int, str, str | None]


async def _deliver(exchange: Coroutine[Any, Any, _Answer]) -> DeliveryResult:
    """Run one exchange and turn its answer, or the router error it raised, into a result."""
    started = time.perf_counter()
    try:
        status, excerpt, retry_after = await exchange
    except DeliveryError as exc:
        return DeliveryResult(None, None, str(exc), _elapsed_ms(started))
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return DeliveryResult(
        status, excerpt, error, _elapsed_ms(started), parse_retry_after(retry_after)
    )


class _NotPublic(OSError):
    """A host resolved only to addresses webhooks may not target."""


class _PublicAddressResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver keeping only public addresses: the SSRF check at connect time.

    URLs are checked when saved, but DNS can change afterwards (rebinding): this checks
    the very addresses the connection is about to use.
    """

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if forbidden_reason(ipaddress.ip_address(r["host"])) is None]
        if found and not public:
            address = ipaddress.ip_address(found[0]["host"])
            raise _NotPublic(refusal(host, address, forbidden_reason(address) or "a forbidden"))
        return public

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=4096)
def _forbidden_literal(url: str) -> str | None:
    """Why ``url`` may not be called when its host is an IP address (no DNS to check)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    reason = forbidden_reason(address)
    return None if reason is None else refusal(host, address, reason)


class AiohttpDeliverer:
    """Sends delivery requests over one aiohttp session: the worker's hot path.

    Create it inside the running event loop (the session binds to it) and ``aclose`` it
    there. ``per_host_limit`` caps the connections to one host, port and scheme. Unless
    ``allow_private``, only public addresses are connected to.
    """

    def __init__(
        self,
        timeout_s: float,
        excerpt_bytes: int,
        max_connections: int,
        per_host_limit: int,
        *,
        allow_private: bool,
    ) -> None:
        self._timeout_s = timeout_s
        self._excerpt_bytes = excerpt_bytes
        self._allow_private = allow_private
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            limit_per_host=per_host_limit,
            resolver=None if allow_private else _PublicAddressResolver(),
            ttl_dns_cache=60,
            # Only CPython versions that leak aborted TLS transports need the sweep;
            # aiohttp warns (an error under our test settings) when it is asked for elsewhere.
            enable_cleanup_closed=_LEAKS_CLOSED_TLS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=True,
            # Only the headers of build_request (plus Host, Content-Length, Accept) go out.
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            # Receivers' cookies are never sent back: endpoints of different accounts
            # may share a host.
            cookie_jar=aiohttp.DummyCookieJar(),
            # aiohttp's 8 KiB default would fail answers that httpx (100 KiB per head) takes.
            max_line_size=_MAX_HEADER_BYTES,
            max_field_size=_MAX_HEADER_BYTES,
        )

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        """POST the request; any failure comes back as a result with ``error`` set."""
        return await _deliver(self._post(request))

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()

    async def _post(self, request: DeliveryRequest) -> _Answer:
        if not self._allow_private and (reason := _forbidden_literal(request.url)):
            raise TargetForbidden(reason)  # aiohttp never resolves IP literals
        try:
            # ClientTimeout rounds long timeouts up to whole seconds; this bounds the
            # exchange exactly, and the same way as the httpx path.
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.post(
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    allow_redirects=False,
                ) as response,
            ):
                excerpt = await _read_aiohttp_excerpt(response.content, self._excerpt_bytes)
                return response.status, excerpt, response.headers.get("retry-after")
        except TimeoutError as exc:  # also aiohttp.ServerTimeoutError, a subclass
            raise EndpointTimeout(f"timed out after {self._timeout_s:g} s") from exc
        except aiohttp.InvalidURL as exc:
            raise EndpointUnavailable(f"invalid URL: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _NotPublic):
                raise TargetForbidden(str(exc.os_error)) from exc
            raise EndpointUnavailable(f"{type(exc).__name__}: {_one_line(str(exc))}") from exc
        except aiohttp.ClientResponseError as exc:  # not HTTP; redirects are never followed
            raise EndpointUnavailable(f"invalid HTTP answer: {_one_line(exc.message)}") from exc
        except aiohttp.ClientError as exc:
            # Connect failures, resets, disconnects, broken or undecodable bodies: the
            # endpoint is unusable right now, and a later attempt may succeed.
            raise EndpointUnavailable(f"{type(exc).__name__}: {_one_line(str(exc))}") from exc


async def _read_aiohttp_excerpt(content: aiohttp.StreamReader, limit: int) -> str:
    """Read at most ``limit`` decoded bytes; reading to the end frees the connection."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)  # what has arrived, up to the bound
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _one_line(text: str) -> str:
    """aiohttp's parser messages span lines and start with a made-up ``400, message:``."""
    return _PARSER_STATUS.sub("", " ".join(text.split()))


class HttpxDeliverer:
    """Sends delivery requests over one httpx client that it owns.

    Unless ``allow_private``, the URL's host is resolved and checked before each request:
    httpx has no resolver hook, so unlike the aiohttp path this checks the addresses just
    before connecting rather than the very ones connected to.
    """

    def __init__(
        self, timeout_s: float, excerpt_bytes: int, max_connections: int, *, allow_private: bool
    ) -> None:
        self._client = httpx.AsyncClient(**client_options(timeout_s, max_connections))
        # Like the aiohttp path: no Accept-Encoding of the library's own. Receivers may
        # still compress (RFC 9110 allows any coding then); answers are decoded either way.
        del self._client.headers["accept-encoding"]
        self._timeout_s = timeout_s
        self._excerpt_bytes = excerpt_bytes
        self._allow_private = allow_private

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        """POST the request; any failure comes back as a result with ``error`` set."""
        return await _deliver(self._post(request))

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()

    async def _post(self, request: DeliveryRequest) -> _Answer:
        if not self._allow_private:
            try:
                await asyncio.to_thread(check_target, request.url, False)
            except ValueError as exc:
                raise TargetForbidden(str(exc)) from exc
        try:
            # httpx times each phase; this bounds the whole exchange, so an endpoint
            # trickling its answer byte by byte cannot hold a slot forever.
            async with (
                asyncio.timeout(self._timeout_s),
                self._client.stream(
                    "POST", request.url, content=request.body, headers=request.headers
                ) as response,
            ):
                excerpt = await _read_httpx_excerpt(response, self._excerpt_bytes)
                return response.status_code, excerpt, response.headers.get("retry-after")
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise EndpointTimeout(f"timed out after {self._timeout_s:g} s") from exc
        except httpx.RequestError as exc:  # transport errors, and bodies that fail to decode
            raise EndpointUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise EndpointUnavailable(f"invalid URL: {exc}") from exc


async def _read_httpx_excerpt(response: httpx.Response, limit: int) -> str:
    """Read at most ``limit`` bytes of the body, so a huge answer costs nothing more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: gzip answers log as text
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")


def make_deliverer(
    kind: str,
    timeout_s: float,
    excerpt_bytes: int,
    max_in_flight: int,
    per_host_limit: int,
    *,
    allow_private: bool,
) -> Deliverer:
    """The deliverer named by ``kind`` (``aiohttp`` or ``httpx``); call it in the running loop."""
    if kind == "aiohttp":
        return AiohttpDeliverer(
            timeout_s, excerpt_bytes, max_in_flight, per_host_limit, allow_private=allow_private
        )
    if kind == "httpx":  # no per-host cap: httpx pools have none
        return HttpxDeliverer(timeout_s, excerpt_bytes, max_in_flight, allow_private=allow_private)
    raise ValueError(f"unknown HTTP client {kind!r}; expected 'aiohttp' or 'httpx'")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def client_options(timeout_s: float, max_connections: int) -> dict[str, Any]:
    """httpx client options: no redirects, no cookies, bounded pool, one total timeout."""
    return {
        "timeout": httpx.Timeout(timeout_s),
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        "follow_redirects": False,
        "trust_env": False,
        # Receivers' cookies are never kept nor sent back: endpoints of different accounts
        # may share a host.
        "cookies": CookieJar(DefaultCookiePolicy(allowed_domains=[])),
    }
