"""The worker: keeps one broker connection and, through ``Subscriptions``, consumes every
enabled webhook whose circuit is closed, following changes live.

One consume channel carries every webhook consumer, each with its own prefetch, so a slow
endpoint holds at most ``prefetch_per_webhook`` messages and never starves the others.
Publishes (retries, dead letters, quarantine) go through a second, confirm-mode channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import orjson
from pika.spec import Basic, BasicProperties
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from consumers.circuit import CircuitBreaker
from consumers.delivery import DeliveryResult, Endpoint, make_deliverer
from consumers.hooks import WorkerHooks
from consumers.outcomes import OutcomeWriter
from consumers.pipeline import Message, Pipeline
from consumers.retry import Decision, RetryPolicy
from consumers.subscriptions import Subscriptions
from router.amqp import AmqpConnection
from router.errors import BrokerUnavailable
from router.settings import Settings
from router.topology import (
    CONTROL_EXCHANGE,
    unrouted_exchange,
)
from router.topology import shared_topology as build_shared_topology

log = logging.getLogger(__name__)
_RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
_PROBE_TICK_S = 0.5  # how often open circuits are checked for a due probe


class Worker:
    """Consumes webhook queues until stopped; reconnects whenever the broker goes away."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        hooks: WorkerHooks,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._hooks = hooks
        self._grace_s = settings.shutdown_grace_s
        self._policy = RetryPolicy(
            settings.retry_schedule, settings.retry_jitter, settings.retry_after_max_s
        )
        self._breaker = CircuitBreaker(
            self._sessions,
            failure_threshold=settings.circuit_failure_threshold,
            cooldown_s=settings.circuit_cooldown_s,
            max_cooldown_s=settings.circuit_max_cooldown_s,
            probe_lease_s=settings.delivery_timeout_s * 2 + 10,
        )
        self._db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker-db")
        self._subs: Subscriptions | None = None
        # Deliveries that were in flight when their connection dropped: they run on, so the
        # request they already sent gets its attempt row, while the worker reconnects.
        self._detached: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish in-flight messages and close."""
        settings = self._settings
        writer = OutcomeWriter(
            self._engine, settings.log_batch_size, settings.log_batch_wait_ms, self._hooks
        )
        writer.start()
        # A webhook has at most prefetch_per_webhook deliveries in flight; a host may serve
        # several webhooks (accounts on the same SaaS), so it gets room for four of them
        # before its requests queue for a connection, and no host can take every socket.
        deliverer = make_deliverer(
            settings.http_client,
            settings.delivery_timeout_s,
            settings.response_excerpt_bytes,
            settings.max_in_flight,
            per_host_limit=settings.prefetch_per_webhook * 4,
            allow_private=settings.allow_private_targets,
        )
        pipeline = Pipeline(
            settings.exchange,
            settings.max_event_bytes,
            self._policy,
            deliverer,
            writer,
            self._hooks,
            settings.max_in_flight,
            observer=self._observe,
        )
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
            if self._detached:
                await asyncio.wait(set(self._detached), timeout=self._grace_s)
                for task in self._detached:
                    task.cancel()
            await writer.stop()
            await deliverer.aclose()
            self._db.shutdown(wait=False)

    async def _connected(self, pipeline: Pipeline, stop: asyncio.Event) -> None:
        """One connection's lifetime: set up, consume, then drain or abandon."""
        settings = self._settings
        connection = await AmqpConnection.connect(
            settings.amqp_url.get_secret_value(), "webhook-router-worker"
        )
        subs: Subscriptions | None = None
        try:
            publish = await connection.channel()
            await publish.confirm()
            await publish.declare(
                build_shared_topology(
                    settings.exchange,
                    settings.retry_schedule,
                    settings.retry_jitter,
                    settings.shared_queues_type,
                )
            )
            consume = await connection.channel()
            await consume.qos(settings.prefetch_per_webhook)
            subs = Subscriptions(
                settings,
                connection,
                consume,
                publish,
                pipeline,
                self._breaker,
                self._sessions,
                self._db,
                self._hooks,
            )
            self._subs = subs
            await self._start_control(subs)
            await self._start_unrouted(subs, pipeline)
            await subs.reconcile()
            self.ready.set()
            await self._watch(subs, stop)
        finally:
            self.ready.clear()
            self._subs = None
            if subs is not None:
                await self._wind_down(subs, graceful=stop.is_set())
            await connection.close()

    async def _watch(self, subs: Subscriptions, stop: asyncio.Event) -> None:
        """Probe and reconcile periodically until stopped or the connection drops."""
        lost = asyncio.ensure_future(
            asyncio.wait(
                {subs.connection.closed, subs.consume.closed, subs.publish.closed},
                return_when=asyncio.FIRST_COMPLETED,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        loop = asyncio.get_running_loop()
        next_reconcile = loop.time() + self._settings.reconcile_interval_s
        try:
            while True:
                done, _ = await asyncio.wait(
                    {lost, stopping},
                    timeout=min(_PROBE_TICK_S, self._settings.reconcile_interval_s),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done:
                    return
                if lost in done:
                    raise BrokerUnavailable("connection to RabbitMQ lost")
                subs.probe_due()
                if loop.time() >= next_reconcile:
                    next_reconcile = loop.time() + self._settings.reconcile_interval_s
                    await subs.reconcile()
                    subs.spawn(subs.inspect_queues())
        finally:
            lost.cancel()
            stopping.cancel()

    async def _wind_down(self, subs: Subscriptions, graceful: bool) -> None:
        """Stop consuming; let in-flight messages finish (stopping) or run on (connection lost).

        A message whose connection dropped will be redelivered whatever happens, but the
        request it may already have sent deserves its attempt row: its task runs on
        detached (its ack or republish fails harmlessly on the dead channel) and the
        redelivery is a duplicate under the same ``webhook-id``, as receivers expect.
        """
        if graceful and subs.consume.is_open:
            await subs.stop_all()
            if subs.tasks:
                await asyncio.wait(set(subs.tasks), timeout=self._grace_s)
        if not graceful:
            for task in subs.tasks:
                self._detached.add(task)
                task.add_done_callback(self._detached.discard)
            subs.tasks.clear()
        for task in list(subs.tasks):
            task.cancel()
        if subs.tasks:
            await asyncio.wait(set(subs.tasks), timeout=5)
        self._hooks.on_queues_consumed(-len(subs.consumers))
        subs.consumers.clear()

    async def _start_control(self, subs: Subscriptions) -> None:
        queue = await subs.consume.declare_private_queue(CONTROL_EXCHANGE)

        def on_notice(_m: Basic.Deliver, _p: BasicProperties, body: bytes) -> None:
            try:
                webhook_id = str(orjson.loads(body)["webhook_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("ignoring malformed control notice %r", body[:200])
                return
            subs.spawn(subs.refresh(webhook_id))

        await subs.consume.consume(queue, on_notice, auto_ack=True)

    async def _start_unrouted(self, subs: Subscriptions, pipeline: Pipeline) -> None:
        def on_message(method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
            message = Message(subs.consume, subs.publish, method, props, body)
            subs.spawn(pipeline.handle_unrouted(message))

        await subs.consume.consume(unrouted_exchange(self._settings.exchange), on_message)

    def _observe(self, endpoint: Endpoint, result: DeliveryResult, decision: Decision) -> None:
        if self._subs is not None:
            self._subs.observe(endpoint, result, decision)

    def consumed_webhooks(self) -> set[str]:
        """Ids of the webhooks this worker consumes now."""
        return set(self._subs.consumers) if self._subs else set()
