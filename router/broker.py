"""Blocking RabbitMQ client for the API and the CLI: topology changes and control messages.

Admin operations are rare, so each opens its own short-lived connection: pika's
BlockingConnection is not thread-safe and the API serves requests from a thread pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import orjson
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from router.errors import BrokerUnavailable
from router.topology import (
    CONTROL_EXCHANGE,
    Topology,
    dead_letter_queue,
    webhook_queue,
)


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
        """Declare everything in ``topology`` (idempotent) and remove the given bindings."""
        with self.channel() as channel:
            declare(channel, topology)
            for exchange, queue, key in unbind:
                channel.queue_unbind(queue=queue, exchange=exchange, routing_key=key)

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook's queues; their bindings go with them."""
        with self.channel() as channel:
            channel.queue_delete(queue=webhook_queue(webhook_id))
            channel.queue_delete(queue=dead_letter_queue(webhook_id))

    def notify(self, webhook_id: str) -> None:
        """Tell every worker that this webhook changed, so it reloads it."""
        with self.channel() as channel:
            send_control(channel, webhook_id)


def declare(channel: BlockingChannel, topology: Topology) -> None:
    """Declare exchanges, queues and bindings in dependency order."""
    for exchange in topology.exchanges:
        channel.exchange_declare(
            exchange=exchange.name,
            exchange_type=exchange.type,
            durable=True,
            arguments=exchange.arguments or None,
        )
    for queue in topology.queues:
        channel.queue_declare(queue=queue.name, durable=True, arguments=queue.arguments)
    for binding in topology.bindings:
        channel.queue_bind(
            queue=binding.queue, exchange=binding.exchange, routing_key=binding.routing_key
        )


def send_control(channel: BlockingChannel, webhook_id: str) -> None:
    """Publish a 'webhook changed' notice on the control exchange."""
    channel.basic_publish(
        exchange=CONTROL_EXCHANGE,
        routing_key="",
        body=orjson.dumps({"webhook_id": webhook_id}),
        properties=pika.BasicProperties(content_type="application/json"),
    )
