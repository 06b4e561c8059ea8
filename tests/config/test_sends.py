"""Test sends on the real broker and databases, to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook as StandardWebhook

from router.broker import BrokerAdmin
from router.settings import Settings
from router.topology import dead_letter_queue, webhook_queue
from tests.config.conftest import Bus, Keys, create, make_client
from tests.helpers import attempts
from tests.receiver import Receiver

BEARER = {"mode": "bearer", "token": "t0k3n-secret"}


def send_test(api: TestClient, webhook_id: str, headers: dict[str, str], **kwargs: Any) -> Any:
    """POST a test send to the webhook."""
    return api.post(f"/v1/webhooks/{webhook_id}/test", headers=headers, **kwargs)


def test_sends_a_signed_sample_and_returns_the_attempt(
    api: TestClient, acme: Keys, receiver: Receiver
) -> None:
    # Given a webhook with bearer auth on two event types at paris
    created = create(
        api,
        acme,
        url=receiver.url + "/hook",
        auth=BEARER,
        events=["delivery.done", "route.started"],
        sites=["paris", "lyon"],
    )
    # When an admin sends it a test event without a body
    response = send_test(api, created["id"], acme.admin)
    # Then the receiver got the webhook's first type at its first site, signed and marked
    assert response.status_code == 201, response.text
    [got] = receiver.wait_for(1)
    payload = StandardWebhook(created["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "delivery.done"
    assert payload["id"].startswith("evt_test_")
    assert payload["id"] == got.headers["webhook-id"]
    assert (payload["account_id"], payload["site_id"]) == ("acme", "paris")
    assert payload["data"]["test"] is True
    # And the order is summarised as for any delivery without include_order
    assert payload["data"]["order"]["status"] == "done"
    assert "customer" not in payload["data"]["order"]
    assert got.headers["authorization"] == "Bearer t0k3n-secret"
    # And the answer is the attempt as logged, credentials redacted
    detail = response.json()
    assert response.headers["location"] == f"/v1/logs/{detail['id']}"
    assert detail["webhook_id"] == created["id"]
    assert detail["event_id"] == payload["id"]
    assert (detail["trigger"], detail["attempt"]) == ("test", 1)
    assert (detail["status"], detail["outcome"]) == ("succeeded", "delivered")
    assert detail["error"] is None
    assert detail["next_retry_at"] is None
    assert detail["response"] == {"status": 200, "body": '{"ok": true}'}
    assert detail["request"]["url"] == receiver.url + "/hook"
    assert detail["request"]["body"] == got.body.decode()
    assert detail["request"]["headers"]["authorization"] == "[redacted]"
    assert detail["request"]["headers"]["webhook-signature"] == got.headers["webhook-signature"]
    assert "t0k3n-secret" not in response.text
    # And reading the log entry back gives the same attempt
    stored = api.get(f"/v1/logs/{detail['id']}", headers=acme.viewer)
    assert stored.json() == detail


def test_sends_the_chosen_type_to_a_disabled_webhook(
    api: TestClient, acme: Keys, receiver: Receiver
) -> None:
    # Given a disabled webhook on every site that wants whole orders
    created = create(api, acme, url=receiver.url, enabled=False, sites=[], include_order=True)
    # When an admin sends it a route.started test event
    response = send_test(api, created["id"], acme.admin, json={"event_type": "route.started"})
    # Then the receiver gets a route.started sample at the placeholder site
    assert response.status_code == 201, response.text
    [got] = receiver.wait_for(1)
    payload = StandardWebhook(created["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "route.started"
    assert payload["site_id"] == "test-site"
    assert payload["data"]["route"]["id"]
    assert response.json()["status"] == "succeeded"
    # And the webhook stays disabled
    assert api.get(f"/v1/webhooks/{created['id']}", headers=acme.viewer).json()["enabled"] is False


def test_whole_order_when_include_order(api: TestClient, acme: Keys, receiver: Receiver) -> None:
    # Given a webhook that wants whole orders
    created = create(api, acme, url=receiver.url, include_order=True)
    # When it is sent a test event
    send_test(api, created["id"], acme.admin, json={"event_type": None})
    # Then the sample order arrives whole
    [got] = receiver.wait_for(1)
    assert got.json()["data"]["order"]["customer"]["name"]


def test_a_failed_test_is_logged_and_never_retried(
    api: TestClient,
    acme: Keys,
    receiver: Receiver,
    engine: Engine,
    bus: Bus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a webhook whose endpoint answers 500
    receiver.status = 500
    created = create(api, acme, url=receiver.url)
    # When an admin sends it a test event
    with caplog.at_level(logging.WARNING, logger="consumers.attempt_logging"):
        response = send_test(api, created["id"], acme.admin)
    # Then the failure is a WARNING record like a worker's, marked as a test
    [record] = [r for r in caplog.records if r.name == "consumers.attempt_logging"]
    assert (record.levelname, record.getMessage()) == ("WARNING", "delivery failed")
    assert (record.trigger, record.webhook_id, record.error) == ("test", created["id"], "HTTP 500")
    # Then the attempt comes back failed, with the status, error and body excerpt
    assert response.status_code == 201, response.text
    detail = response.json()
    assert (detail["status"], detail["outcome"]) == ("failed", "failed")
    assert detail["error"] == "HTTP 500"
    assert detail["response"] == {"status": 500, "body": '{"error": "nope"}'}
    assert detail["next_retry_at"] is None
    # And the row is stored as a test attempt
    [row] = attempts(engine, created["id"])
    assert (row.trigger, row.attempt, row.outcome) == ("test", 1, "failed")
    # And nothing is retried, parked or paused, well past the retry schedule
    time.sleep(1.0)
    assert len(receiver.requests) == 1
    assert bus.count(webhook_queue(created["id"])) == 0
    assert bus.count(dead_letter_queue(created["id"])) == 0
    assert api.get(f"/v1/webhooks/{created['id']}", headers=acme.viewer).json()["circuit"] == (
        "closed"
    )


def test_an_unreachable_endpoint_is_a_failed_attempt(api: TestClient, acme: Keys) -> None:
    # Given a webhook on a port where nothing listens
    created = create(api, acme, url="http://127.0.0.1:9/hooks")
    # When it is sent a test event
    response = send_test(api, created["id"], acme.admin)
    # Then the attempt failed with no response and says why
    assert response.status_code == 201, response.text
    detail = response.json()
    assert detail["status"] == "failed"
    assert detail["response"] == {"status": None, "body": None}
    assert detail["error"]


def test_private_targets_are_refused_at_delivery_time(
    api: TestClient,
    acme: Keys,
    receiver: Receiver,
    settings: Settings,
    engine: Engine,
    broker_admin: BrokerAdmin,
) -> None:
    # Given a webhook on 127.0.0.1, saved while private targets were allowed
    created = create(api, acme, url=receiver.url)
    # When it is tested by an API that no longer allows them
    strict = settings.model_copy(update={"allow_private_targets": False})
    with make_client(strict, engine, broker_admin) as strict_api:
        response = send_test(strict_api, created["id"], acme.admin)
    # Then nothing is sent and the failed attempt says why
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "failed"
    assert "loopback" in response.json()["error"]
    assert receiver.requests == []


def test_test_sends_need_an_admin_key_of_the_account(
    api: TestClient, acme: Keys, globex: Keys, receiver: Receiver
) -> None:
    # Given acme's webhook
    webhook_id = create(api, acme, url=receiver.url)["id"]
    # When it is tested without a key, by a viewer, by globex's admin, and for a missing id
    anonymous = send_test(api, webhook_id, {})
    viewer = send_test(api, webhook_id, acme.viewer)
    other = send_test(api, webhook_id, globex.admin)
    missing = send_test(api, "wh_missing", acme.admin)
    # Then they are 401, 403 and 404 (twice), and nothing was sent
    assert [r.status_code for r in (anonymous, viewer, other, missing)] == [401, 403, 404, 404]
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": "delivery.exploded"}, "event_type"),
        ({"event_type": 3}, "event_type"),
        ({"type": "delivery.done"}, "type"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    api: TestClient, acme: Keys, receiver: Receiver, body: dict[str, Any], field: str
) -> None:
    # Given a webhook
    webhook_id = create(api, acme, url=receiver.url)["id"]
    # When it is tested with a bad body
    response = send_test(api, webhook_id, acme.admin, json=body)
    # Then it is a 422 naming the field, and nothing was sent
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert receiver.requests == []
