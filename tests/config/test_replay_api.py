"""Replays on the real broker and databases: dead letters back into delivery, logged events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from router.events import parse_event
from router.models import DeliveryAttempt, new_id
from router.settings import Settings
from router.topology import DEAD_EXCHANGE, dead_letter_queue, webhook_queue
from tests.config.conftest import Keys, create

EVENT_DATA = {"order": {"id": "ord_1", "reference": "R-1", "status": "done"}}


@dataclass(frozen=True)
class Received:
    """One message taken off a queue."""

    body: bytes
    properties: pika.BasicProperties


class Broker:
    """Parks dead letters and takes messages off queues, over one pika connection."""

    def __init__(self, amqp_url: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()

    def park(self, webhook_id: str, n: int) -> None:
        """Dead-letter event ``evt_dead_<n>`` as the worker does after its last attempt."""
        dead = dead_letter_queue(webhook_id)
        headers = {
            "x-router-attempt": 4,
            "x-router-trigger": "event",
            "x-router-last-status": 503,
            "x-router-last-error": "HTTP 503",
            "x-router-last-attempt-at": "2026-11-27T18:00:00+00:00",
        }
        self._channel.basic_publish(
            DEAD_EXCHANGE,
            dead,
            orjson.dumps({"id": f"evt_dead_{n}"}),
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=f"evt_dead_{n}",
                headers=headers,
            ),
        )

    def take_all(self, queue: str) -> list[Received]:
        """Every message ready in ``queue``, oldest first (acked)."""
        received: list[Received] = []
        while True:
            method, properties, body = self._channel.basic_get(queue, auto_ack=True)
            if method is None:
                return received
            received.append(Received(body, properties))

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


@pytest.fixture
def broker(settings: Settings, api: TestClient) -> Iterator[Broker]:
    """A pika client on the test vhost (after the API declared the shared topology)."""
    client = Broker(settings.amqp_url.get_secret_value())
    yield client
    client.close()


def create_webhook(api: TestClient, keys: Keys) -> str:
    """Create a webhook as the account's admin; return its id."""
    webhook_id: str = create(api, keys)["id"]
    return webhook_id


def replay_dead(api: TestClient, webhook_id: str, headers: dict[str, str], **kwargs: Any) -> Any:
    """POST the dead-letter replay of a webhook."""
    return api.post(f"/v1/webhooks/{webhook_id}/dead-letters/replay", headers=headers, **kwargs)


def test_dead_letter_replay_moves_count_then_the_rest(
    api: TestClient, acme: Keys, broker: Broker
) -> None:
    # Given five dead letters of a webhook
    webhook_id = create_webhook(api, acme)
    for n in range(5):
        broker.park(webhook_id, n)
    # When an admin replays two of them
    first = replay_dead(api, webhook_id, acme.admin, json={"count": 2})
    # Then the two oldest are back in the webhook's queue and three remain
    assert first.status_code == 200, first.text
    assert first.json() == {"replayed": 2, "remaining": 3}
    moved = broker.take_all(webhook_queue(webhook_id))
    assert [m.properties.message_id for m in moved] == ["evt_dead_0", "evt_dead_1"]
    # When the rest are replayed without a body
    rest = replay_dead(api, webhook_id, acme.admin)
    # Then all three move and the dead-letter queue is empty
    assert rest.json() == {"replayed": 3, "remaining": 0}
    moved += broker.take_all(webhook_queue(webhook_id))
    assert [m.properties.message_id for m in moved] == [f"evt_dead_{n}" for n in range(5)]
    assert broker.take_all(dead_letter_queue(webhook_id)) == []


