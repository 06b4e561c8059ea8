"""The worker: keeps one broker connection, consumes every enabled webhook's queue, and
follows webhook changes live (control notices, plus a periodic reconcile as a safety net).

One consume channel carries every webhook consumer, each with its own prefetch, so a slow
endpoint holds at most ``prefetch_per_webhook`` messages and never starves the others.
Publishes (retries, dead letters, quarantine) go through a second, confirm-mode channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import orjson
from pika.spec import Basic, BasicProperties
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from consumers.delivery import Endpoint, HttpDeliverer, client_options
from consumers.directory import load_endpoint, load_endpoints
from consumers.hooks import WorkerHooks
from consumers.outcomes import OutcomeWriter
from consumers.pipeline import Message, Pipeline
from consumers.retry import RetryPolicy
from router.amqp import AmqpChannel, AmqpConnection
from router.errors import BrokerUnavailable
from router.settings import Settings
from router.topology import (
    CONTROL_EXCHANGE,
    unrouted_exchange,
    webhook_queue,
    webhook_topology,
)
from router.topology import shared_topology as build_shared_topology

log = logging.getLogger(__name__)
T = TypeVar("T")
_RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 5.0)


class _Session:
    """State that lives as long as one broker connection."""

    def __init__(self, connection: AmqpConnection, consume: AmqpChannel, publish: AmqpChannel):
        self.connection = connection
        self.consume = consume
        self.publish = publish
        self.consumers: dict[str, str] = {}  # webhook id -> consumer tag
        self.starting: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("message handling failed", exc_info=task.exception())


class Worker:
    """Consumes webhook queues until stopped; reconnects whenever the broker goes away."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        hooks: WorkerHooks,
        shutdown_grace_s: float = 30.0,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._hooks = hooks
        self._grace_s = shutdown_grace_s
        self._policy = RetryPolicy(settings.retry_schedule, settings.retry_jitter)
        self._endpoints: dict[str, Endpoint] = {}
        self._db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker-db")
        self._session: _Session | None = None
        self._pipeline: Pipeline | None = None
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish in-flight messages and close."""
        settings = self._settings
        writer = OutcomeWriter(
            self._engine, settings.log_batch_size, settings.log_batch_wait_ms, self._hooks
        )
        writer.start()
        client = httpx.AsyncClient(
            **client_options(settings.delivery_timeout_s, settings.max_in_flight)
        )
        deliverer = HttpDeliverer(
            client, settings.delivery_timeout_s, settings.response_excerpt_bytes
        )
        pipeline = Pipeline(
            settings.exchange,
            settings.max_event_bytes,
            self._policy,
            deliverer,
            writer,
            self._hooks,
            settings.max_in_flight,
        )
        self._pipeline = pipeline
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._connected(pipeline, stop)
                    failures = 0
                except BrokerUnavailable as exc:
                    delay = _RECONNECT_DELAYS_S[min(failures, len(_RECONNECT_DELAYS_S) - 1)]
                    failures += 1
                    log.warning("broker unavailable (%s); reconnecting in %.1f s", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            await writer.stop()
            await client.aclose()
            self._db.shutdown(wait=False)

    async def _connected(self, pipeline: Pipeline, stop: asyncio.Event) -> None:
        """One connection's lifetime: set up, consume, then drain or abandon."""
        settings = self._settings
        connection = await AmqpConnection.connect(
            settings.amqp_url.get_secret_value(), "webhook-router-worker"
        )
        session: _Session | None = None
        try:
            publish = await connection.channel()
            await publish.confirm()
            await publish.declare(
                build_shared_topology(
                    settings.exchange,
                    settings.retry_schedule,
                    settings.retry_jitter,
                    settings.queue_type,
                )
            )
            consume = await connection.channel()
            await consume.qos(settings.prefetch_per_webhook)
            session = _Session(connection, consume, publish)
            self._session = session
            consume.on_consumer_cancelled = lambda tag: self._forget_consumer(session, tag)
            await self._start_control(session)
            await self._start_unrouted(session, pipeline)
            await self._reconcile(session, pipeline)
            self.ready.set()
            await self._watch(session, pipeline, stop)
        finally:
            self.ready.clear()
            self._session = None
            if session is not None:
                await self._wind_down(session, graceful=stop.is_set())
            await connection.close()

    async def _watch(self, session: _Session, pipeline: Pipeline, stop: asyncio.Event) -> None:
        """Reconcile periodically until stopped or the connection drops."""
        lost = asyncio.ensure_future(
            asyncio.wait(
                {session.connection.closed, session.consume.closed, session.publish.closed},
                return_when=asyncio.FIRST_COMPLETED,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {lost, stopping},
                    timeout=self._settings.reconcile_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done:
                    return
                if lost in done:
                    raise BrokerUnavailable("connection to RabbitMQ lost")
                await self._reconcile(session, pipeline)
        finally:
            lost.cancel()
            stopping.cancel()

    async def _wind_down(self, session: _Session, graceful: bool) -> None:
        """Stop consuming; on a graceful stop let in-flight messages finish first."""
        if graceful and session.consume.is_open:
            for tag in list(session.consumers.values()):
                with contextlib.suppress(BrokerUnavailable):
                    await session.consume.cancel(tag)
            if session.tasks:
                await asyncio.wait(set(session.tasks), timeout=self._grace_s)
        for task in list(session.tasks):
            task.cancel()
        if session.tasks:
            await asyncio.wait(set(session.tasks), timeout=5)
        self._hooks.on_queues_consumed(-len(session.consumers))
        session.consumers.clear()

    async def _start_control(self, session: _Session) -> None:
        queue = await session.consume.declare_private_queue(CONTROL_EXCHANGE)

        def on_notice(_m: Basic.Deliver, _p: BasicProperties, body: bytes) -> None:
            try:
                webhook_id = str(orjson.loads(body)["webhook_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("ignoring malformed control notice %r", body[:200])
                return
            session.spawn(self._refresh(session, webhook_id))

        await session.consume.consume(queue, on_notice, auto_ack=True)

    async def _start_unrouted(self, session: _Session, pipeline: Pipeline) -> None:
        def on_message(method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
            message = Message(session.consume, session.publish, method, props, body)
            session.spawn(pipeline.handle_unrouted(message))

        await session.consume.consume(unrouted_exchange(self._settings.exchange), on_message)

    async def _reconcile(self, session: _Session, pipeline: Pipeline) -> None:
        """Make the consumed set equal the enabled webhooks in the database."""
        endpoints = await self._in_db(load_endpoints, self._sessions)
        self._endpoints = endpoints
        for webhook_id in set(session.consumers) - set(endpoints):
            await self._stop_consumer(session, webhook_id)
        for webhook_id in set(endpoints) - set(session.consumers):
            await self._start_consumer(session, pipeline, webhook_id)

    async def _refresh(self, session: _Session, webhook_id: str) -> None:
        """Apply one webhook's change: start, stop, or just pick up its new settings."""
        endpoint = await self._in_db(load_endpoint, self._sessions, webhook_id)
        if endpoint is None:
            self._endpoints.pop(webhook_id, None)
            await self._stop_consumer(session, webhook_id)
            return
        self._endpoints[webhook_id] = endpoint
        if webhook_id not in session.consumers and self._pipeline is not None:
            await self._start_consumer(session, self._pipeline, webhook_id)

    async def _start_consumer(self, session: _Session, pipeline: Pipeline, webhook_id: str) -> None:
        if webhook_id in session.consumers or webhook_id in session.starting:
            return
        session.starting.add(webhook_id)
        try:
            # Declaring is idempotent and makes sure consuming cannot fail with 404, which
            # would close the channel shared by every consumer.
            await session.consume.declare(
                webhook_topology(self._settings.exchange, webhook_id, (), self._settings.queue_type)
            )
            if webhook_id in self._endpoints:
                await self._consume_webhook(session, pipeline, webhook_id)
        finally:
            session.starting.discard(webhook_id)

    async def _consume_webhook(
        self, session: _Session, pipeline: Pipeline, webhook_id: str
    ) -> None:

        def on_message(method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
            endpoint = self._endpoints.get(webhook_id)
            if endpoint is None:  # stopped meanwhile: give it back for whoever consumes next
                session.consume.reject(method.delivery_tag, requeue=True)
                return
            message = Message(session.consume, session.publish, method, props, body)
            session.spawn(pipeline.handle(endpoint, message))

        tag = await session.consume.consume(webhook_queue(webhook_id), on_message)
        session.consumers[webhook_id] = tag
        self._hooks.on_queues_consumed(1)

    async def _stop_consumer(self, session: _Session, webhook_id: str) -> None:
        tag = session.consumers.pop(webhook_id, None)
        if tag is not None:
            self._hooks.on_queues_consumed(-1)
            with contextlib.suppress(BrokerUnavailable):
                await session.consume.cancel(tag)

    def _forget_consumer(self, session: _Session, tag: str) -> None:
        for webhook_id, consumer_tag in list(session.consumers.items()):
            if consumer_tag == tag:
                del session.consumers[webhook_id]
                self._hooks.on_queues_consumed(-1)
                log.info("consumer of webhook %s cancelled by the broker", webhook_id)

    async def _in_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def consumed_webhooks(self) -> set[str]:
        """Ids of the webhooks this worker consumes now."""
        return set(self._session.consumers) if self._session else set()
