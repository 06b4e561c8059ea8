"""The library upstream services publish events with: persistent, confirmed, validated.

    with Publisher("amqp://guest:guest@localhost:5672/%2F") as publisher:
        publisher.publish(new_event("delivery.done", "acme", "paris", {"order": {...}}))
        publisher.publish_many(events)  # pipelined confirms: thousands per second

    async with AsyncPublisher(url) as publisher:  # for asyncio services
        await asyncio.gather(*(publisher.publish(e) for e in events))

An event that no webhook subscribed to is not dropped by the broker: the ``events``
exchange hands it to its alternate exchange, where workers count it (and quarantine it
if it is malformed).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pika
import pika.exceptions

from router.amqp import AmqpChannel, AmqpConnection
from router.broker import connection_parameters
from router.errors import BrokerUnavailable, PublishRejected
from router.events import DEFAULT_MAX_EVENT_BYTES, Event, parse_event

_PERSISTENT = 2


def new_event_id() -> str:
    """A fresh event id: ``evt_`` and 22 random URL-safe characters."""
    return "evt_" + secrets.token_urlsafe(16)


def new_event(
    event_type: str,
    account_id: str,
    site_id: str,
    data: dict[str, Any],
    event_id: str | None = None,
    occurred_at: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Event:
    """Build and validate an event; raises InvalidEvent when it breaks the envelope."""
    when = (occurred_at or datetime.now(UTC)).astimezone(UTC)
    envelope = Event(
        id=event_id or new_event_id(),
        type=event_type,
        occurred_at=when.isoformat().replace("+00:00", "Z"),
        account_id=account_id,
        site_id=site_id,
        data=data,
    )
    # Round-trip through the parser so the publisher enforces exactly what workers check.
    return parse_event(envelope.to_json(), max_bytes)


def event_properties(event: Event) -> pika.BasicProperties:
    """AMQP properties of a published event: persistent JSON, message id = event id."""
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=_PERSISTENT,
        message_id=event.id,
        type=event.type,
    )


class AsyncPublisher:
    """Publishes from asyncio code with pipelined confirms on one channel.

    Each ``publish`` returns once the broker confirmed that event, but many may be in
    flight at once (up to ``max_unconfirmed``): throughput is not one round trip per event.
    """

    def __init__(
        self, amqp_url: str, exchange: str = "events", max_unconfirmed: int = 2000
    ) -> None:
        self._amqp_url = amqp_url
        self._exchange = exchange
        self._max_unconfirmed = max_unconfirmed
        self._window = asyncio.Semaphore(max_unconfirmed)
        self._connection: AmqpConnection | None = None
        self._channel: AmqpChannel | None = None

    async def connect(self) -> None:
        """Open the connection and a confirm-mode channel."""
        self._connection = await AmqpConnection.connect(self._amqp_url, "webhook-router-publisher")
        self._channel = await self._connection.channel()
        await self._channel.confirm()

    async def publish(self, event: Event) -> None:
        """Publish one event and wait for its confirm (other publishes may overlap)."""
        if self._channel is None:
            raise BrokerUnavailable("AsyncPublisher is not connected")
        async with self._window:
            await self._channel.publish(
                self._exchange, event.routing_key, event.to_json(), event_properties(event)
            )

    async def publish_many(self, events: Iterable[Event]) -> int:
        """Publish every event, confirms pipelined; returns how many were confirmed.

        A counter and one event gate the window, rather than a task per message: with
        thousands in flight, waking semaphore waiters one by one costs more than sending.
        """
        if self._channel is None:
            raise BrokerUnavailable("AsyncPublisher is not connected")
        in_flight, sent = 0, 0
        room = asyncio.Event()
        failures: list[BaseException] = []

        def confirmed(future: asyncio.Future[None]) -> None:
            nonlocal in_flight
            in_flight -= 1
            if future.exception() is not None:
                failures.append(future.exception())  # type: ignore[arg-type]
            room.set()

        for event in events:
            while in_flight >= self._max_unconfirmed:
                room.clear()
                await room.wait()
            future = self._channel.publish(
                self._exchange, event.routing_key, event.to_json(), event_properties(event)
            )
            in_flight += 1
            sent += 1
            future.add_done_callback(confirmed)
        while in_flight:
            room.clear()
            await room.wait()
        if failures:
            raise failures[0]
        return sent

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None

    async def __aenter__(self) -> AsyncPublisher:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Publisher:
    """A confirmed publisher on one connection; not thread-safe (one per thread)."""

    def __init__(self, amqp_url: str, exchange: str = "events") -> None:
        self._params = connection_parameters(amqp_url, "webhook-router-publisher")
        self._amqp_url = amqp_url
        self._exchange = exchange
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None

    def _ensure_channel(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            try:
                self._connection = pika.BlockingConnection(self._params)
                self._channel = self._connection.channel()
                self._channel.confirm_delivery()
            except pika.exceptions.AMQPError as exc:
                raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc!r}") from exc
        return self._channel

    def publish(self, event: Event) -> None:
        """Publish one event and wait for the broker's confirm."""
        channel = self._ensure_channel()
        try:
            channel.basic_publish(
                self._exchange, event.routing_key, event.to_json(), event_properties(event)
            )
        except pika.exceptions.NackError as exc:
            raise PublishRejected(f"broker refused event {event.id}") from exc
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            raise PublishRejected(f"broker closed the channel: {exc.reply_text}") from exc
        except pika.exceptions.AMQPError as exc:
            self._channel = None
            raise BrokerUnavailable(f"publishing failed: {exc!r}") from exc

    def publish_many(self, events: Iterable[Event]) -> int:
        """Publish many events with pipelined confirms; returns how many were confirmed.

        Runs its own event loop, so call it from synchronous code only.
        """

        async def publish_all() -> int:
            async with AsyncPublisher(self._amqp_url, self._exchange) as publisher:
                return await publisher.publish_many(events)

        return asyncio.run(publish_all())

    def close(self) -> None:
        """Close the connection."""
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        self._connection = None
        self._channel = None

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