def test_dead_letter_replay_starts_again_at_attempt_one(
    api: TestClient, acme: Keys, broker: Broker
) -> None:
    # Given a dead letter that failed its fourth attempt with a 503
    webhook_id = create_webhook(api, acme)
    broker.park(webhook_id, 7)
    # When it is replayed (count null means all)
    response = replay_dead(api, webhook_id, acme.admin, json={"count": None})
    # Then the copy is attempt 1, triggered manually, with its history and properties kept
    assert response.json() == {"replayed": 1, "remaining": 0}
    [message] = broker.take_all(webhook_queue(webhook_id))
    assert message.body == orjson.dumps({"id": "evt_dead_7"})
    assert message.properties.headers == {
        "x-router-attempt": 1,
        "x-router-trigger": "manual",
        "x-router-last-status": 503,
        "x-router-last-error": "HTTP 503",
        "x-router-last-attempt-at": "2026-11-27T18:00:00+00:00",
    }
    assert message.properties.message_id == "evt_dead_7"
    assert message.properties.content_type == "application/json"
    assert message.properties.delivery_mode == 2


def test_dead_letter_replay_of_an_empty_queue(api: TestClient, acme: Keys) -> None:
    # Given a webhook with nothing parked
    webhook_id = create_webhook(api, acme)
    # When its dead letters are replayed
    response = replay_dead(api, webhook_id, acme.admin, json={"count": 10})
    # Then nothing moves
    assert response.status_code == 200
    assert response.json() == {"replayed": 0, "remaining": 0}


def test_dead_letter_replay_is_for_admins_of_the_account(
    api: TestClient, acme: Keys, globex: Keys, broker: Broker
) -> None:
    # Given a dead letter of acme's webhook
    webhook_id = create_webhook(api, acme)
    broker.park(webhook_id, 1)
    # When acme's viewer and globex's admin try to replay it
    viewer = replay_dead(api, webhook_id, acme.viewer)
    other = replay_dead(api, webhook_id, globex.admin)
    # Then it is 403 and 404, and the dead letter stays parked
    assert viewer.status_code == 403
    assert other.status_code == 404
    assert "not found" in other.json()["error"]["message"]
    assert len(broker.take_all(dead_letter_queue(webhook_id))) == 1


@pytest.mark.parametrize(
    ("body", "field"), [({"count": 0}, "count"), ({"count": "all"}, "count"), ({"n": 1}, "n")]
)
def test_dead_letter_replay_rejects_a_bad_count(
    offline_api: TestClient, acme: Keys, body: dict[str, Any], field: str
) -> None:
    # Given a body with a bad count
    # When it is posted
    response = replay_dead(offline_api, "wh_0000000000000000deadbeef", acme.admin, json=body)
    # Then it is a 422 naming the field
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def receiver_body(event_id: str, account_id: str = "acme") -> str:
    """The body a receiver got for an event, as the worker logs it."""
    return orjson.dumps(
        {
            "type": "delivery.done",
            "timestamp": "2026-11-27T18:00:00Z",
            "id": event_id,
            "account_id": account_id,
            "site_id": "paris",
            "data": EVENT_DATA,
        }
    ).decode()


def log_attempt(engine: Engine, webhook_id: str, request_body: str) -> str:
    """Insert a failed attempt of ``webhook_id`` (account acme), as the worker does."""
    log_id = new_id("att")
    row = {
        "id": log_id,
        "webhook_id": webhook_id,
        "account_id": "acme",
        "event_id": "evt_logged",
        "event_type": "delivery.done",
        "attempt": 3,
        "trigger": "event",
        "status": "failed",
        "outcome": "dead_lettered",
        "response_status": 500,
        "response_body": "boom",
        "error": "HTTP 500",
        "duration_ms": 12,
        "request_url": "http://127.0.0.1:9/hooks",
        "request_headers": {"content-type": "application/json"},
        "request_body": request_body,
    }
    with engine.begin() as connection:
        connection.execute(insert(DeliveryAttempt), [row])
    return log_id


def test_log_replay_queues_the_event_again(
    api: TestClient, acme: Keys, engine: Engine, broker: Broker, settings: Settings
) -> None:
    # Given a logged attempt of a webhook
    webhook_id = create_webhook(api, acme)
    log_id = log_attempt(engine, webhook_id, receiver_body("evt_logged"))
    # When an admin replays it
    response = api.post(f"/v1/logs/{log_id}/replay", headers=acme.admin)
    # Then it is queued for that webhook
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "queued",
        "event_id": "evt_logged",
        "webhook_id": webhook_id,
    }
    # And the webhook's queue holds a valid envelope of the same event, as manual attempt 1
    [message] = broker.take_all(webhook_queue(webhook_id))
    event = parse_event(message.body, settings.max_event_bytes)
    assert (event.id, event.type, event.site_id) == ("evt_logged", "delivery.done", "paris")
    assert event.occurred_at == "2026-11-27T18:00:00Z"
    assert event.data == EVENT_DATA
    assert message.properties.headers == {"x-router-attempt": 1, "x-router-trigger": "manual"}
    assert message.properties.message_id == "evt_logged"
    assert message.properties.content_type == "application/json"
    assert message.properties.delivery_mode == 2


