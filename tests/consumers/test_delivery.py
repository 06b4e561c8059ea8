"""Building the signed request (pure) and sending it with both deliverers to real HTTP
servers on 127.0.0.1: the shared test receiver, and raw servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from consumers.delivery import (
    REDACTED,
    DeliveryRequest,
    DeliveryResult,
    Endpoint,
    auth_headers,
    build_request,
    make_deliverer,
    parse_retry_after,
)
from consumers.signing import generate_secret, sign
from router import __version__
from router.events import Event
from tests.receiver import Receiver

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


def endpoint(
    auth_mode: str = "none",
    credentials: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (SECRET,),
    include_order: bool = False,
    url: str = "https://receiver.example/hooks",
) -> Endpoint:
    return Endpoint(
        webhook_id="wh_1",
        account_id="acme",
        url=url,
        auth_mode=auth_mode,
        auth_credentials=credentials if credentials is not None else CREDENTIALS[auth_mode],
        secrets=secrets,
        include_order=include_order,
    )


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


def rotating(old: str, new: str, expires_at_s: int) -> Endpoint:
    """An endpoint whose secret ``old`` was rotated to ``new``, ``old`` valid until then."""
    return replace(
        endpoint(secrets=(new,)),
        previous_secret=old,
        previous_secret_expires_at=datetime.fromtimestamp(expires_at_s, tz=UTC),
    )


def test_previous_secret_signs_until_it_expires() -> None:
    # Given an endpoint whose old secret expires at 1_800_000_100
    old, new = generate_secret(), generate_secret()
    rotated = rotating(old, new, 1_800_000_100)
    # When the secrets to sign with are asked for before, at and after the expiry
    # Then the old one is there only before it
    assert rotated.signing_secrets(1_800_000_099) == (new, old)
    assert rotated.signing_secrets(1_800_000_100) == (new,)
    assert rotated.signing_secrets(1_800_000_101) == (new,)
    # And an endpoint never rotated signs with its secret alone
    assert endpoint().signing_secrets(1_800_000_000) == (SECRET,)


def test_request_drops_the_previous_secret_once_expired() -> None:
    # Given an endpoint whose old secret expires in a minute
    old, new = generate_secret(), generate_secret()
    now_s = int(time.time())
    rotated = rotating(old, new, now_s + 60)
    # When requests are built now and after the expiry
    during = build_request(rotated, EVENT, now_s)
    after = build_request(rotated, EVENT, now_s + 60)
    # Then the first verifies with both secrets, the second with the new one alone
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert after.headers["webhook-signature"] == sign(new, EVENT.id, now_s + 60, after.body)


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


# --- Deliverer.send, against real servers -----------------------------------------------

# Headers the HTTP client adds itself, besides those of build_request.
TRANSPORT_HEADERS = {"host", "content-length", "accept", "connection"}

# Writes the answer to one request; returns whether to keep the connection for another.
Answer = Callable[[asyncio.StreamWriter], Awaitable[bool]]


@pytest.fixture(params=["aiohttp", "httpx"])
def kind(request: pytest.FixtureRequest) -> str:
    """Every send test runs with both deliverers: they must behave alike."""
    return str(request.param)


class ScriptedServer:
    """A raw HTTP/1.1 server on 127.0.0.1 in the test's event loop.

    It reads each request whole, then lets ``answer`` write anything, well-formed or not.
    """

    def __init__(self, answer: Answer) -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        self._answer = answer
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/hooks"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(_content_length(head))
                self.heads.append(head)
                if not await self._answer(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the test is over; ending quietly keeps asyncio from logging the cancel
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def response(status: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """A well-formed HTTP/1.1 answer with a content-length."""
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def canned(raw: bytes) -> Answer:
    """Answer every request with the same bytes, keeping the connection."""

    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return True

    return answer


async def never_answer(writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(3600)
    return False


async def trickle(writer: asyncio.StreamWriter) -> bool:
    """Send the head at once, then the body a byte every 0.1 s."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
    for _ in range(100):
        await asyncio.sleep(0.1)
        writer.write(b".")
        await writer.drain()
    return True


