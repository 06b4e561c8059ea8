"""Every Prometheus metric of the router, defined once.

Labels stay low-cardinality (event type, outcome, status class, reason): never a webhook
id, an account or a URL. Workers started by ``serve`` write to PROMETHEUS_MULTIPROC_DIR
and the API merges them on ``/metrics``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

DELIVERIES = Counter(
    "webhook_router_deliveries",
    "Delivery attempts, by event type and outcome (delivered, retrying, dead_lettered).",
    ["event_type", "outcome"],
)
DELIVERY_DURATION = Histogram(
    "webhook_router_delivery_duration_seconds",
    "Time from sending a delivery request to reading its response, by status class.",
    ["status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "webhook_router_deliveries_in_flight",
    "Delivery requests currently awaiting a response.",
    multiprocess_mode="livesum",
)
CONSUMED = Counter(
    "webhook_router_messages_consumed",
    "Messages taken off webhook queues by workers.",
)
INVALID = Counter(
    "webhook_router_events_invalid",
    "Messages moved to events.invalid, by reason.",
    ["reason"],
)
UNROUTED = Counter(
    "webhook_router_events_unrouted",
    "Valid events that no webhook subscribed to.",
)
RETRIES = Counter(
    "webhook_router_retries",
    "Failed attempts sent to a delay tier, by scheduled delay (e.g. 5s, 30s).",
    ["tier"],
)
DEAD_LETTERED = Counter(
    "webhook_router_dead_lettered",
    "Messages parked in a dead-letter queue: attempts exhausted, or endpoint gone (410).",
    ["reason"],
)
CIRCUIT_TRANSITIONS = Counter(
    "webhook_router_circuit_transitions",
    "Circuit breaker moves: opened, closed, reopened (a probe failed).",
    ["transition"],
)
CIRCUITS_OPEN = Gauge(
    "webhook_router_circuits_open",
    "Webhooks whose circuit is open or half-open (their queues are not consumed).",
    multiprocess_mode="max",
)
WEBHOOK_BACKLOG = Gauge(
    "webhook_router_webhook_backlog_messages",
    "Messages waiting in the queues of enabled webhooks, all together.",
    multiprocess_mode="max",
)
WEBHOOK_BACKLOG_MAX = Gauge(
    "webhook_router_webhook_backlog_max_messages",
    "Messages waiting in the deepest queue of an enabled webhook.",
    multiprocess_mode="max",
)
DEAD_LETTER_BACKLOG = Gauge(
    "webhook_router_dead_letter_messages",
    "Messages parked in the dead-letter queues of enabled webhooks, all together.",
    multiprocess_mode="max",
)
ORPHANED = Gauge(
    "webhook_router_orphaned_messages",
    "Messages in router.orphaned: retries or dead letters of webhooks deleted meanwhile.",
    multiprocess_mode="max",
)
CONSUMED_QUEUES = Gauge(
    "webhook_router_webhook_queues_consumed",
    "Webhook queues the workers are consuming.",
    multiprocess_mode="livesum",
)
LOG_BATCH_ROWS = Histogram(
    "webhook_router_log_batch_rows",
    "Attempt rows written per database transaction.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
LOG_WRITE_ERRORS = Counter(
    "webhook_router_log_write_errors",
    "Failed attempts to write a batch of log rows (retried until they succeed).",
)
LOG_ROWS_PURGED = Counter(
    "webhook_router_log_rows_purged",
    "Attempt rows deleted for being older than the log retention.",
)


def status_class(status_code: int | None) -> str:
    """``2xx``..``5xx``, or ``error`` when no response was read."""
    if status_code is None:
        return "error"
    return f"{status_code // 100}xx"


def render_metrics() -> tuple[bytes, str]:
    """The exposition text: merged over processes when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
