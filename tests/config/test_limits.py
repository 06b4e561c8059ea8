"""Abuse limits of the config API: request body size, and failed authentications per address."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config.auth_throttle import MAX_FAILED_AUTHS, FailedAuthThrottle
from config.body_limit import MAX_REQUEST_BYTES
from tests.config.conftest import Keys, create

BAD_KEY = {"Authorization": "Bearer wr_not-a-key"}
SIGN_IN_TOKEN = re.compile(r'name="sign_in_token" value="([^"]+)"')


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of ``total`` bytes streamed without Content-Length (chunked)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def assert_too_large(response_status: int, body: dict[str, object]) -> None:
    assert response_status == 413
    error = body["error"]
    assert isinstance(error, dict)
    assert error["message"] == f"request body too large: at most {MAX_REQUEST_BYTES} bytes"
    assert error["field"] is None


def test_a_declared_body_over_the_limit_is_413_before_the_route_runs(
    api: TestClient, acme: Keys
) -> None:
    # Given a webhook
    hook = create(api, acme)
    # When a DELETE of it declares a body one byte over the limit
    response = api.request(
        "DELETE",
        f"/v1/webhooks/{hook['id']}",
        content=b" " * (MAX_REQUEST_BYTES + 1),
        headers=acme.admin,
    )
    # Then it is a 413 in the error shape, and the webhook was not deleted
    assert_too_large(response.status_code, response.json())
    assert api.get(f"/v1/webhooks/{hook['id']}", headers=acme.admin).status_code == 200


def test_a_streamed_body_past_the_limit_is_413(offline_api: TestClient, acme: Keys) -> None:
    # Given a creation body streamed without Content-Length, past the limit
    body = chunks(MAX_REQUEST_BYTES + 1)
    # When it is posted
    response = offline_api.post(
        "/v1/webhooks",
        content=body,
        headers={**acme.admin, "content-type": "application/json"},
    )
    # Then it is a 413 in the error shape
    assert_too_large(response.status_code, response.json())


def test_a_body_at_the_limit_reaches_the_route(offline_api: TestClient, acme: Keys) -> None:
    # Given valid JSON padded with spaces to exactly the limit
    padded = b'{"name": "x"}'.ljust(MAX_REQUEST_BYTES)
    # When it is posted, declared and streamed
    declared = offline_api.post(
        "/v1/webhooks", content=padded, headers={**acme.admin, "content-type": "application/json"}
    )
    streamed = offline_api.post(
        "/v1/webhooks",
        content=iter([padded]),
        headers={**acme.admin, "content-type": "application/json"},
    )
    # Then the route validates it (422: fields are missing), no 413
    assert declared.status_code == 422, declared.text
    assert streamed.status_code == 422, streamed.text


def test_a_page_form_over_the_limit_is_413(offline_api: TestClient) -> None:
    # Given the sign-in form
    # When a form over the limit is posted to it, declared and streamed
    declared = offline_api.post("/ui/login", data={"api_key": "x" * MAX_REQUEST_BYTES})
    streamed = offline_api.post(
        "/ui/login",
        content=chunks(MAX_REQUEST_BYTES + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    # Then both are refused with 413
    assert_too_large(declared.status_code, declared.json())
    assert streamed.status_code == 413
    assert "too large" in streamed.text


def test_413_is_documented_on_every_operation(offline_api: TestClient) -> None:
    schema = offline_api.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "413" in operation["responses"], (method, path)


def fail(client: TestClient, times: int) -> None:
    for _ in range(times):
        response = client.get("/v1/event-types", headers=BAD_KEY)
        assert response.status_code == 401, response.text


def test_too_many_unknown_keys_get_429_until_the_window_passes(
    offline_api: TestClient, acme: Keys
) -> None:
    # Given an address that presented the maximum of unknown keys
    fail(offline_api, MAX_FAILED_AUTHS)
    # When it presents a key again, unknown or valid
    unknown = offline_api.get("/v1/event-types", headers=BAD_KEY)
    valid = offline_api.get("/v1/webhooks", headers=acme.admin)
    # Then both are 429 in the error shape, with Retry-After up to the window
    for response in (unknown, valid):
        assert response.status_code == 429, response.text
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert "too many failed authentications" in response.json()["error"]["message"]
    # and a request without any key is still told to send one
    assert offline_api.get("/v1/event-types").status_code == 401


def test_requests_without_a_key_are_not_counted(offline_api: TestClient, acme: Keys) -> None:
    # Given many requests without a key
    for _ in range(MAX_FAILED_AUTHS * 2):
        assert offline_api.get("/v1/event-types").status_code == 401
    # When a valid key follows
    response = offline_api.get("/v1/event-types", headers=acme.viewer)
    # Then it is served
    assert response.status_code == 200


def test_the_address_may_try_again_once_its_failures_leave_the_window(
    offline_api: TestClient, acme: Keys
) -> None:
    # Given a throttle of 2 failures per second, used up
    offline_api.app.state.failed_auth = FailedAuthThrottle(max_failures=2, window_s=1)  # type: ignore[attr-defined]
    fail(offline_api, 2)
    assert offline_api.get("/v1/event-types", headers=acme.viewer).status_code == 429
    # When the window has passed
    time.sleep(1.1)
    # Then a valid key is served again
    assert offline_api.get("/v1/event-types", headers=acme.viewer).status_code == 200


def sign_in_attempt(client: TestClient, key: str) -> tuple[int, str, dict[str, str]]:
    page = client.get("/ui/login")
    match = SIGN_IN_TOKEN.search(page.text)
    assert match is not None
    response = client.post(
        "/ui/login",
        data={"api_key": key, "sign_in_token": match.group(1)},
        follow_redirects=False,
    )
    return response.status_code, response.text, dict(response.headers)


def test_sign_in_form_is_throttled_too(offline_api: TestClient, acme: Keys) -> None:
    # Given an address that failed to sign in the maximum number of times
    for _ in range(MAX_FAILED_AUTHS):
        status, text, _ = sign_in_attempt(offline_api, "wr_wrong")
        assert status == 401
        assert "unknown API key" in text
    # When it signs in with a valid key
    key = acme.admin["Authorization"].removeprefix("Bearer ")
    status, text, headers = sign_in_attempt(offline_api, key)
    # Then the form answers 429 with Retry-After and says why
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert "too many failed authentications" in text
    # and the JSON API refuses that address as well: the count is shared
    assert offline_api.get("/v1/event-types", headers=acme.viewer).status_code == 429


def test_an_unknown_session_cookie_counts_and_is_dropped(offline_api: TestClient) -> None:
    # Given a browser whose session cookie holds a key that no longer exists
    offline_api.cookies.set("wr_session", "wr_revoked", path="/ui")
    # When it opens a page, then the sign-in form
    page = offline_api.get("/ui/webhooks", follow_redirects=False)
    form = offline_api.get("/ui/login")
    # Then it is sent to sign in, and the form drops the stale cookie
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login"
    assert form.status_code == 200
    dropped = [c for c in form.headers.get_list("set-cookie") if c.startswith("wr_session=")]
    assert dropped, "the stale session cookie was not dropped"
    assert "max-age=0" in dropped[0].lower()


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_public_routes_ignore_the_throttle(offline_api: TestClient, path: str) -> None:
    # Given a throttled address
    fail(offline_api, MAX_FAILED_AUTHS)
    # When it asks for liveness or metrics
    response = offline_api.get(path)
    # Then they answer: they check no key
    assert response.status_code == 200
