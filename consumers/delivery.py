"""One HTTP delivery: build the signed request for a webhook and POST it, bounded in time
and size. Transport errors are mapped to the router's errors here and nowhere else."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from consumers.signing import signature_header
from router import __version__
from router.errors import DeliveryError, EndpointTimeout, EndpointUnavailable
from router.events import Event, receiver_payload

USER_AGENT = f"webhook-router/{__version__}"
REDACTED = "[redacted]"


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
        "webhook-signature": signature_header(endpoint.secrets, event.id, now_s, body),
    }
    credentials = auth_headers(endpoint.auth_mode, endpoint.auth_credentials)
    redacted = {**headers, **dict.fromkeys(credentials, REDACTED)}
    return DeliveryRequest(endpoint.url, body, {**headers, **credentials}, redacted)


class HttpDeliverer:
    """Sends delivery requests over one shared httpx client; never raises for HTTP errors."""

    def __init__(self, client: httpx.AsyncClient, timeout_s: float, excerpt_bytes: int) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._excerpt_bytes = excerpt_bytes

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        """POST the request; any failure comes back as a result with ``error`` set."""
        started = time.perf_counter()
        try:
            status, excerpt, retry_after = await self._post(request)
        except DeliveryError as exc:
            return DeliveryResult(None, None, str(exc), _elapsed_ms(started))
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return DeliveryResult(
            status, excerpt, error, _elapsed_ms(started), parse_retry_after(retry_after)
        )

    async def _post(self, request: DeliveryRequest) -> tuple[int, str, str | None]:
        try:
            # httpx times each phase; this bounds the whole exchange, so an endpoint
            # trickling its answer byte by byte cannot hold a slot forever.
            async with (
                asyncio.timeout(self._timeout_s),
                self._client.stream(
                    "POST", request.url, content=request.body, headers=request.headers
                ) as response,
            ):
                excerpt = await _read_excerpt(response, self._excerpt_bytes)
                return response.status_code, excerpt, response.headers.get("retry-after")
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise EndpointTimeout(f"timed out after {self._timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise EndpointUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise EndpointUnavailable(f"invalid URL: {exc}") from exc


async def _read_excerpt(response: httpx.Response, limit: int) -> str:
    """Read at most ``limit`` bytes of the body, so a huge answer costs nothing more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: gzip answers log as text
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")


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
    """httpx client options: no redirects followed, bounded pool, one total timeout."""
    return {
        "timeout": httpx.Timeout(timeout_s),
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        "follow_redirects": False,
        "trust_env": False,
    }
