"""Oversized and malformed events on the bus: quarantined with their reason, the rest delivered.

tests/consumers/test_worker.py already shows bad messages land in ``events.invalid`` while
a valid one is delivered; this checks what an operator reads there: the reason and detail
of each, the routing key it came under, the webhook whose queue it came through, its body
unchanged, and the ``reason`` counted by the worker's hooks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from sqlalchemy import Engine

from consumers.hooks import WorkerHooks
from router.publisher import Publisher, new_event
from router.settings import Settings
from router.topology import INVALID_QUEUE
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    make_webhook,
    publish_raw,
    queue_depth,
    wait_until,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ROUTING_KEY = "acme.paris.delivery.done"


class CountingHooks(WorkerHooks):
    """Counts quarantined messages by reason, as the metric does."""

    def __init__(self) -> None:
        self.invalid: Counter[str] = Counter()

    def on_invalid(self, reason: str) -> None:
        self.invalid[reason] += 1


@pytest.fixture
def hooks() -> CountingHooks:
    return CountingHooks()


@pytest.fixture
def worker(settings: Settings, engine: Engine, hooks: CountingHooks) -> Iterator[WorkerThread]:
    declare_shared(settings)
    thread = WorkerThread(settings, engine, hooks).start()
    yield thread
    thread.stop()


def quarantined(amqp_url: str) -> list[tuple[dict[str, Any], bytes]]:
    """Every message in events.invalid: its headers and body (taken off the queue)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    found: list[tuple[dict[str, Any], bytes]] = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(INVALID_QUEUE, auto_ack=True)
            if method is None:
                return found
            headers = {
                k: v.decode() if isinstance(v, bytes) else v
                for k, v in (properties.headers or {}).items()
            }
            found.append((headers, body))
    finally:
        connection.close()


def test_oversized_and_malformed_events_are_quarantined_with_their_reason(
    settings: Settings,
    engine: Engine,
    worker: WorkerThread,
    receiver: Receiver,
    hooks: CountingHooks,
) -> None:
    # Given a webhook on acme's delivery.done events in paris
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"], ["paris"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")
    amqp_url = settings.amqp_url.get_secret_value()

    # When an oversized event (valid JSON, one byte over the limit), a malformed one and a
    # valid one are published side by side under the webhook's routing key
    envelope = (
        b'{"id": "evt_big", "type": "delivery.done", "occurred_at": "2026-11-27T18:00:00Z",'
        b' "account_id": "acme", "site_id": "paris", "data": {"pad": "'
    )
    closing = b'"}}'
    padding = settings.max_event_bytes + 1 - len(envelope) - len(closing)
    oversized = envelope + b"x" * padding + closing
    assert len(oversized) == settings.max_event_bytes + 1
    malformed = b'{"id": "evt_broken", "type": '
    publish_raw(amqp_url, settings.exchange, ROUTING_KEY, oversized)
    publish_raw(amqp_url, settings.exchange, ROUTING_KEY, malformed)
    event = new_event("delivery.done", "acme", "paris", {"order": {"id": "o1"}})
    with Publisher(amqp_url, settings.exchange) as publisher:
        publisher.publish(event)

    # Then the valid event is delivered and logged, once
    [delivered] = receiver.wait_for(1)
    assert delivered.headers["webhook-id"] == event.id
    wait_until(lambda: len(attempts(engine, hook.id)) == 1, 5, "one attempt row")
    # and the two others wait in events.invalid, unchanged, each with its reason
    wait_until(lambda: queue_depth(amqp_url, INVALID_QUEUE) == 2, 10, "2 quarantined")
    by_reason = {
        headers["x-router-reason"]: (headers, body) for headers, body in quarantined(amqp_url)
    }
    assert set(by_reason) == {"too_large", "not_json"}
    for reason, original in (("too_large", oversized), ("not_json", malformed)):
        headers, body = by_reason[reason]
        assert body == original
        assert headers["x-router-detail"]
        assert headers["x-router-routing-key"] == ROUTING_KEY
        assert headers["x-router-webhook-id"] == hook.id
    # and the worker counted each reason once
    assert hooks.invalid == Counter({"too_large": 1, "not_json": 1})
    # and nothing but the valid event reached the receiver
    assert len(receiver.requests) == 1
