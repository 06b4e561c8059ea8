"""The set of webhook queues one worker connection consumes, kept equal to the database.

A webhook is consumed while it is enabled and its circuit is closed. Changes arrive as
control notices (``refresh``) and are re-checked by a periodic ``reconcile``. This is also
where attempt results turn into state changes: a circuit opening after consecutive
failures, a probe after its cool-down, a webhook disabled by ``410 Gone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pika.spec import Basic, BasicProperties
from sqlalchemy.orm import Session, sessionmaker

from consumers.circuit import CLOSED, CircuitBreaker
from consumers.delivery import DeliveryResult, Endpoint
from consumers.directory import disable_webhook, load_endpoint, load_endpoints
from consumers.hooks import WorkerHooks
from consumers.pipeline import Message, Pipeline
from consumers.retry import Decision, is_success
from router.amqp import AmqpChannel, AmqpConnection
from router.broker import BrokerAdmin
from router.errors import BrokerUnavailable
from router.settings import Settings
from router.topology import (
    CONTROL_EXCHANGE,
    ORPHANED,
    Topology,
    dead_letter_queue,
    webhook_queue,
)
from router.topology import webhook_topology as build_webhook_topology

log = logging.getLogger(__name__)
T = TypeVar("T")


class Subscriptions:
    """Consumers, circuits and probes of one broker connection."""

    def __init__(
        self,
        settings: Settings,
        connection: AmqpConnection,
        consume: AmqpChannel,
        publish: AmqpChannel,
        pipeline: Pipeline,
        breaker: CircuitBreaker,
        sessions: sessionmaker[Session],
        db: Executor,
        hooks: WorkerHooks,
    ) -> None:
        self.connection, self.consume, self.publish = connection, consume, publish
        self._settings = settings
        self._pipeline = pipeline
        self._breaker = breaker
        self._sessions = sessions
        self._db = db
        self._hooks = hooks
        self._admin = BrokerAdmin(settings.amqp_url.get_secret_value())
        self.endpoints: dict[str, Endpoint] = {}  # every enabled webhook
        self.consumers: dict[str, str] = {}  # webhook id -> consumer tag
        self._starting: set[str] = set()
        self._busy: set[str] = set()  # webhooks with a probe or a disable under way
        self.tasks: set[asyncio.Task[None]] = set()
        consume.on_consumer_cancelled = self._forget_consumer

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of this connection (cancelled if it drops)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, BrokerUnavailable):
            # Its connection dropped: the broker redelivers the message.
            log.info("message left to the broker's redelivery: %s", error)
        elif error is not None:
            log.error("worker task failed", exc_info=error)

    # --- keeping the consumed set equal to the database ---------------------------------

    async def reconcile(self) -> None:
        """Re-read every enabled webhook; start and stop consumers to match."""
        self.endpoints = await self._in_db(load_endpoints, self._sessions)
        wanted = {i for i, e in self.endpoints.items() if e.circuit_state == CLOSED}
        for webhook_id in set(self.consumers) - wanted:
            await self._stop_consumer(webhook_id)
        missing = sorted(wanted - set(self.consumers) - self._starting)
        if missing:
            # Declared together, pipelined, before consuming: at start-up with thousands of
            # webhooks, one round trip per declare was most of the time to first delivery.
            settings = self._settings
            topology = Topology.merge(
                build_webhook_topology(settings.exchange, i, (), settings.queue_type)
                for i in missing
            )
            await asyncio.to_thread(self._admin.apply, topology)
        for webhook_id in missing:
            await self._start_consumer(webhook_id, declared=True)
        self._hooks.on_circuits_open(len(self.endpoints) - len(wanted))

    async def refresh(self, webhook_id: str) -> None:
        """Apply one webhook's change: start, stop, or pick up its new settings."""
        endpoint = await self._in_db(load_endpoint, self._sessions, webhook_id)
        if endpoint is None:
            self.endpoints.pop(webhook_id, None)
        else:
            self.endpoints[webhook_id] = endpoint
        if endpoint is not None and endpoint.circuit_state == CLOSED:
            await self._start_consumer(webhook_id)
        else:
            await self._stop_consumer(webhook_id)

    async def _start_consumer(self, webhook_id: str, declared: bool = False) -> None:
        if webhook_id in self.consumers or webhook_id in self._starting:
            return
        self._starting.add(webhook_id)
        try:
            # Declaring is idempotent and makes sure consuming cannot fail with 404, which
            # would close the channel shared by every consumer.
            if not declared:
                settings = self._settings
                await self.consume.declare(
                    build_webhook_topology(settings.exchange, webhook_id, (), settings.queue_type)
                )
            if webhook_id in self.endpoints:
                tag = await self.consume.consume(
                    webhook_queue(webhook_id), self._on_message(webhook_id)
                )
                self.consumers[webhook_id] = tag
                self._hooks.on_queues_consumed(1)
        finally:
            self._starting.discard(webhook_id)

    def _on_message(
        self, webhook_id: str
    ) -> Callable[[Basic.Deliver, BasicProperties, bytes], None]:
        def on_message(method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
            endpoint = self.endpoints.get(webhook_id)
            if endpoint is None:  # disabled meanwhile: give it back to its queue
                self.consume.reject(method.delivery_tag, requeue=True)
                return
            message = Message(self.consume, self.publish, method, props, body)
            self.spawn(self._pipeline.handle(endpoint, message))

        return on_message

    async def _stop_consumer(self, webhook_id: str) -> None:
        tag = self.consumers.pop(webhook_id, None)
        if tag is not None:
            self._hooks.on_queues_consumed(-1)
            with contextlib.suppress(BrokerUnavailable):
                await self.consume.cancel(tag)

    def _forget_consumer(self, tag: str) -> None:
        for webhook_id, consumer_tag in list(self.consumers.items()):
            if consumer_tag == tag:
                del self.consumers[webhook_id]
                self._hooks.on_queues_consumed(-1)
                log.info("consumer of webhook %s cancelled by the broker", webhook_id)

    async def stop_all(self) -> None:
        """Cancel every consumer (a graceful stop lets in-flight messages finish)."""
        for webhook_id in list(self.consumers):
            await self._stop_consumer(webhook_id)

    # --- results into state: circuits, probes, 410 Gone ---------------------------------

    def observe(self, endpoint: Endpoint, result: DeliveryResult, decision: Decision) -> None:
        """React to one attempt: disable on 410, open the circuit after N failures."""
        webhook_id = endpoint.webhook_id
        if decision.gone:
            if webhook_id not in self._busy:
                self._busy.add(webhook_id)
                self.spawn(self._disable(webhook_id, "the endpoint answered 410 Gone"))
        elif self._breaker.record(webhook_id, is_success(result.status_code)):
            self.spawn(self._open_circuit(webhook_id))

    async def _disable(self, webhook_id: str, reason: str) -> None:
        try:
            disable = disable_webhook
            args = (self._sessions, self._admin, self._settings, webhook_id, reason)
            if await self._in_db(disable, *args):
                log.warning("webhook %s disabled: %s", webhook_id, reason)
            await self.refresh(webhook_id)
        finally:
            self._busy.discard(webhook_id)

    async def _open_circuit(self, webhook_id: str) -> None:
        if await self._in_db(self._breaker.open, webhook_id):
            self._hooks.on_circuit("opened")
            log.warning("circuit of webhook %s opened after consecutive failures", webhook_id)
            await self._changed(webhook_id)

    def probe_due(self) -> None:
        """Start a probe for every open circuit whose cool-down is over."""
        now = datetime.now(UTC)
        for webhook_id, endpoint in self.endpoints.items():
            retry_at = endpoint.circuit_retry_at
            if endpoint.circuit_state == CLOSED or retry_at is None or retry_at > now:
                continue
            if webhook_id not in self._busy:
                self._busy.add(webhook_id)
                self.spawn(self._probe(endpoint))

    async def _probe(self, endpoint: Endpoint) -> None:
        webhook_id = endpoint.webhook_id
        try:
            if not await self._in_db(self._breaker.claim_probe, webhook_id):
                await self.refresh(webhook_id)  # someone else probes: pick up their lease
                return
            got = await self.consume.get(webhook_queue(webhook_id))
            delivered = (
                True  # nothing waits: nothing to protect the endpoint from
                if got is None
                else await self._pipeline.probe(endpoint, Message(self.consume, self.publish, *got))
            )
            if delivered:
                await self._in_db(self._breaker.close, webhook_id)
                self._hooks.on_circuit("closed")
                log.info("circuit of webhook %s closed: the endpoint answers", webhook_id)
            else:
                cooldown_s = endpoint.circuit_cooldown_s
                await self._in_db(self._breaker.reopen, webhook_id, cooldown_s, delivered is None)
                if delivered is False:
                    self._hooks.on_circuit("reopened")
            await self._changed(webhook_id)
        finally:
            self._busy.discard(webhook_id)

    async def _changed(self, webhook_id: str) -> None:
        """Apply a state change here, and tell the other workers."""
        await self.refresh(webhook_id)
        properties = BasicProperties(content_type="application/json")
        body = orjson.dumps({"webhook_id": webhook_id})
        with contextlib.suppress(BrokerUnavailable):
            await self.publish.publish(CONTROL_EXCHANGE, "", body, properties)

    # --- queue depths for operators -----------------------------------------------------

    async def inspect_queues(self) -> None:
        """Publish backlog, dead-letter and orphan depths as gauges (no per-webhook labels)."""
        channel = await self.connection.channel()
        try:
            depths, dead = [], 0
            for webhook_id in list(self.endpoints):
                depths.append(await channel.message_count(webhook_queue(webhook_id)))
                dead += await channel.message_count(dead_letter_queue(webhook_id))
            orphaned = await channel.message_count(ORPHANED)
            self._hooks.on_queue_depths(sum(depths), max(depths, default=0), dead, orphaned)
        except BrokerUnavailable:
            log.info("queue inspection skipped: a queue vanished meanwhile")
        finally:
            await channel.close()

    async def _in_db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)
