"""Building the signed request and sending it (consumers/delivery.py), over MockTransport."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from consumers.delivery import (
    REDACTED,
    DeliveryRequest,
    DeliveryResult,
    Endpoint,
    HttpDeliverer,
    auth_headers,
    build_request,
    client_options,
    parse_retry_after,
)
from consumers.signing import generate_secret
from router import __version__
from router.events import Event

SECRET = generate_secret()
ORDER = {
    "id": "ord_1",
    "reference": "REF-1",
    "status": "done",
    "customer": {"name": "Ada"},
}
EVENT = Event(
    id="evt_2bQ",
    type="delivery.done",
    occurred_at="2026-11-27T18:00:00Z",
    account_id="acme",
    site_id="paris",
    data={"order": ORDER},
)

CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "basic": {"username": "alice", "password": "pa55-w0rd"},
    "bearer": {"token": "t0k3n-xyz"},
    "header": {"name": "X-Api-Key", "value": "k3y-value"},
}

# What must never be logged, per auth mode (raw and as sent on the wire).
SECRET_VALUES: dict[str, list[str]] = {
    "basic": ["pa55-w0rd", base64.b64encode(b"alice:pa55-w0rd").decode()],
    "bearer": ["t0k3n-xyz"],
    "header": ["k3y-value"],
}

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def endpoint(
    auth_mode: str = "none",
    credentials: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (SECRET,),
    include_order: bool = False,
) -> Endpoint:
    return Endpoint(
        webhook_id="wh_1",
        account_id="acme",
        url="https://receiver.example/hooks",
        auth_mode=auth_mode,
        auth_credentials=credentials if credentials is not None else CREDENTIALS[auth_mode],
        secrets=secrets,
        include_order=include_order,
    )


def body_response(status_code: int, body: bytes, **headers: str) -> httpx.Response:
    # A stream (not content=): content= makes httpx read the body up front, and the
    # deliverer reads the raw stream as a real transport would hand it over.
    return httpx.Response(status_code, stream=httpx.ByteStream(body), headers=headers)


def send(
    handler: Handler,
    request: DeliveryRequest | None = None,
    timeout_s: float = 5.0,
    excerpt_bytes: int = 1024,
) -> DeliveryResult:
    """Run one delivery against a mock transport, in a fresh event loop."""
    request = request or build_request(endpoint(), EVENT, int(time.time()))

    async def main() -> DeliveryResult:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(handler), **client_options(timeout_s, 10)
        ) as client:
            deliverer = HttpDeliverer(client, timeout_s=timeout_s, excerpt_bytes=excerpt_bytes)
            return await deliverer.send(request)

    return asyncio.run(main())


# --- build_request ----------------------------------------------------------------------


def test_request_headers() -> None:
    # Given an endpoint without auth
    now_s = int(time.time())
    # When the request for an event is built
    request = build_request(endpoint(), EVENT, now_s)
    # Then it carries the documented headers
    assert request.url == "https://receiver.example/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"webhook-router/{__version__}"
    assert request.headers["webhook-id"] == "evt_2bQ"
    assert request.headers["webhook-timestamp"] == str(now_s)
    assert request.headers["webhook-signature"].startswith("v1,")
    assert "authorization" not in request.headers


def test_request_body_is_the_receiver_payload() -> None:
    # Given an endpoint without include_order
    # When the request is built
    request = build_request(endpoint(), EVENT, int(time.time()))
    # Then the body is the Standard Webhooks payload with the order summarised
    assert orjson.loads(request.body) == {
        "type": "delivery.done",
        "timestamp": "2026-11-27T18:00:00Z",
        "id": "evt_2bQ",
        "account_id": "acme",
        "site_id": "paris",
        "data": {"order": {"id": "ord_1", "reference": "REF-1", "status": "done"}},
    }


def test_request_body_has_the_whole_order_when_asked() -> None:
    # Given an endpoint with include_order
    # When the request is built
    request = build_request(endpoint(include_order=True), EVENT, int(time.time()))
    # Then the order is sent whole
    assert orjson.loads(request.body)["data"]["order"] == ORDER


def test_request_signature_verifies_with_the_reference_library() -> None:
    # Given an endpoint with a secret
    # When a request is built now
    request = build_request(endpoint(), EVENT, int(time.time()))
    # Then the reference library accepts its body and headers
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["id"] == "evt_2bQ"


@pytest.mark.parametrize("which", [0, 1])
def test_request_during_rotation_verifies_with_either_secret(which: int) -> None:
    # Given an endpoint whose secret is being rotated
    old, new = generate_secret(), generate_secret()
    request = build_request(endpoint(secrets=(new, old)), EVENT, int(time.time()))
    # When a receiver holding one of the two verifies it
    # Then it is accepted
    Webhook((old, new)[which]).verify(request.body, request.headers)


def test_webhook_id_is_the_same_on_every_retry() -> None:
    # Given the same event delivered twice, a minute apart
    first = build_request(endpoint(), EVENT, 1_800_000_000)
    second = build_request(endpoint(), EVENT, 1_800_000_060)
    # When the requests are compared
    # Then webhook-id is the event id on both, while timestamp and signature move on
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == EVENT.id
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


# --- auth -------------------------------------------------------------------------------


def test_auth_none_adds_nothing() -> None:
    # Given auth mode none
    # When the auth headers are built
    # Then there are none
    assert auth_headers("none", {}) == {}


def test_auth_basic() -> None:
    # Given a username and password
    # When basic auth headers are built
    headers = auth_headers("basic", {"username": "alice", "password": "pa55:w0rd"})
    # Then authorization carries them base64-encoded, colon-joined
    assert headers == {"authorization": "Basic " + base64.b64encode(b"alice:pa55:w0rd").decode()}


def test_auth_bearer() -> None:
    # Given a token
    # When bearer auth headers are built
    # Then authorization carries it
    assert auth_headers("bearer", {"token": "t0k3n"}) == {"authorization": "Bearer t0k3n"}


def test_auth_custom_header() -> None:
    # Given a custom header name and value
    # When header auth headers are built
    # Then that header (lower-cased, as all our header names) carries the value
    assert auth_headers("header", {"name": "X-Api-Key", "value": "k3y"}) == {"x-api-key": "k3y"}


@pytest.mark.parametrize(
    ("mode", "header"),
    [("basic", "authorization"), ("bearer", "authorization"), ("header", "x-api-key")],
)
def test_request_carries_credentials_and_redacts_them(mode: str, header: str) -> None:
    # Given an endpoint with credentials
    request = build_request(endpoint(mode), EVENT, int(time.time()))
    # When the sent and the logged headers are compared
    # Then the sent ones carry the credential and the logged ones show it redacted
    assert request.headers[header] == auth_headers(mode, CREDENTIALS[mode])[header]
    assert request.redacted_headers[header] == REDACTED
    # And no credential appears anywhere in the logged headers
    logged = repr(request.redacted_headers)
    for secret in SECRET_VALUES[mode]:
        assert secret not in logged
    # While every non-credential header is logged as sent
    for name, value in request.redacted_headers.items():
        if name != header:
            assert request.headers[name] == value


def test_redacted_headers_without_auth_are_the_headers() -> None:
    # Given an endpoint without auth
    # When the request is built
    request = build_request(endpoint("none"), EVENT, int(time.time()))
    # Then nothing needs redacting
    assert request.redacted_headers == request.headers


# --- HttpDeliverer.send -----------------------------------------------------------------


def test_send_posts_the_request_and_returns_status_and_excerpt() -> None:
    # Given a receiver answering 200 with a short body
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return body_response(200, b'{"ok": true}')

    sent = build_request(endpoint("bearer"), EVENT, int(time.time()))
    # When the request is sent
    result = send(handler, sent)
    # Then the result has the status and body, and no error
    assert result.status_code == 200
    assert result.response_excerpt == '{"ok": true}'
    assert result.error is None
    assert result.duration_ms >= 0
    # And the receiver got a POST with exactly our body and headers
    (received,) = seen
    assert received.method == "POST"
    assert str(received.url) == "https://receiver.example/hooks"
    assert received.content == sent.body
    for name, value in sent.headers.items():
        assert received.headers[name] == value


@pytest.mark.parametrize("status_code", [400, 404, 410, 429, 500, 503])
def test_send_reports_a_non_2xx_answer_as_an_error(status_code: int) -> None:
    # Given a receiver answering with an error status and a body
    def handler(request: httpx.Request) -> httpx.Response:
        return body_response(status_code, b"boom")

    # When the request is sent
    result = send(handler)
    # Then the status and body are kept and the error says HTTP <status>
    assert result.status_code == status_code
    assert result.response_excerpt == "boom"
    assert result.error == f"HTTP {status_code}"


def test_send_cuts_a_large_body_to_the_excerpt_limit() -> None:
    # Given a receiver answering with 1 MB
    def handler(request: httpx.Request) -> httpx.Response:
        return body_response(200, b"x" * 1_000_000)

    # When the request is sent with an excerpt limit of 100 bytes
    result = send(handler, excerpt_bytes=100)
    # Then the excerpt is the first 100 bytes
    assert result.response_excerpt == "x" * 100


def test_send_reads_no_further_than_the_limit() -> None:
    # Given a receiver streaming a thousand chunks of 10 bytes
    chunks_read = 0

    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            nonlocal chunks_read
            for _ in range(1000):
                chunks_read += 1
                yield b"y" * 10

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunks())

    # When the request is sent with an excerpt limit of 35 bytes
    result = send(handler, excerpt_bytes=35)
    # Then the excerpt is 35 bytes and reading stopped at the chunk reaching the limit
    assert result.response_excerpt == "y" * 35
    assert chunks_read == 4


def test_send_keeps_an_empty_body_as_an_empty_excerpt() -> None:
    # Given a receiver answering 204 without a body
    def handler(request: httpx.Request) -> httpx.Response:
        return body_response(204, b"")

    # When the request is sent
    result = send(handler)
    # Then it is a success with an empty excerpt
    assert (result.status_code, result.response_excerpt, result.error) == (204, "", None)


def test_send_replaces_undecodable_bytes_in_the_excerpt() -> None:
    # Given a receiver answering bytes that are not UTF-8
    def handler(request: httpx.Request) -> httpx.Response:
        return body_response(200, b"ok \xff\xfe")

    # When the request is sent
    result = send(handler)
    # Then the excerpt is text, with replacement characters
    assert result.response_excerpt == "ok \ufffd\ufffd"


def test_send_logs_a_compressed_answer_as_text() -> None:
    # Given a receiver that compresses its answer, as the client allowed it to
    def handler(request: httpx.Request) -> httpx.Response:
        assert "gzip" in request.headers.get("accept-encoding", "")
        return body_response(500, gzip.compress(b"database down"), **{"content-encoding": "gzip"})

    # When the request is sent
    result = send(handler)
    # Then the excerpt is the readable body
    assert result.response_excerpt == "database down"


def test_send_reports_a_connection_error() -> None:
    # Given a transport that cannot connect
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    # When the request is sent
    result = send(handler)
    # Then the result has no status and the error says why
    assert result.status_code is None
    assert result.response_excerpt is None
    assert result.error is not None
    assert "ConnectError" in result.error
    assert "connection refused" in result.error


@pytest.mark.parametrize(
    "exc_type", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.WriteTimeout, httpx.PoolTimeout]
)
def test_send_reports_an_httpx_timeout(exc_type: type[httpx.TimeoutException]) -> None:
    # Given a transport timing out in some phase
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("timed out", request=request)

    # When the request is sent with a 5 s timeout
    result = send(handler, timeout_s=5.0)
    # Then the result has no status and a timeout error
    assert result.status_code is None
    assert result.error == "timed out after 5 s"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
        httpx.UnsupportedProtocol("ftp"),
    ],
)
def test_send_reports_other_transport_errors(exc: httpx.TransportError) -> None:
    # Given a transport failing in another way
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    # When the request is sent
    result = send(handler)
    # Then it comes back as an error result, not an exception
    assert result.status_code is None
    assert result.error == f"{type(exc).__name__}: {exc}"


def test_send_cuts_off_a_slow_endpoint_at_the_total_timeout() -> None:
    # Given a receiver that takes 5 s to answer
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return body_response(200, b"too late")

    # When the request is sent with a 0.2 s timeout
    started = time.perf_counter()
    result = send(handler, timeout_s=0.2)
    elapsed_s = time.perf_counter() - started
    # Then it gives up after about 0.2 s with a timeout error
    assert result.status_code is None
    assert result.error == "timed out after 0.2 s"
    assert 150 <= result.duration_ms < 2000
    assert elapsed_s < 2


def test_send_cuts_off_a_body_trickling_past_the_total_timeout() -> None:
    # Given a receiver that answers at once but sends its body a byte every 0.1 s
    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(100):
                await asyncio.sleep(0.1)
                yield b"."

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Trickle())

    # When the request is sent with a 0.3 s timeout and a large excerpt limit
    result = send(handler, timeout_s=0.3, excerpt_bytes=1000)
    # Then the whole exchange is cut off at the timeout
    assert result.status_code is None
    assert result.error == "timed out after 0.3 s"
    assert result.duration_ms < 2000


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Fri, 27 Nov 2026 18:01:40 GMT", 100.0),
        ("Fri, 27 Nov 2026 17:00:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(value: str | None, seconds: float | None) -> None:
    # Given a Retry-After value, at 18:00:00 UTC
    now = datetime(2026, 11, 27, 18, 0, 0, tzinfo=UTC)
    # When it is parsed / Then it is the number of seconds asked for
    assert parse_retry_after(value, now) == seconds
