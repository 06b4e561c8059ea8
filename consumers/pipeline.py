"""What happens to one message: validate, deliver, decide, publish the follow-up, log, ack.

The ack comes last and only once the outcome is durable: the attempt row committed and,
for a retry or a dead letter, the republished copy confirmed by the broker. A crash at any
point before that leaves the message unacked, so the broker hands it out again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pika.spec import Basic, BasicProperties

from consumers.attempt_logging import log_attempt
from consumers.delivery import Deliverer, DeliveryRequest, DeliveryResult, Endpoint
from consumers.delivery import build_request as build_delivery_request
from consumers.hooks import WorkerHooks
from consumers.outcomes import OutcomeWriter
from consumers.retry import Decision, Outcome, RetryPolicy, is_success
from router.amqp import AmqpChannel
from router.errors import BrokerUnavailable, InvalidEvent
from router.events import Event, parse_event
from router.models import new_id
from router.topology import (
    ATTEMPT_HEADER,
    DEAD_EXCHANGE,
    INVALID_QUEUE,
    TRIGGER_HEADER,
    TRIGGERS,
    dead_letter_queue,
    delay_queue,
    webhook_queue,
)

log = logging.getLogger(__name__)

_PERSISTENT = 2
_DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class Message:
    """A delivered message and the channels to settle it on."""

    consume_channel: AmqpChannel
    publish_channel: AmqpChannel
    method: Basic.Deliver | Basic.GetOk
    props: BasicProperties
    body: bytes

    def ack(self) -> None:
        """Acknowledge it on the channel it came from."""
        self.consume_channel.ack(self.method.delivery_tag)

    def requeue(self) -> None:
        """Give it back to its queue, unchanged."""
        self.consume_channel.reject(self.method.delivery_tag, requeue=True)


class _Attempt(NamedTuple):
    """One message validated and sent: what the rest of the pipeline decides on."""

    event: Event
    headers: dict[str, Any]
    attempt: int
    request: DeliveryRequest
    result: DeliveryResult


# Called after every attempt with its result and decision (circuit breaking, 410 Gone).
AttemptObserver = Callable[[Endpoint, DeliveryResult, Decision], None]


class Pipeline:
    """Processes messages of webhook queues; shared by every consumer of a worker."""

    def __init__(
        self,
        exchange: str,
        max_event_bytes: int,
        policy: RetryPolicy,
        deliverer: Deliverer,
        writer: OutcomeWriter,
        hooks: WorkerHooks,
        max_in_flight: int,
        observer: AttemptObserver = lambda _endpoint, _result, _decision: None,
    ) -> None:
        self._exchange = exchange
        self._max_event_bytes = max_event_bytes
        self._policy = policy
        self._deliverer = deliverer
        self._writer = writer
        self._hooks = hooks
        self._slots = asyncio.Semaphore(max_in_flight)
        self._rng = random.Random()
        self._observer = observer

    async def handle(self, endpoint: Endpoint, message: Message) -> None:
        """Take one message of ``endpoint``'s queue to a durable outcome, then ack it.

        A bug or an unexpected error never loses the message nor stops the worker: the
        message is quarantined with the error as its reason.
        """
        self._hooks.on_consumed()
        await self._guarded(message, endpoint.webhook_id, self._deliver(endpoint, message))

    async def probe(self, endpoint: Endpoint, message: Message) -> bool | None:
        """Deliver one message as a circuit probe, without burning an attempt on failure.

        True: delivered (acked). False: failed, logged as ``paused`` and put back in its
        queue. None: the message was not a valid event (quarantined); nothing was learnt.
        """
        outcome: list[bool | None] = [None]
        await self._guarded(message, endpoint.webhook_id, self._probe(endpoint, message, outcome))
        return outcome[0]

    async def handle_unrouted(self, message: Message) -> None:
        """A message no webhook subscribed to: count it if valid, quarantine it if not."""
        await self._guarded(message, None, self._count_unrouted(message))

    async def _guarded(
        self, message: Message, webhook_id: str | None, work: Coroutine[Any, Any, None]
    ) -> None:
        try:
            await work
        except (BrokerUnavailable, asyncio.CancelledError):
            raise  # the connection is gone: the broker redelivers the message
        except Exception as exc:
            log.exception("processing a message failed; quarantining it")
            await self._quarantine(message, webhook_id, InvalidEvent("processing_error", repr(exc)))
            message.ack()

    async def _attempt(self, endpoint: Endpoint, message: Message) -> _Attempt | None:
        """Validate and send; None (message acked) when it was quarantined instead."""
        event = await self._parse_or_quarantine(message, endpoint.webhook_id)
        if event is None:
            message.ack()
            return None
        headers = message.props.headers or {}
        attempt = _int_header(headers, ATTEMPT_HEADER, 1)
        request, result = await self._send(endpoint, event)
        return _Attempt(event, headers, attempt, request, result)

    async def _deliver(self, endpoint: Endpoint, message: Message) -> None:
        sent = await self._attempt(endpoint, message)
        if sent is None:
            return
        event, headers, attempt, request, result = sent
        decision = self._policy.decide(
            attempt, result.status_code, self._rng, result.retry_after_s, endpoint.max_attempts
        )
        self._record(endpoint, event, result, decision)
        self._observer(endpoint, result, decision)
        row = attempt_row(endpoint, event, attempt, headers, request, result, decision)
        log_attempt(row, decision.delay_ms)
        if decision.outcome is Outcome.DELIVERED:
            await self._writer.write(row)
        else:
            follow_up = self._follow_up(message, endpoint, decision, attempt, result)
            await asyncio.gather(self._writer.write(row), follow_up)
        message.ack()

    async def _probe(
        self, endpoint: Endpoint, message: Message, outcome: list[bool | None]
    ) -> None:
        sent = await self._attempt(endpoint, message)
        if sent is None:
            return
        event, headers, attempt, request, result = sent
        delivered = is_success(result.status_code)
        decision = Decision(Outcome.DELIVERED if delivered else Outcome.PAUSED)
        self._record(endpoint, event, result, decision)
        row = attempt_row(endpoint, event, attempt, headers, request, result, decision)
        log_attempt(row, decision.delay_ms)
        await self._writer.write(row)
        if delivered:
            message.ack()
        else:
            message.requeue()
        outcome[0] = delivered

    async def _send(
        self, endpoint: Endpoint, event: Event
    ) -> tuple[DeliveryRequest, DeliveryResult]:
        request = build_delivery_request(endpoint, event, int(time.time()))
        async with self._slots:
            self._hooks.before_request()
            try:
                return request, await self._deliverer.send(request)
            finally:
                self._hooks.after_request()

    def _record(
        self, endpoint: Endpoint, event: Event, result: DeliveryResult, decision: Decision
    ) -> None:
        self._hooks.on_attempt(
            event.type, decision.outcome, result.status_code, result.duration_ms / 1000
        )
        if decision.outcome is Outcome.RETRYING:
            assert decision.delay_ms is not None
            self._hooks.on_retry(self._policy.scheduled_delay_s(decision.delay_ms))
        elif decision.outcome is Outcome.DEAD_LETTERED:
            self._hooks.on_dead_lettered("gone" if decision.gone else "exhausted")

    async def _count_unrouted(self, message: Message) -> None:
        if await self._parse_or_quarantine(message, None) is not None:
            self._hooks.on_unrouted()
        message.ack()

    async def _parse_or_quarantine(self, message: Message, webhook_id: str | None) -> Event | None:
        # Only messages fresh from the events exchange carry the publisher's routing key;
        # retries come back under the webhook's queue name.
        method = message.method
        key = method.routing_key if method.exchange == self._exchange else None
        try:
            return parse_event(message.body, self._max_event_bytes, key)
        except InvalidEvent as exc:
            await self._quarantine(message, webhook_id, exc)
            return None

    async def _quarantine(
        self, message: Message, webhook_id: str | None, problem: InvalidEvent
    ) -> None:
        """Move a message to ``events.invalid`` with the reason in its headers."""
        headers = {
            **(message.props.headers or {}),
            "x-router-reason": problem.reason,
            "x-router-detail": problem.detail[:_DETAIL_CHARS],
            "x-router-exchange": message.method.exchange,
            "x-router-routing-key": message.method.routing_key,
        }
        if webhook_id is not None:
            headers["x-router-webhook-id"] = webhook_id
        properties = _copy_properties(message.props, headers)
        await message.publish_channel.publish("", INVALID_QUEUE, message.body, properties)
        self._hooks.on_invalid(problem.reason)
        log.warning("quarantined a message in %s: %s", INVALID_QUEUE, problem)

    def _follow_up(
        self,
        message: Message,
        endpoint: Endpoint,
        decision: Decision,
        attempt: int,
        result: DeliveryResult,
    ) -> asyncio.Future[None]:
        """Republish into a delay tier or the dead-letter queue, as decided."""
        history = {
            ATTEMPT_HEADER: attempt + 1,
            "x-router-last-status": result.status_code or 0,
            "x-router-last-error": (result.error or "")[:_DETAIL_CHARS],
            "x-router-last-attempt-at": datetime.now(UTC).isoformat(),
        }
        properties = _copy_properties(message.props, {**(message.props.headers or {}), **history})
        publish = message.publish_channel
        if decision.outcome is Outcome.RETRYING:
            assert decision.delay_ms is not None
            tier = delay_queue(decision.delay_ms)
            return publish.publish(
                tier, webhook_queue(endpoint.webhook_id), message.body, properties
            )
        dead = dead_letter_queue(endpoint.webhook_id)
        return publish.publish(DEAD_EXCHANGE, dead, message.body, properties)


def attempt_row(
    endpoint: Endpoint,
    event: Event,
    attempt: int,
    headers: dict[str, Any],
    request: DeliveryRequest,
    result: DeliveryResult,
    decision: Decision,
) -> dict[str, Any]:
    """The log row of one attempt, credentials redacted."""
    now = datetime.now(UTC)
    next_retry_at = (
        now + timedelta(milliseconds=decision.delay_ms) if decision.delay_ms is not None else None
    )
    return {
        "id": new_id("att"),
        "webhook_id": endpoint.webhook_id,
        "account_id": endpoint.account_id,
        "event_id": event.id,
        "event_type": event.type,
        "attempt": attempt,
        "trigger": trigger_of(headers),
        "status": "succeeded" if decision.outcome is Outcome.DELIVERED else "failed",
        "outcome": decision.outcome.value,
        "response_status": result.status_code,
        "response_body": result.response_excerpt,
        "error": result.error,
        "duration_ms": result.duration_ms,
        "request_url": request.url,
        "request_headers": request.redacted_headers,
        "request_body": request.body.decode(),
        "next_retry_at": next_retry_at,
        "created_at": now,
    }


def trigger_of(headers: dict[str, Any]) -> str:
    """The message's trigger; "event" unless the router itself set a known one.

    Upstream could set the header to anything, and the log column holds 16 characters.
    """
    trigger = headers.get(TRIGGER_HEADER)
    return trigger if isinstance(trigger, str) and trigger in TRIGGERS else "event"


def _copy_properties(props: BasicProperties, headers: dict[str, Any]) -> BasicProperties:
    return BasicProperties(
        content_type=props.content_type or "application/json",
        delivery_mode=_PERSISTENT,
        message_id=props.message_id,
        timestamp=props.timestamp,
        headers=headers,
    )


def _int_header(headers: dict[str, Any], name: str, default: int) -> int:
    value = headers.get(name, default)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default
