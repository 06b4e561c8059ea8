"""RabbitMQ topology as plain data, and the blocking client that applies it.

Flow of a message:

    upstream ──► events (topic) ──► webhook.<id>        one queue per webhook, bound to
        │            │                                   {account}.{site|*}.{type} keys
        │            └─(no binding matched)─► events.unrouted (alternate exchange, bounded)
        │
    worker: bad envelope ──► events.invalid
            failed attempt ──► router.delay.<ms> (fanout, fixed TTL) ──expired──►
                               router.return (direct, key = webhook queue) ──► webhook.<id>
                               (webhook deleted meanwhile ──► router.orphaned)
            attempts exhausted ──► router.dead (direct) ──► webhook.<id>.dead
            events.unrouted ──► validated: counted and dropped, or moved to events.invalid
    api: webhook created/changed/deleted ──► router.control (fanout) ──► every worker

Delays live in one queue per tier with a fixed ``x-message-ttl``: RabbitMQ only expires
messages at the head of a queue, so per-message expiration on a shared queue would let a
long delay hold up a short one. The routing key given when publishing into a tier is the
webhook's queue name; dead-lettering keeps it, so ``router.return`` sends the message back
to that webhook alone, never to the other subscribers of the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

CONTROL_EXCHANGE = "router.control"
RETURN_EXCHANGE = "router.return"
DEAD_EXCHANGE = "router.dead"
ORPHANED = "router.orphaned"
INVALID_QUEUE = "events.invalid"
UNROUTED_MAX_LENGTH = 100_000

# Headers the router sets on messages it republishes (never x-death: RabbitMQ owns it).
ATTEMPT_HEADER = "x-router-attempt"  # the attempt number the next delivery will be
TRIGGER_HEADER = "x-router-trigger"  # one of TRIGGERS
# Why an attempt was made: an upstream event, a replay, or a test send from the API.
TRIGGERS = ("event", "manual", "test")


@dataclass(frozen=True)
class ExchangeSpec:
    """An exchange to declare."""

    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue to declare, with its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BindingSpec:
    """A queue bound to an exchange under a routing key."""

    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """Everything to declare, in order: exchanges, then queues, then bindings."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]

    @classmethod
    def merge(cls, parts: Iterable[Topology]) -> Topology:
        """One topology declaring all of ``parts``: their exchanges, then queues, then bindings."""
        items = list(parts)
        return cls(
            exchanges=tuple(e for part in items for e in part.exchanges),
            queues=tuple(q for part in items for q in part.queues),
            bindings=tuple(b for part in items for b in part.bindings),
        )


def unrouted_exchange(exchange: str) -> str:
    """The alternate exchange catching what no webhook subscribed to."""
    return f"{exchange}.unrouted"


def delay_queue(delay_ms: int) -> str:
    """The delay tier holding messages for ``delay_ms`` milliseconds."""
    return f"router.delay.{delay_ms}ms"


def delay_tiers_ms(schedule_s: Sequence[float], jitter: float) -> tuple[int, ...]:
    """Every tier TTL in milliseconds: each scheduled delay and its jittered neighbours.

    Jitter picks one of three fixed tiers (-j, 0, +j) so the queue count stays fixed.
    """
    tiers = set()
    for delay_s in schedule_s:
        for factor in (1 - jitter, 1.0, 1 + jitter):
            tiers.add(max(1, round(delay_s * factor * 1000)))
    return tuple(sorted(tiers))


def webhook_queue(webhook_id: str) -> str:
    """The queue holding a webhook's pending deliveries."""
    return f"webhook.{webhook_id}"


def dead_letter_queue(webhook_id: str) -> str:
    """The queue parking a webhook's exhausted deliveries."""
    return f"webhook.{webhook_id}.dead"


def queue_arguments(queue_type: str) -> dict[str, Any]:
    """Arguments every durable router queue is declared with.

    Nothing version- or tuning-specific: RabbitMQ refuses to redeclare a queue with other
    arguments, so anything here could never change on a running broker. Tune with policies.
    """
    return {"x-queue-type": queue_type}


def delay_tier_arguments(delay_ms: int, queue_type: str) -> dict[str, Any]:
    """A delay tier holds each retry ``delay_ms``, then dead-letters it back to its webhook.

    A quorum queue dead-letters at most once by default: a retry expiring while its target
    is briefly unavailable (a cluster node restarting) would be dropped. At-least-once
    keeps it in the tier until the target confirms, which RabbitMQ allows only with
    ``reject-publish`` overflow (no length limit is set, so nothing is ever rejected).
    """
    arguments: dict[str, Any] = {
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": RETURN_EXCHANGE,
    }
    if queue_type == "quorum":
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


def binding_keys(account_id: str, events: Iterable[str], sites: Iterable[str]) -> set[str]:
    """Topic keys for exactly the (event type x site) pairs; no sites means every site."""
    site_words = sorted(set(sites)) or ["*"]
    return {f"{account_id}.{site}.{event}" for event in set(events) for site in site_words}


def shared_topology(
    exchange: str, schedule_s: Sequence[float], jitter: float, queue_type: str
) -> Topology:
    """The exchanges and queues that exist once, whatever the number of webhooks."""
    unrouted = unrouted_exchange(exchange)
    args = queue_arguments(queue_type)
    exchanges = [
        ExchangeSpec(unrouted, "fanout"),
        ExchangeSpec(exchange, "topic", {"alternate-exchange": unrouted}),
        ExchangeSpec(ORPHANED, "fanout"),
        ExchangeSpec(RETURN_EXCHANGE, "direct", {"alternate-exchange": ORPHANED}),
        ExchangeSpec(DEAD_EXCHANGE, "direct", {"alternate-exchange": ORPHANED}),
        ExchangeSpec(CONTROL_EXCHANGE, "fanout"),
    ]
    queues = [
        QueueSpec(
            unrouted,
            {**args, "x-max-length": UNROUTED_MAX_LENGTH, "x-overflow": "drop-head"},
        ),
        QueueSpec(INVALID_QUEUE, args),
        QueueSpec(ORPHANED, args),
    ]
    bindings = [BindingSpec(unrouted, unrouted, ""), BindingSpec(ORPHANED, ORPHANED, "")]
    for delay_ms in delay_tiers_ms(schedule_s, jitter):
        name = delay_queue(delay_ms)
        exchanges.append(ExchangeSpec(name, "fanout"))
        queues.append(QueueSpec(name, {**args, **delay_tier_arguments(delay_ms, queue_type)}))
        bindings.append(BindingSpec(name, name, ""))
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings))


def webhook_topology(
    exchange: str, webhook_id: str, keys: Iterable[str], queue_type: str
) -> Topology:
    """A webhook's queue, its dead-letter queue, and its bindings."""
    queue = webhook_queue(webhook_id)
    dead = dead_letter_queue(webhook_id)
    args = queue_arguments(queue_type)
    bindings = [BindingSpec(exchange, queue, key) for key in sorted(keys)]
    # Retries come back, and exhausted messages are parked, by queue name: a message
    # for a webhook deleted meanwhile matches nothing and lands in router.orphaned.
    bindings.append(BindingSpec(RETURN_EXCHANGE, queue, queue))
    bindings.append(BindingSpec(DEAD_EXCHANGE, dead, dead))
    return Topology(
        exchanges=(),
        queues=(QueueSpec(queue, args), QueueSpec(dead, args)),
        bindings=tuple(bindings),
    )
