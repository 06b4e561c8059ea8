"""Blocking RabbitMQ client for the API and the CLI: topology changes and control messages.

Admin operations are rare, so each opens its own short-lived connection: pika's
BlockingConnection is not thread-safe and the API serves requests from a thread pool.
Declaring topology goes through py-amqp (kombu's transport) instead, because it can send
declares and binds with ``nowait``: pika waits for each reply, one round trip per binding,
and 10,000 webhooks mean tens of thousands of bindings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import amqp.exceptions
import kombu
import kombu.exceptions
import orjson
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from router.errors import BrokerUnavailable
from router.topology import (
    ATTEMPT_HEADER,
    CONTROL_EXCHANGE,
    RETURN_EXCHANGE,
    TRIGGER_HEADER,
    Topology,
    dead_letter_queue,
    webhook_queue,
)

# One replay request moves at most this many messages, so a huge dead-letter queue
# cannot hold an API request (and its connection) open indefinitely.
MAX_REPLAY_PER_CALL = 100_000


def pika_url(amqp_url: str) -> str:
    """The URL with its vhost spelled the way pika reads it.

    The usual AMQP spelling (kombu's, and DESIGN.md's default) writes the default vhost
    as ``//``; pika would read that as an empty vhost, so the path is re-encoded: the
    vhost is everything after the first slash, percent-decoded, and ``/`` when empty.
    """
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def connection_parameters(amqp_url: str, name: str) -> pika.URLParameters:
    """Parameters from the URL (vhost honoured), naming the connection for the broker UI."""
    params = pika.URLParameters(pika_url(amqp_url))
    params.client_properties = {"connection_name": name}
    params.connection_attempts = 2
    params.retry_delay = 0.5
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    return params


class BrokerAdmin:
    """Applies topology and sends control messages, one connection per operation."""

    def __init__(self, amqp_url: str, name: str = "webhook-router-admin") -> None:
        self._amqp_url = amqp_url
        self._name = name
        self._params = connection_parameters(amqp_url, name)

    @contextmanager
    def channel(self) -> Iterator[BlockingChannel]:
        """A confirm-mode channel on a fresh connection, closed afterwards."""
        try:
            connection = pika.BlockingConnection(self._params)
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc!r}") from exc
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            yield channel
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"RabbitMQ operation failed: {exc!r}") from exc
        finally:
            if connection.is_open:
                connection.close()

    def apply(self, topology: Topology, unbind: Iterable[tuple[str, str, str]] = ()) -> None:
        """Declare everything in ``topology`` (idempotent) and remove the given bindings.

        Returns once the broker has processed every operation; any refusal (a queue that
        exists with other arguments, say) raises BrokerUnavailable naming the broker's reply.
        """
        connection = kombu.Connection(
            self._amqp_url,
            connect_timeout=5,
            transport_options={"client_properties": {"connection_name": self._name}},
        )
        try:
            channel = connection.channel()
            declare(channel, topology)
            for exchange, queue, key in unbind:
                channel.queue_unbind(queue=queue, exchange=exchange, routing_key=key, nowait=True)
            # The channel handles methods in order and a refusal closes it: one synchronous
            # call after the pipelined ones returns only once all of them succeeded.
            channel.basic_qos(prefetch_size=0, prefetch_count=0, a_global=False)
        except (OSError, amqp.exceptions.AMQPError, kombu.exceptions.KombuError) as exc:
            raise BrokerUnavailable(f"declaring topology failed: {exc!r}") from exc
        finally:
            connection.release()

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook's queues; their bindings go with them."""
        with self.channel() as channel:
            channel.queue_delete(queue=webhook_queue(webhook_id))
            channel.queue_delete(queue=dead_letter_queue(webhook_id))

    def notify(self, webhook_id: str) -> None:
        """Tell every worker that this webhook changed, so it reloads it."""
        with self.channel() as channel:
            send_control(channel, webhook_id)

    @contextmanager
    def connection(self) -> Iterator[pika.BlockingConnection]:
        """A fresh connection, closed afterwards; pika errors become BrokerUnavailable."""
        try:
            connection = pika.BlockingConnection(self._params)
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc!r}") from exc
        try:
            yield connection
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"RabbitMQ operation failed: {exc!r}") from exc
        finally:
            if connection.is_open:
                connection.close()

    def queue_depths(self, webhook_id: str) -> tuple[int, int]:
        """Ready messages in the webhook's queue and in its dead-letter queue (missing = 0)."""
        with self.connection() as connection:
            return (
                message_count(connection, webhook_queue(webhook_id)),
                message_count(connection, dead_letter_queue(webhook_id)),
            )

    def replay_dead_letters(self, webhook_id: str, count: int | None) -> tuple[int, int]:
        """Move up to ``count`` (None: all) dead letters back into delivery, as attempt 1.

        Only what is parked when the call starts is moved: a replayed message that fails
        again and comes back meanwhile is not replayed a second time by the same call.
        Each copy is confirmed before its original is acked, so a failure part-way
        duplicates at most one message and loses none. Returns (replayed, remaining).
        """
        dead = dead_letter_queue(webhook_id)
        with self.connection() as connection:
            parked = message_count(connection, dead)
            wanted = parked if count is None else min(count, parked)
            limit = min(wanted, MAX_REPLAY_PER_CALL)
            channel = connection.channel()
            channel.confirm_delivery()
            replayed = 0
            while replayed < limit and _replay_one(channel, dead, webhook_queue(webhook_id)):
                replayed += 1
            channel.close()
            return replayed, message_count(connection, dead)

    def enqueue(
        self, webhook_id: str, body: bytes, message_id: str, headers: dict[str, Any]
    ) -> None:
        """Publish one JSON message straight into a webhook's queue, confirmed."""
        with self.channel() as channel:
            channel.basic_publish(
                exchange=RETURN_EXCHANGE,
                routing_key=webhook_queue(webhook_id),
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message_id,
                    headers=headers,
                ),
            )


