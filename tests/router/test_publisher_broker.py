"""The publisher against the real broker: confirms, pipelining, unroutable events."""

from __future__ import annotations

import asyncio

import pika
import pytest

from router.errors import PublishRejected
from router.publisher import AsyncPublisher, Publisher, new_event
from router.settings import Settings
from tests.helpers import declare_shared, queue_depth

KEY = "acme.paris.delivery.done"


@pytest.fixture
def bound_queue(settings: Settings) -> str:
    """A queue bound to the events exchange under acme/paris/delivery.done."""
    declare_shared(settings)
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    channel = connection.channel()
    channel.queue_declare("probe", durable=True)
    channel.queue_bind("probe", settings.exchange, KEY)
    connection.close()
    return "probe"


def _events(count: int):
    return [new_event("delivery.done", "acme", "paris", {"n": n}) for n in range(count)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_publish_many_pipelines_confirms_and_loses_nothing(
    settings: Settings, bound_queue: str
) -> None:
    # Given 2,000 events
    events = _events(2000)
    # When they are published with pipelined confirms
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        confirmed = publisher.publish_many(events)
    # Then every one was confirmed and sits in the bound queue, ids kept
    assert confirmed == 2000
    assert queue_depth(settings.amqp_url.get_secret_value(), bound_queue) == 2000
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    method, props, _body = connection.channel().basic_get(bound_queue, auto_ack=False)
    connection.close()
    assert method is not None
    assert props.message_id == events[0].id
    assert props.delivery_mode == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_async_publisher_confirms_concurrent_publishes(
    settings: Settings, bound_queue: str
) -> None:
    # Given an asyncio service publishing 300 events concurrently
    async def run() -> None:
        async with AsyncPublisher(settings.amqp_url.get_secret_value()) as publisher:
            await asyncio.gather(*(publisher.publish(event) for event in _events(300)))

    # When they are all confirmed
    asyncio.run(run())
    # Then they are all in the queue
    assert queue_depth(settings.amqp_url.get_secret_value(), bound_queue) == 300


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unsubscribed_events_are_kept_by_the_alternate_exchange(
    settings: Settings, bound_queue: str
) -> None:
    # Given an event no webhook subscribed to
    event = new_event("route.ended", "acme", "lyon", {})
    # When it is published
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        publisher.publish(event)
    # Then it is not dropped: it waits in events.unrouted for a worker to count it
    assert queue_depth(settings.amqp_url.get_secret_value(), "events.unrouted") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_publishing_to_a_missing_exchange_is_an_error(settings: Settings) -> None:
    # Given no topology at all on the vhost
    # When an event is published / Then the publisher says so instead of losing it
    with (
        Publisher(settings.amqp_url.get_secret_value(), "no-such-exchange") as publisher,
        pytest.raises(PublishRejected),
    ):
        publisher.publish(new_event("delivery.done", "acme", "paris", {}))
