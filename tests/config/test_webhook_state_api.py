"""A webhook's delivery state through the API: attempt limit, circuit, backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from router.broker import BrokerAdmin
from router.models import Webhook
from router.settings import Settings
from tests.config.conftest import (
    DEAD_BROKER_URL,
    Bus,
    Keys,
    create,
    make_client,
    webhook_body,
)


def test_new_webhook_shows_delivery_state(api: TestClient, acme: Keys) -> None:
    # Given a webhook created without a max_attempts
    # When it is created and listed
    created = create(api, acme)
    [listed] = api.get("/v1/webhooks", headers=acme.viewer).json()["items"]
    # Then it follows the schedule, its circuit is closed and nothing disabled it
    for body in (created, listed):
        assert body["max_attempts"] is None
        assert body["circuit"] == "closed"
        assert body["circuit_retry_at"] is None
        assert body["disabled_reason"] is None
    # And only the single read shows a backlog
    assert "backlog" not in created
    assert "backlog" not in listed


def test_max_attempts_round_trip(api: TestClient, acme: Keys, settings: Settings) -> None:
    # Given a schedule of two retries (three attempts at most)
    assert settings.max_attempts == 3
    # When a webhook is created with 2, patched to 3, then patched to null
    created = create(api, acme, max_attempts=2)
    url = f"/v1/webhooks/{created['id']}"
    fetched = api.get(url, headers=acme.viewer).json()
    raised = api.patch(url, json={"max_attempts": 3}, headers=acme.admin).json()
    renamed = api.patch(url, json={"name": "x"}, headers=acme.admin).json()
    reset = api.patch(url, json={"max_attempts": None}, headers=acme.admin).json()
    # Then each answer shows the limit in force; omitting it leaves it alone
    assert [created["max_attempts"], fetched["max_attempts"]] == [2, 2]
    assert [raised["max_attempts"], renamed["max_attempts"]] == [3, 3]
    assert reset["max_attempts"] is None
    assert api.get(url, headers=acme.viewer).json()["max_attempts"] is None


@pytest.mark.parametrize("value", [0, 4, "three"])
def test_max_attempts_out_of_range_is_422(api: TestClient, acme: Keys, value: Any) -> None:
    # Given a webhook, and a schedule allowing three attempts at most
    webhook_id = create(api, acme)["id"]
    # When a webhook is created, or this one patched, with an invalid max_attempts
    created = api.post("/v1/webhooks", json=webhook_body(max_attempts=value), headers=acme.admin)
    patched = api.patch(
        f"/v1/webhooks/{webhook_id}", json={"max_attempts": value}, headers=acme.admin
    )
    # Then both are 422 naming the field, and nothing changed
    for response in (created, patched):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "max_attempts"
    assert len(api.get("/v1/webhooks", headers=acme.viewer).json()["items"]) == 1
    assert api.get(f"/v1/webhooks/{webhook_id}", headers=acme.viewer).json()["max_attempts"] is None


def test_enabling_clears_the_reason_and_closes_the_circuit(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook the worker disabled (410 Gone) while its circuit was open
    webhook_id = create(api, acme)["id"]
    retry_at = datetime(2026, 11, 27, 18, 5, tzinfo=UTC)
    with sessions() as session:
        session.execute(
            update(Webhook)
            .where(Webhook.id == webhook_id)
            .values(
                enabled=False,
                disabled_reason="endpoint answered 410 Gone",
                circuit_state="open",
                circuit_opened_at=retry_at - timedelta(minutes=5),
                circuit_retry_at=retry_at,
                circuit_cooldown_s=300.0,
            )
        )
        session.commit()
    url = f"/v1/webhooks/{webhook_id}"
    before = api.get(url, headers=acme.viewer).json()
    # When an admin enables it
    response = api.patch(url, json={"enabled": True}, headers=acme.admin)
    # Then the API showed why it was off, and now shows it on with a closed circuit
    assert (before["enabled"], before["disabled_reason"]) == (False, "endpoint answered 410 Gone")
    assert (before["circuit"], before["circuit_retry_at"]) == ("open", "2026-11-27T18:05:00Z")
    assert response.status_code == 200, response.text
    after = response.json()
    assert (after["enabled"], after["disabled_reason"]) == (True, None)
    assert (after["circuit"], after["circuit_retry_at"]) == ("closed", None)
    # And the stored circuit is reset
    with sessions() as session:
        row = session.get(Webhook, webhook_id)
    assert row is not None
    assert (row.circuit_state, row.circuit_opened_at, row.circuit_cooldown_s) == ("closed", None, 0)


def test_other_changes_keep_the_circuit(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook whose circuit is open
    webhook_id = create(api, acme)["id"]
    with sessions() as session:
        session.execute(
            update(Webhook).where(Webhook.id == webhook_id).values(circuit_state="open")
        )
        session.commit()
    # When something other than enabled is patched
    response = api.patch(f"/v1/webhooks/{webhook_id}", json={"name": "x"}, headers=acme.admin)
    # Then the circuit stays open
    assert response.json()["circuit"] == "open"


def test_single_read_shows_the_backlog(
    api: TestClient, acme: Keys, bus: Bus, settings: Settings
) -> None:
    # Given a webhook with two events waiting and one dead letter
    webhook_id = create(api, acme)["id"]
    bus.publish("acme.paris.delivery.done")
    bus.publish("acme.paris.delivery.done")
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("router.dead", f"webhook.{webhook_id}.dead", b"{}")
    connection.close()
    # When it is read
    response = api.get(f"/v1/webhooks/{webhook_id}", headers=acme.viewer)
    # Then the backlog counts both queues
    assert response.status_code == 200
    assert response.json()["backlog"] == {"pending": 2, "dead_letters": 1}


def test_missing_queues_count_as_empty(
    api: TestClient, acme: Keys, bus: Bus, settings: Settings
) -> None:
    # Given a webhook whose queues were deleted behind the API's back
    webhook_id = create(api, acme)["id"]
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    channel = connection.channel()
    channel.queue_delete(f"webhook.{webhook_id}")
    channel.queue_delete(f"webhook.{webhook_id}.dead")
    connection.close()
    # When it is read
    response = api.get(f"/v1/webhooks/{webhook_id}", headers=acme.viewer)
    # Then the backlog is empty rather than an error
    assert response.status_code == 200, response.text
    assert response.json()["backlog"] == {"pending": 0, "dead_letters": 0}


def test_backlog_is_null_when_the_broker_is_down(
    api: TestClient, settings: Settings, engine: Engine, acme: Keys
) -> None:
    # Given a webhook, and an API whose broker is unreachable
    webhook_id = create(api, acme)["id"]
    with make_client(settings, engine, BrokerAdmin(DEAD_BROKER_URL)) as down:
        # When the webhook is read
        response = down.get(f"/v1/webhooks/{webhook_id}", headers=acme.viewer)
    # Then it is shown, without a backlog
    assert response.status_code == 200, response.text
    assert response.json()["id"] == webhook_id
    assert response.json()["backlog"] is None
