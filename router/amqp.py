"""Asyncio face of pika's AsyncioConnection: awaitable declares, confirms and consumes.

Everything here runs on the event loop's thread, the only thread allowed to touch the
connection: pika is not thread-safe, so acks, publishes and declares all go through here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from router.broker import connection_parameters
from router.errors import BrokerUnavailable, PublishRejected
from router.topology import Topology

MessageCallback = Callable[[Basic.Deliver, BasicProperties, bytes], None]


def _settle(future: asyncio.Future[Any], result: Any = None) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _with_callback(
    operation: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[[Callable[[Any], None]], None]:
    """Bind a pika operation's arguments, leaving its completion callback to fill in."""
    return lambda callback: operation(*args, callback=callback, **kwargs)


class AmqpConnection:
    """One AMQP connection; ``closed`` resolves when it goes away for any reason."""

    def __init__(self, connection: AsyncioConnection, closed: asyncio.Future[BaseException]):
        self._connection = connection
        self.closed = closed

    @classmethod
    async def connect(cls, amqp_url: str, name: str) -> AmqpConnection:
        """Open a connection, or raise BrokerUnavailable."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        closed: asyncio.Future[BaseException] = loop.create_future()

        def on_open_error(_conn: Any, exc: BaseException) -> None:
            _fail(opened, BrokerUnavailable(f"cannot connect to RabbitMQ: {exc!r}"))

        def on_close(_conn: Any, exc: BaseException) -> None:
            _fail(opened, BrokerUnavailable(f"connection closed: {exc!r}"))
            _settle(closed, exc)

        params = connection_parameters(amqp_url, name)
        params.heartbeat = 30
        connection = AsyncioConnection(
            params,
            on_open_callback=lambda _conn: _settle(opened),
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        await opened
        return cls(connection, closed)

    async def channel(self) -> AmqpChannel:
        """Open a channel on this connection."""
        future: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self._connection.channel(on_open_callback=lambda ch: _settle(future, ch))
        done, _ = await asyncio.wait({future, self.closed}, return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            raise BrokerUnavailable("connection closed while opening a channel")
        return AmqpChannel(future.result())

    async def close(self) -> None:
        """Close the connection and wait until it is closed."""
        if self._connection.is_open:
            self._connection.close()
        if not self.closed.done():
            await asyncio.wait({self.closed}, timeout=5)


class AmqpChannel:
    """A channel whose operations are awaitable; publishes resolve on broker confirms."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._confirming = False
        self._publish_seq = 0
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}
        self._get_lock = asyncio.Lock()
        self.closed: asyncio.Future[BaseException] = self._loop.create_future()
        self.on_consumer_cancelled: Callable[[str], None] = lambda _tag: None
        channel.add_on_close_callback(self._on_close)
        channel.add_on_cancel_callback(self._on_cancel)

    @property
    def is_open(self) -> bool:
        """Whether the channel can still be used."""
        return bool(self._channel.is_open)

    def _on_close(self, _channel: Channel, reason: BaseException) -> None:
        _settle(self.closed, reason)
        error = BrokerUnavailable(f"channel closed: {reason!r}")
        for future in self._unconfirmed.values():
            _fail(future, error)
        self._unconfirmed.clear()

    def _on_cancel(self, frame: Any) -> None:
        # The broker cancels a consumer when its queue is deleted.
        self.on_consumer_cancelled(frame.method.consumer_tag)

    def _call(self, start: Callable[[Callable[[Any], None]], None]) -> asyncio.Future[Any]:
        """Run a pika operation taking a completion callback, as an awaitable."""
        if not self._channel.is_open:
            raise BrokerUnavailable("channel is closed")
        future: asyncio.Future[Any] = self._loop.create_future()

        def on_closed(_closed: asyncio.Future[BaseException]) -> None:
            _fail(future, BrokerUnavailable("channel closed during operation"))

        self.closed.add_done_callback(on_closed)
        future.add_done_callback(lambda _f: self.closed.remove_done_callback(on_closed))
        start(lambda frame: _settle(future, frame))
        return future

    async def confirm(self) -> None:
        """Enable publisher confirms on this channel."""
        await self._call(lambda cb: self._channel.confirm_delivery(self._on_confirm, callback=cb))
        self._confirming = True

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            # Tags were inserted in increasing order, so the confirmed ones lead the dict.
            tags = list(itertools.takewhile(lambda t: t <= method.delivery_tag, self._unconfirmed))
        else:
            tags = [method.delivery_tag]
        nacked = isinstance(method, Basic.Nack)
        for tag in tags:
            future = self._unconfirmed.pop(tag, None)
            if future is None:
                continue
            if nacked:
                _fail(future, PublishRejected("broker nacked the message"))
            else:
                _settle(future)

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: BasicProperties
    ) -> asyncio.Future[None]:
        """Publish; the future resolves when the broker confirms (confirm mode only)."""
        if not self._channel.is_open:
            raise BrokerUnavailable("channel is closed")
        future: asyncio.Future[None] = self._loop.create_future()
        self._channel.basic_publish(exchange, routing_key, body, properties)
        if self._confirming:
            self._publish_seq += 1
            self._unconfirmed[self._publish_seq] = future
        else:
            future.set_result(None)
        return future

    async def qos(self, prefetch_count: int) -> None:
        """Limit unacked messages per consumer started after this call."""
        await self._call(
            lambda cb: self._channel.basic_qos(prefetch_count=prefetch_count, callback=cb)
        )

    async def declare(self, topology: Topology) -> None:
        """Declare exchanges, queues and bindings (idempotent)."""
        channel = self._channel
        for ex in topology.exchanges:
            await self._call(
                _with_callback(
                    channel.exchange_declare,
                    ex.name,
                    ex.type,
                    durable=True,
                    arguments=ex.arguments or None,
                )
            )
        for q in topology.queues:
            await self._call(
                _with_callback(channel.queue_declare, q.name, durable=True, arguments=q.arguments)
            )
        for b in topology.bindings:
            await self._call(
                _with_callback(channel.queue_bind, b.queue, b.exchange, routing_key=b.routing_key)
            )

    async def declare_private_queue(self, exchange: str) -> str:
        """A server-named exclusive queue bound to ``exchange``; returns its name."""
        frame = await self._call(
            lambda cb: self._channel.queue_declare("", exclusive=True, callback=cb)
        )
        name: str = frame.method.queue
        await self._call(lambda cb: self._channel.queue_bind(name, exchange, callback=cb))
        return name

    async def consume(self, queue: str, on_message: MessageCallback, auto_ack: bool = False) -> str:
        """Start consuming ``queue``; returns the consumer tag."""

        def deliver(_ch: Channel, method: Any, props: Any, body: bytes) -> None:
            on_message(method, props, body)

        future: asyncio.Future[Any] = self._call(
            lambda cb: self._channel.basic_consume(queue, deliver, auto_ack=auto_ack, callback=cb)
        )
        frame = await future
        tag: str = frame.method.consumer_tag
        return tag

    async def message_count(self, queue: str) -> int:
        """Ready messages in ``queue``; a missing queue closes this channel (404)."""
        frame = await self._call(_with_callback(self._channel.queue_declare, queue, passive=True))
        return int(frame.method.message_count)

    async def get(self, queue: str) -> tuple[Basic.GetOk, BasicProperties, bytes] | None:
        """Take one message off ``queue`` (unacked), or None when it is empty."""
        async with self._get_lock:  # pika allows one basic.get in flight per channel
            if not self._channel.is_open:
                raise BrokerUnavailable("channel is closed")
            future: asyncio.Future[tuple[Basic.GetOk, BasicProperties, bytes] | None]
            future = self._loop.create_future()

            def on_ok(_ch: Channel, method: Any, props: Any, body: bytes) -> None:
                _settle(future, (method, props, body))

            self._channel.add_callback(
                lambda _frame: _settle(future, None), [Basic.GetEmpty], one_shot=True
            )
            self._channel.basic_get(queue, on_ok)
            closed: asyncio.Future[Any] = self.closed
            done, _ = await asyncio.wait({future, closed}, return_when=asyncio.FIRST_COMPLETED)
            if future not in done:
                raise BrokerUnavailable("channel closed during basic.get")
            return future.result()

    async def cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; messages already delivered to it stay ours to ack."""
        if self._channel.is_open:
            await self._call(lambda cb: self._channel.basic_cancel(consumer_tag, callback=cb))

    def ack(self, delivery_tag: int) -> None:
        """Acknowledge one message (never ``multiple``: consumers share this channel)."""
        if self._channel.is_open:
            self._channel.basic_ack(delivery_tag)

    def reject(self, delivery_tag: int, requeue: bool) -> None:
        """Give a message back to the broker."""
        if self._channel.is_open:
            self._channel.basic_nack(delivery_tag, requeue=requeue)

    async def close(self) -> None:
        """Close the channel."""
        if self._channel.is_open:
            self._channel.close()
        if not self.closed.done():
            await asyncio.wait({self.closed}, timeout=5)