def declare(channel: Any, topology: Topology) -> None:
    """Send every declare and bind of ``topology`` without waiting for replies (py-amqp).

    Dependency order (exchanges, queues, bindings) is kept because the broker handles a
    channel's methods in the order they were sent.
    """
    for exchange in topology.exchanges:
        channel.exchange_declare(
            exchange.name,
            exchange.type,
            durable=True,
            auto_delete=False,
            arguments=exchange.arguments or None,
            nowait=True,
        )
    for queue in topology.queues:
        channel.queue_declare(
            queue.name, durable=True, auto_delete=False, arguments=queue.arguments, nowait=True
        )
    for binding in topology.bindings:
        channel.queue_bind(
            binding.queue, binding.exchange, routing_key=binding.routing_key, nowait=True
        )


def message_count(connection: pika.BlockingConnection, queue: str) -> int:
    """Ready messages in ``queue``, 0 when it does not exist.

    A passive declare of a missing queue makes the broker close the channel (404), so
    each check gets a channel of its own and the connection survives the miss.
    """
    channel = connection.channel()
    try:
        frame = channel.queue_declare(queue=queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return 0
        raise
    channel.close()
    return int(frame.method.message_count)


def _replay_one(channel: BlockingChannel, dead: str, queue: str) -> bool:
    """Move the head of ``dead`` into ``queue`` as a manual attempt 1; False when empty."""
    method, properties, body = channel.basic_get(queue=dead, auto_ack=False)
    if method is None:
        return False
    headers = dict(properties.headers or {})
    # A fresh start for the retry policy; the x-router-last-* history of why the message
    # was parked stays with it.
    headers[ATTEMPT_HEADER] = 1
    headers[TRIGGER_HEADER] = "manual"
    # Through router.return, bound to the webhook's queue alone under its own name.
    channel.basic_publish(
        exchange=RETURN_EXCHANGE,
        routing_key=queue,
        body=body,
        properties=pika.BasicProperties(
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.message_id,
            headers=headers,
        ),
    )
    # Confirmed by now (confirm mode): acking the original cannot lose the message.
    channel.basic_ack(delivery_tag=method.delivery_tag)
    return True


def send_control(channel: BlockingChannel, webhook_id: str) -> None:
    """Publish a 'webhook changed' notice on the control exchange."""
    channel.basic_publish(
        exchange=CONTROL_EXCHANGE,
        routing_key="",
        body=orjson.dumps({"webhook_id": webhook_id}),
        properties=pika.BasicProperties(content_type="application/json"),
    )
