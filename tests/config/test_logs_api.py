"""The logs API on the real databases: attempts written as the worker writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from router.models import DeliveryAttempt, Webhook
from tests.config.conftest import Keys

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
ACME_HOOK = "wh_00000000000000010000aaaa"
GLOBEX_HOOK = "wh_00000000000000020000bbbb"


def attempt_id(n: int) -> str:
    """Attempt ids that sort like the worker's (by creation time)."""
    return f"att_{n:016x}0000cafe"


def attempt(n: int, webhook_id: str = ACME_HOOK, **overrides: Any) -> dict[str, Any]:
    """An attempt row, the n-th one, made n minutes after T0."""
    row: dict[str, Any] = {
        "id": attempt_id(n),
        "webhook_id": webhook_id,
        "account_id": "acme" if webhook_id == ACME_HOOK else "globex",
        "event_id": f"evt_{n}",
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "succeeded",
        "outcome": "delivered",
        "response_status": 200,
        "response_body": '{"ok": true}',
        "error": None,
        "duration_ms": 12,
        "request_url": "https://example.com/hooks",
        "request_headers": {"content-type": "application/json", "authorization": "[redacted]"},
        "request_body": '{"type": "delivery.done"}',
        "next_retry_at": None,
        "created_at": T0 + timedelta(minutes=n),
    }
    row.update(overrides)
    return row


def webhook_row(webhook_id: str, account_id: str) -> dict[str, Any]:
    """A webhook row, as the API would have stored it."""
    return {
        "id": webhook_id,
        "account_id": account_id,
        "name": "Invoices",
        "url": "https://example.com/hooks",
        "auth_mode": "none",
        "auth_credentials": {},
        "secret": "whsec_x",
        "events": ["delivery.done"],
        "sites": [],
        "include_order": False,
        "enabled": True,
        "created_at": T0,
        "updated_at": T0,
    }


@pytest.fixture
def write(engine: Engine) -> Any:
    """Insert attempt rows directly, as the worker does."""

    def insert_rows(*rows: dict[str, Any]) -> None:
        with engine.begin() as connection:
            connection.execute(insert(DeliveryAttempt), list(rows))

    with engine.begin() as connection:
        connection.execute(
            insert(Webhook),
            [webhook_row(ACME_HOOK, "acme"), webhook_row(GLOBEX_HOOK, "globex")],
        )
    return insert_rows


def logs(api: TestClient, keys: Keys, **params: Any) -> Any:
    """GET the acme webhook's logs; assert it answered 200."""
    response = api.get(f"/v1/webhooks/{ACME_HOOK}/logs", params=params, headers=keys.viewer)
    assert response.status_code == 200, response.text
    return response.json()


def test_lists_attempts_newest_first_across_pages(
    offline_api: TestClient, acme: Keys, write: Any
) -> None:
    # Given five attempts of the webhook and one of another webhook
    write(*(attempt(n) for n in range(5)), attempt(9, GLOBEX_HOOK))
    # When they are read two at a time
    pages = [logs(offline_api, acme, limit=2)]
    while pages[-1]["next_cursor"] is not None:
        pages.append(logs(offline_api, acme, limit=2, cursor=pages[-1]["next_cursor"]))
    # Then they come newest first, each once, in three pages
    ids = [item["id"] for page in pages for item in page["items"]]
    assert ids == [attempt_id(n) for n in (4, 3, 2, 1, 0)]
    assert len(pages) == 3


