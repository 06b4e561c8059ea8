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
from datetime import UTC, datetime, timedelta
from typing import Any

from pika.spec import Basic, BasicProperties

from consumers.delivery import DeliveryRequest, DeliveryResult, Endpoint, HttpDeliverer
from consumers.delivery import build_request as build_delivery_request
from consumers.hooks import WorkerHooks
from consumers.outcomes import OutcomeWriter
from consumers.retry import Decision, Outcome, RetryPolicy
from router.amqp import AmqpChannel
from router.errors import InvalidEvent
from router.events import Event, parse_event
from router.models import new_id
from router.topology import (
    DEAD_EXCHANGE,
    INVALID_QUEUE,
    dead_letter_queue,
    delay_queue,
    webhook_queue,
)

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-router-attempt"
TRIGGER_HEADER = "x-router-trigger"
_PERSISTENT = 2
_DETAIL_CHARS = 500


class Pipeline:
    """Processes messages of webhook queues; shared by every consumer of a worker."""

    def __init__(
        self,
        exchange: str,
        max_event_bytes: int,
        policy: RetryPolicy,
        deliverer: HttpDeliverer,
        writer: OutcomeWriter,
        hooks: WorkerHooks,
        max_in_flight: int,
    ) -> None:
        self._exchange = exchange
        self._max_event_bytes = max_event_bytes
        self._policy = policy
        self._deliverer = deliverer
        self._writer = writer
        self._hooks = hooks
        self._slots = asyncio.Semaphore(max_in_flight)
        self._rng = random.Random()

    async def handle(
        self,
        endpoint: Endpoint,
        consume: AmqpChannel,
        publish: AmqpChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        """Take one message of ``endpoint``'s queue to a durable outcome, then ack it."""
        self._hooks.on_consumed()
        event = await self._parse_or_quarantine(publish, method, props, body, endpoint.webhook_id)
        if event is None:
            consume.ack(method.delivery_tag)
            return
        headers = props.headers or {}
        attempt = _int_header(headers, ATTEMPT_HEADER, 1)
        request = build_delivery_request(endpoint, event, int(time.time()))
        async with self._slots:
            self._hooks.before_request()
            try:
                result = await self._deliverer.send(request)
            finally:
                self._hooks.after_request()
        decision = self._policy.decide(attempt, result.status_code, self._rng)
        self._hooks.on_attempt(
            event.type, decision.outcome, result.status_code, result.duration_ms / 1000
        )
        follow_up = self._follow_up(publish, endpoint, decision, props, body, attempt, result)
        row = attempt_row(endpoint, event, attempt, headers, request, result, decision)
        await asyncio.gather(self._writer.write(row), follow_up)
        consume.ack(method.delivery_tag)

    async def handle_unrouted(
        self,
        consume: AmqpChannel,
        publish: AmqpChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        """A message no webhook subscribed to: count it if valid, quarantine it if not."""
        event = await self._parse_or_quarantine(publish, method, props, body, None)
        if event is not None:
            self._hooks.on_unrouted()
        consume.ack(method.delivery_tag)

    async def _parse_or_quarantine(
        self,
        publish: AmqpChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
        webhook_id: str | None,
    ) -> Event | None:
        # Only messages fresh from the events exchange carry the publisher's routing key;
        # retries come back under the webhook's queue name.
        key = method.routing_key if method.exchange == self._exchange else None
        try:
            return parse_event(body, self._max_event_bytes, key)
        except InvalidEvent as exc:
            headers = {
                **(props.headers or {}),
                "x-router-reason": exc.reason,
                "x-router-detail": exc.detail[:_DETAIL_CHARS],
                "x-router-exchange": method.exchange,
                "x-router-routing-key": method.routing_key,
            }
            if webhook_id is not None:
                headers["x-router-webhook-id"] = webhook_id
            quarantined = _copy_properties(props, headers)
            await publish.publish("", INVALID_QUEUE, body, quarantined)
            self._hooks.on_invalid(exc.reason)
            log.warning("quarantined message in %s: %s", INVALID_QUEUE, exc)
            return None

    def _follow_up(
        self,
        publish: AmqpChannel,
        endpoint: Endpoint,
        decision: Decision,
        props: BasicProperties,
        body: bytes,
        attempt: int,
        result: DeliveryResult,
    ) -> asyncio.Future[None]:
        """Republish into a delay tier or the dead-letter queue, as decided."""
        if decision.outcome is Outcome.DELIVERED:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        history = {
            ATTEMPT_HEADER: attempt + 1,
            "x-router-last-status": result.status_code or 0,
            "x-router-last-error": (result.error or "")[:_DETAIL_CHARS],
            "x-router-last-attempt-at": datetime.now(UTC).isoformat(),
        }
        properties = _copy_properties(props, {**(props.headers or {}), **history})
        if decision.outcome is Outcome.RETRYING:
            assert decision.delay_ms is not None
            tier = delay_queue(decision.delay_ms)
            return publish.publish(tier, webhook_queue(endpoint.webhook_id), body, properties)
        dead = dead_letter_queue(endpoint.webhook_id)
        return publish.publish(DEAD_EXCHANGE, dead, body, properties)


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
        "trigger": str(headers.get(TRIGGER_HEADER, "event")),
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
