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