def test_entry_fields(offline_api: TestClient, acme: Keys, write: Any) -> None:
    # Given a failed attempt waiting for a retry
    retry_at = T0 + timedelta(minutes=1, seconds=5)
    write(
        attempt(
            1,
            status="failed",
            outcome="retrying",
            response_status=503,
            error="HTTP 503",
            next_retry_at=retry_at,
        )
    )
    # When the logs are read
    [item] = logs(offline_api, acme)["items"]
    # Then the entry has every contract field, times in UTC
    assert item == {
        "id": attempt_id(1),
        "webhook_id": ACME_HOOK,
        "event_id": "evt_1",
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "failed",
        "outcome": "retrying",
        "response_status": 503,
        "error": "HTTP 503",
        "duration_ms": 12,
        "created_at": "2026-11-27T18:01:00Z",
        "next_retry_at": "2026-11-27T18:01:05Z",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, [3, 1]),
        ({"status": "succeeded"}, [2, 0]),
        ({"event_type": "route.started"}, [2]),
        ({"since": "2026-11-27T18:01:00Z"}, [3, 2, 1]),
        ({"until": "2026-11-27T18:02:00Z"}, [1, 0]),
        # 20:02 in Paris is 18:02 UTC: offsets are honoured on both databases
        ({"since": "2026-11-27T20:02:00+02:00"}, [3, 2]),
        ({"since": "2026-11-27T18:01:00", "until": "2026-11-27T18:03:00"}, [2, 1]),
        ({"status": "failed", "since": "2026-11-27T18:02:00Z"}, [3]),
    ],
)
def test_filters(
    offline_api: TestClient, acme: Keys, write: Any, params: dict[str, str], expected: list[int]
) -> None:
    # Given successes and failures of two types, a minute apart
    write(
        attempt(0),
        attempt(1, status="failed", outcome="retrying"),
        attempt(2, event_type="route.started"),
        attempt(3, status="failed", outcome="dead_lettered"),
    )
    # When the logs are filtered
    items = logs(offline_api, acme, **params)["items"]
    # Then exactly the matching attempts come back, newest first
    assert [item["id"] for item in items] == [attempt_id(n) for n in expected]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "errors"}, "status"),
        ({"event_type": "delivery.exploded"}, "event_type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "d2hfbm90LWFuLWlk"}, "cursor"),
        ({"limit": 500}, "limit"),
    ],
)
def test_bad_filters_are_422(
    offline_api: TestClient, acme: Keys, write: Any, params: dict[str, str], field: str
) -> None:
    # Given a bad query parameter
    # When the logs are read with it
    response = offline_api.get(f"/v1/webhooks/{ACME_HOOK}/logs", params=params, headers=acme.admin)
    # Then it is a 422 naming the parameter
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_detail_shows_request_and_response(offline_api: TestClient, acme: Keys, write: Any) -> None:
    # Given an attempt with its request and response stored
    write(attempt(1, response_status=500, response_body="boom", status="failed"))
    # When a viewer reads it
    response = offline_api.get(f"/v1/logs/{attempt_id(1)}", headers=acme.viewer)
    # Then it shows the entry, the redacted request and the response excerpt
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == attempt_id(1)
    assert body["status"] == "failed"
    assert body["request"] == {
        "url": "https://example.com/hooks",
        "headers": {"content-type": "application/json", "authorization": "[redacted]"},
        "body": '{"type": "delivery.done"}',
    }
    assert body["response"] == {"status": 500, "body": "boom"}


def test_detail_without_response(offline_api: TestClient, acme: Keys, write: Any) -> None:
    # Given an attempt that timed out before any response
    write(attempt(1, response_status=None, response_body=None, error="timed out"))
    # When it is read
    body = offline_api.get(f"/v1/logs/{attempt_id(1)}", headers=acme.viewer).json()
    # Then the response is empty and the error says why
    assert body["response"] == {"status": None, "body": None}
    assert body["error"] == "timed out"


def test_other_accounts_logs_are_not_found(
    offline_api: TestClient, acme: Keys, globex: Keys, write: Any
) -> None:
    # Given an attempt of acme's webhook
    write(attempt(1))
    # When globex asks for the webhook's logs, the entry, and a missing entry
    listed = offline_api.get(f"/v1/webhooks/{ACME_HOOK}/logs", headers=globex.admin)
    entry = offline_api.get(f"/v1/logs/{attempt_id(1)}", headers=globex.admin)
    missing = offline_api.get(f"/v1/logs/{attempt_id(2)}", headers=acme.admin)
    # Then all are 404 in the error shape
    assert [listed.status_code, entry.status_code, missing.status_code] == [404, 404, 404]
    assert entry.json()["error"]["field"] is None
    assert "not found" in entry.json()["error"]["message"]