def test_log_replay_of_a_disabled_webhook_conflicts(
    api: TestClient, acme: Keys, engine: Engine, broker: Broker
) -> None:
    # Given a logged attempt of a webhook that was then disabled
    webhook_id = create_webhook(api, acme)
    log_id = log_attempt(engine, webhook_id, receiver_body("evt_logged"))
    patch = api.patch(f"/v1/webhooks/{webhook_id}", json={"enabled": False}, headers=acme.admin)
    assert patch.status_code == 200
    # When it is replayed
    response = api.post(f"/v1/logs/{log_id}/replay", headers=acme.admin)
    # Then it is a 409 saying why, and nothing is queued
    assert response.status_code == 409
    assert "disabled" in response.json()["error"]["message"]
    assert broker.take_all(webhook_queue(webhook_id)) == []


def test_log_replay_without_a_payload_conflicts(
    api: TestClient, acme: Keys, engine: Engine, broker: Broker
) -> None:
    # Given logged attempts whose bodies are not whole receiver payloads
    webhook_id = create_webhook(api, acme)
    partial = log_attempt(engine, webhook_id, '{"type": "delivery.done"}')
    garbage = log_attempt(engine, webhook_id, "not json")
    foreign = log_attempt(engine, webhook_id, receiver_body("evt_x", account_id="globex"))
    # When each is replayed
    responses = [
        api.post(f"/v1/logs/{log_id}/replay", headers=acme.admin)
        for log_id in (partial, garbage, foreign)
    ]
    # Then each is a 409 saying what is wrong, and nothing is queued
    assert [r.status_code for r in responses] == [409, 409, 409]
    messages = [r.json()["error"]["message"] for r in responses]
    assert "missing" in messages[0]
    assert "not a JSON object" in messages[1]
    assert "another account" in messages[2]
    assert broker.take_all(webhook_queue(webhook_id)) == []


def test_log_replay_is_for_admins_of_the_account(
    api: TestClient, acme: Keys, globex: Keys, engine: Engine, broker: Broker
) -> None:
    # Given a logged attempt of acme's webhook
    webhook_id = create_webhook(api, acme)
    log_id = log_attempt(engine, webhook_id, receiver_body("evt_logged"))
    # When acme's viewer, globex's admin, and anyone for a missing entry replay
    viewer = api.post(f"/v1/logs/{log_id}/replay", headers=acme.viewer)
    other = api.post(f"/v1/logs/{log_id}/replay", headers=globex.admin)
    missing = api.post("/v1/logs/att_0000000000000000deadbeef/replay", headers=acme.admin)
    # Then they are 403, 404 and 404, and nothing is queued
    assert [viewer.status_code, other.status_code, missing.status_code] == [403, 404, 404]
    assert other.json()["error"] == missing.json()["error"] | {
        "message": f"log entry {log_id!r} not found"
    }
    assert broker.take_all(webhook_queue(webhook_id)) == []


def test_log_replay_after_the_webhook_is_deleted_is_not_found(
    api: TestClient, acme: Keys, engine: Engine
) -> None:
    # Given a logged attempt of a webhook that was then deleted
    webhook_id = create_webhook(api, acme)
    log_id = log_attempt(engine, webhook_id, receiver_body("evt_logged"))
    assert api.delete(f"/v1/webhooks/{webhook_id}", headers=acme.admin).status_code == 204
    # When it is replayed
    response = api.post(f"/v1/logs/{log_id}/replay", headers=acme.admin)
    # Then it is a 404 naming the webhook
    assert response.status_code == 404
    assert webhook_id in response.json()["error"]["message"]
