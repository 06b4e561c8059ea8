"""The library upstream services publish events with: persistent, confirmed, validated.

    with Publisher("amqp://guest:guest@localhost:5672/%2F") as publisher:
        publisher.publish(new_event("delivery.done", "acme", "paris", {"order": {...}}))

An event that no webhook subscribed to is not dropped by the broker: the ``events``
exchange hands it to its alternate exchange, where workers count it (and quarantine it
if it is malformed).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pika
import pika.exceptions

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


class Publisher:
    """A confirmed publisher on one connection; not thread-safe (one per thread)."""

    def __init__(self, amqp_url: str, exchange: str = "events") -> None:
        self._params = connection_parameters(amqp_url, "webhook-router-publisher")
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
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=_PERSISTENT,
            message_id=event.id,
            type=event.type,
        )
        try:
            channel.basic_publish(self._exchange, event.routing_key, event.to_json(), properties)
        except pika.exceptions.NackError as exc:
            raise PublishRejected(f"broker refused event {event.id}") from exc
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            raise PublishRejected(f"broker closed the channel: {exc.reply_text}") from exc
        except pika.exceptions.AMQPError as exc:
            self._channel = None
            raise BrokerUnavailable(f"publishing failed: {exc!r}") from exc

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