def test_logs_need_a_key(offline_api: TestClient, write: Any) -> None:
    # Given no API key
    # When the logs are read
    response = offline_api.get(f"/v1/webhooks/{ACME_HOOK}/logs")
    # Then it is a 401
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("missing API key")


def test_counts_ignore_status_and_cursor_but_follow_other_filters(
    offline_api: TestClient, acme: Keys, write: Any
) -> None:
    # Given two successes and three failures of two types, and another webhook's attempt
    write(
        attempt(0),
        attempt(1, status="failed", outcome="retrying"),
        attempt(2, event_type="route.started"),
        attempt(3, status="failed", outcome="dead_lettered"),
        attempt(4, status="failed", outcome="failed", trigger="test"),
        attempt(9, GLOBEX_HOOK),
    )
    # When the errors are read one at a time, then the next page
    first = logs(offline_api, acme, status="failed", limit=1)
    second = logs(offline_api, acme, status="failed", limit=1, cursor=first["next_cursor"])
    # Then every page counts all the webhook's attempts by status
    assert first["counts"] == second["counts"] == {"succeeded": 2, "failed": 3}
    assert [item["id"] for item in first["items"] + second["items"]] == [
        attempt_id(4),
        attempt_id(3),
    ]
    # And the other filters narrow the counts too
    assert logs(offline_api, acme, event_type="route.started")["counts"] == {
        "succeeded": 1,
        "failed": 0,
    }
    assert logs(offline_api, acme, since="2026-11-27T18:02:00Z")["counts"] == {
        "succeeded": 1,
        "failed": 2,
    }


def test_counts_of_a_webhook_without_attempts(
    offline_api: TestClient, acme: Keys, write: Any
) -> None:
    # Given a webhook nothing was sent to
    # When its logs are read
    body = logs(offline_api, acme)
    # Then the page is empty and both counts are zero
    assert body == {"items": [], "next_cursor": None, "counts": {"succeeded": 0, "failed": 0}}


def test_detail_of_a_test_send_has_everything_to_debug_it(
    offline_api: TestClient, acme: Keys, write: Any
) -> None:
    # Given a failed retrying attempt with custom-header auth, as the worker stores it
    retry_at = T0 + timedelta(minutes=1, seconds=30)
    headers = {
        "content-type": "application/json",
        "webhook-id": "evt_1",
        "webhook-signature": "v1,abc=",
        "x-api-key": "[redacted]",
    }
    write(
        attempt(
            1,
            status="failed",
            outcome="retrying",
            attempt=2,
            response_status=502,
            response_body="bad gateway",
            error="HTTP 502",
            duration_ms=321,
            request_headers=headers,
            next_retry_at=retry_at,
        )
    )
    # When it is read
    body = offline_api.get(f"/v1/logs/{attempt_id(1)}", headers=acme.viewer).json()
    # Then it shows the redacted headers, body, response, error, duration, attempt, next retry
    assert body["request"]["headers"] == headers
    assert body["request"]["body"] == '{"type": "delivery.done"}'
    assert body["response"] == {"status": 502, "body": "bad gateway"}
    assert (body["error"], body["duration_ms"], body["attempt"]) == ("HTTP 502", 321, 2)
    assert body["next_retry_at"] == "2026-11-27T18:01:30Z"


def test_an_unknown_stored_trigger_reads_as_event(
    offline_api: TestClient, acme: Keys, write: Any
) -> None:
    # Given an attempt row whose trigger is not one the router sets
    write(attempt(1, trigger="bogus"))
    # When it is listed
    [item] = logs(offline_api, acme)["items"]
    # Then it reads as an upstream event rather than failing the page
    assert item["trigger"] == "event"