async def endless(writer: asyncio.StreamWriter) -> bool:
    """Announce a gigabyte and stream it until the client hangs up."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n")
    while True:
        writer.write(b"y" * 65536)
        await writer.drain()


def exchange(
    kind: str,
    answer: Answer,
    times: int = 1,
    timeout_s: float = 5.0,
    excerpt_bytes: int = 1024,
    host: str = "127.0.0.1",
    allow_private: bool = True,
) -> tuple[list[DeliveryResult], ScriptedServer]:
    """Send ``times`` requests in a row to a scripted server, with one deliverer."""

    async def main() -> tuple[list[DeliveryResult], ScriptedServer]:
        async with ScriptedServer(answer) as server:
            deliverer = make_deliverer(
                kind, timeout_s, excerpt_bytes, 10, 10, allow_private=allow_private
            )
            try:
                url = server.url.replace("127.0.0.1", host)
                request = build_request(endpoint(url=url), EVENT, int(time.time()))
                return [await deliverer.send(request) for _ in range(times)], server
            finally:
                await deliverer.aclose()

    return asyncio.run(main())


def send_once(kind: str, request: DeliveryRequest, timeout_s: float = 5.0) -> DeliveryResult:
    """Send one request with a fresh deliverer, closed afterwards."""

    async def main() -> DeliveryResult:
        deliverer = make_deliverer(kind, timeout_s, 1024, 10, 10, allow_private=True)
        try:
            return await deliverer.send(request)
        finally:
            await deliverer.aclose()

    return asyncio.run(main())


def request_to(url: str, auth_mode: str = "none") -> DeliveryRequest:
    return build_request(endpoint(auth_mode, url=url), EVENT, int(time.time()))


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but not listening: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"


def test_send_posts_the_request_and_returns_status_and_excerpt(
    kind: str, receiver: Receiver
) -> None:
    # Given a receiver answering 200 with a short body
    sent = request_to(receiver.url + "/hooks", "bearer")
    # When the request is sent
    result = send_once(kind, sent)
    # Then the result has the status and body, and no error
    assert (result.status_code, result.response_excerpt, result.error) == (
        200,
        '{"ok": true}',
        None,
    )
    assert result.duration_ms >= 0
    assert result.retry_after_s is None
    # And the receiver got one POST with exactly our body
    [received] = receiver.requests
    assert received.path == "/hooks"
    assert received.body == sent.body


@pytest.mark.parametrize("auth_mode", ["none", "basic", "header"])
def test_send_sends_the_built_headers_and_no_others(
    kind: str, receiver: Receiver, auth_mode: str
) -> None:
    # Given a request with credentials
    sent = request_to(receiver.url, auth_mode)
    # When it is sent
    send_once(kind, sent)
    # Then the receiver got every header built, with the value built
    [received] = receiver.requests
    for name, value in sent.headers.items():
        assert received.headers.get(name) == value, name
    assert received.headers["user-agent"] == f"webhook-router/{__version__}"
    # And nothing else but what HTTP/1.1 framing needs: no Accept-Encoding of the library's
    assert set(received.headers) - set(sent.headers) <= TRANSPORT_HEADERS
    assert received.headers["content-length"] == str(len(sent.body))


@pytest.mark.parametrize("status_code", [400, 404, 410, 429, 500, 503])
def test_send_reports_a_non_2xx_answer_as_an_error(
    kind: str, receiver: Receiver, status_code: int
) -> None:
    # Given a receiver answering with an error status and a body
    receiver.status = status_code
    # When the request is sent
    result = send_once(kind, request_to(receiver.url))
    # Then the status and body are kept and the error says HTTP <status>
    assert result.status_code == status_code
    assert result.response_excerpt == '{"error": "nope"}'
    assert result.error == f"HTTP {status_code}"


@pytest.mark.parametrize("status_code", [302, 307])
def test_send_does_not_follow_a_redirect(kind: str, receiver: Receiver, status_code: int) -> None:
    # Given a receiver redirecting elsewhere
    receiver.responder = lambda _r: (status_code, {"location": receiver.url + "/elsewhere"})
    # When the request is sent
    result = send_once(kind, request_to(receiver.url + "/hooks"))
    # Then the redirect is the answer, a failure, and nothing else was requested
    assert (result.status_code, result.error) == (status_code, f"HTTP {status_code}")
    assert [r.path for r in receiver.requests] == ["/hooks"]


@pytest.mark.parametrize(
    ("header", "seconds"), [("120", 120.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)]
)
def test_send_reads_retry_after(kind: str, receiver: Receiver, header: str, seconds: float) -> None:
    # Given a receiver asking to come back later
    receiver.responder = lambda _r: (429, {"retry-after": header})
    # When the request is sent
    result = send_once(kind, request_to(receiver.url))
    # Then the wait it asked for is in the result
    assert (result.status_code, result.retry_after_s) == (429, seconds)


def test_send_cuts_a_large_body_to_the_excerpt_limit(kind: str) -> None:
    # Given a server answering with 1 MB
    answer = canned(response("200 OK", b"x" * 1_000_000))
    # When the request is sent with an excerpt limit of 100 bytes
    [result], _ = exchange(kind, answer, excerpt_bytes=100)
    # Then the excerpt is the first 100 bytes
    assert (result.status_code, result.response_excerpt) == (200, "x" * 100)


def test_send_reads_no_further_than_the_limit(kind: str) -> None:
    # Given a server streaming a body without end
    # When the request is sent with an excerpt limit of 35 bytes and a 5 s timeout
    [result], _ = exchange(kind, endless, excerpt_bytes=35)
    # Then it returns at once with the first 35 bytes: the rest was never waited for
    assert (result.status_code, result.response_excerpt, result.error) == (200, "y" * 35, None)
    assert result.duration_ms < 2000


def test_send_keeps_an_empty_body_as_an_empty_excerpt(kind: str) -> None:
    # Given a server answering 204 without a body
    answer = canned(b"HTTP/1.1 204 No Content\r\n\r\n")
    # When the request is sent
    [result], _ = exchange(kind, answer)
    # Then it is a success with an empty excerpt
    assert (result.status_code, result.response_excerpt, result.error) == (204, "", None)


def test_send_replaces_undecodable_bytes_in_the_excerpt(kind: str) -> None:
    # Given a server answering bytes that are not UTF-8
    answer = canned(response("200 OK", b"ok \xff\xfe"))
    # When the request is sent
    [result], _ = exchange(kind, answer)
    # Then the excerpt is text, with replacement characters
    assert result.response_excerpt == "ok \ufffd\ufffd"


def test_send_logs_a_compressed_answer_as_text(kind: str) -> None:
    # Given a server that gzips its answer, unasked (RFC 9110 allows it)
    gzipped = {"content-encoding": "gzip"}
    answer = canned(response("500 Oops", gzip.compress(b"database down"), gzipped))
    # When the request is sent
    [result], _ = exchange(kind, answer)
    # Then the excerpt is the readable body
    assert (result.status_code, result.response_excerpt) == (500, "database down")


def test_send_cuts_a_compressed_answer_after_decoding(kind: str) -> None:
    # Given a server answering a megabyte that gzips to about a kilobyte
    gzipped = {"content-encoding": "gzip"}
    answer = canned(response("200 OK", gzip.compress(b"z" * 1_000_000), gzipped))
    # When the request is sent with an excerpt limit of 100 bytes
    [result], _ = exchange(kind, answer, excerpt_bytes=100)
    # Then the excerpt is 100 decoded bytes
    assert result.response_excerpt == "z" * 100


def test_send_accepts_a_long_response_header(kind: str) -> None:
    # Given a server answering with a 20 kB header (a big cookie or policy)
    answer = canned(response("200 OK", b"ok", {"x-long": "a" * 20_000}))
    # When the request is sent
    [result], _ = exchange(kind, answer)
    # Then the delivery succeeded
    assert (result.status_code, result.error) == (200, None)


def test_send_reuses_the_connection(kind: str) -> None:
    # Given a server that keeps connections open
    answer = canned(response("200 OK", b'{"ok": true}'))
    # When three requests are sent one after the other
    results, server = exchange(kind, answer, times=3)
    # Then all three went over one connection
    assert [r.status_code for r in results] == [200, 200, 200]
    assert (len(server.heads), server.connections) == (3, 1)


def test_send_sends_no_cookie_back(kind: str) -> None:
    # Given a server that sets a cookie (endpoints of several accounts may share a host),
    # named (cookie jars may refuse cookies of bare IP addresses)
    answer = canned(response("200 OK", b"ok", {"set-cookie": "session=abc; Path=/"}))
    # When two requests are sent
    _, server = exchange(kind, answer, times=2, host="localhost")
    # Then the second does not carry the cookie
    assert len(server.heads) == 2
    assert b"cookie" not in server.heads[1].lower()


def test_send_reports_a_refused_connection(kind: str, refused_url: str) -> None:
    # Given a port where nothing listens
    # When the request is sent
    result = send_once(kind, request_to(refused_url))
    # Then the result has no status and an error that is not a timeout
    assert (result.status_code, result.response_excerpt) == (None, None)
    assert result.error
    assert "timed out" not in result.error
    assert result.duration_ms < 2000


BROKEN_ANSWERS = {
    "not_http": b"THIS IS NOT HTTP\r\n\r\n",
    "hang_up": b"",
    "truncated_body": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
    "bad_chunk": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "bad_gzip": response("200 OK", b"not gzip at all", {"content-encoding": "gzip"}),
}


@pytest.mark.parametrize("raw", BROKEN_ANSWERS.values(), ids=BROKEN_ANSWERS.keys())
def test_send_reports_a_broken_answer(kind: str, raw: bytes) -> None:
    # Given a server answering something that is not a whole HTTP answer, then hanging up
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return False

    # When the request is sent
    [result], _ = exchange(kind, answer)
    # Then the result has no status and an error that is not a timeout: a retry may succeed
    assert (result.status_code, result.response_excerpt) == (None, None)
    assert result.error
    assert "timed out" not in result.error


def test_send_reads_a_body_arriving_in_pieces(kind: str) -> None:
    # Given a server sending its body in three pieces, 50 ms apart
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n")
        for piece in (b"hello", b" big ", b"world"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        return True

    # When the request is sent with room for all of it
    [result], _ = exchange(kind, answer)
    # Then the excerpt is the whole body
    assert result.response_excerpt == "hello big world"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hooks", "http://", "not a url"])
def test_send_reports_an_unusable_url(kind: str, url: str) -> None:
    # Given a URL no HTTP request can be made to
    # When the request is sent
    result = send_once(kind, request_to(url))
    # Then it comes back as an error result, not an exception
    assert (result.status_code, result.response_excerpt) == (None, None)
    assert result.error


def test_send_cuts_off_a_silent_endpoint_at_the_total_timeout(kind: str) -> None:
    # Given a server that reads the request and never answers
    # When the request is sent with a 0.3 s timeout
    started = time.perf_counter()
    [result], _ = exchange(kind, never_answer, timeout_s=0.3)
    elapsed_s = time.perf_counter() - started
    # Then it gives up after about 0.3 s with a timeout error
    assert result.status_code is None
    assert result.error == "timed out after 0.3 s"
    assert 250 <= result.duration_ms < 2000
    assert elapsed_s < 2


def test_send_cuts_off_a_body_trickling_past_the_total_timeout(kind: str) -> None:
    # Given a server that answers at once but sends its body a byte every 0.1 s
    # When the request is sent with a 0.3 s timeout and a large excerpt limit
    [result], _ = exchange(kind, trickle, timeout_s=0.3, excerpt_bytes=1000)
    # Then the whole exchange is cut off at the timeout
    assert result.status_code is None
    assert result.error == "timed out after 0.3 s"
    assert 250 <= result.duration_ms < 2000


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1: a loopback address"),
        ("localhost", "localhost resolves to "),  # DNS, checked on the address connected to
    ],
)
def test_send_refuses_a_private_target_unless_allowed(kind: str, host: str, reason: str) -> None:
    # Given a server on loopback, reached by address or by a name resolving to it
    # When a request is sent by a deliverer that may only reach public addresses
    [result], server = exchange(
        kind, canned(response("200 OK", b"{}")), host=host, allow_private=False
    )
    # Then nothing connects, and the attempt says why
    assert server.connections == 0
    assert result.status_code is None
    assert result.error is not None
    assert reason in result.error
    assert "webhooks may only target public addresses" in result.error


def test_send_refuses_the_metadata_address(kind: str) -> None:
    # Given the cloud metadata address (link-local)
    # When a request is sent to it by a deliverer limited to public addresses
    async def main() -> DeliveryResult:
        deliverer = make_deliverer(kind, 1.0, 1024, 10, 10, allow_private=False)
        try:
            return await deliverer.send(request_to("http://169.254.169.254/latest/meta-data"))
        finally:
            await deliverer.aclose()

    result = asyncio.run(main())
    # Then it is refused before any connection attempt (no timeout)
    assert result.error == (
        "169.254.169.254: a link-local address; webhooks may only target public addresses"
    )
    assert result.duration_ms < 500


def test_unknown_http_client_is_refused() -> None:
    # Given a kind of client that does not exist
    # When a deliverer of that kind is asked for
    # Then the factory refuses it
    with pytest.raises(ValueError, match="curl"):
        make_deliverer("curl", 1.0, 100, 10, 10, allow_private=True)


# --- Retry-After ------------------------------------------------------------------------


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
