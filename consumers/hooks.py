"""Observers of the delivery pipeline: metrics (and tests) watch it through these hooks."""

from __future__ import annotations

from router import metrics
from router.metrics import status_class


class WorkerHooks:
    """No-op hooks; subclass and override what you observe."""

    def on_consumed(self) -> None:
        """A message was taken off a webhook queue."""

    def on_invalid(self, reason: str) -> None:
        """A message was moved to ``events.invalid``."""

    def on_unrouted(self) -> None:
        """A valid event matched no webhook."""

    def before_request(self) -> None:
        """A delivery request is about to be sent."""

    def after_request(self) -> None:
        """A delivery request ended, with a response or an error."""

    def on_attempt(
        self, event_type: str, outcome: str, status_code: int | None, duration_s: float
    ) -> None:
        """A delivery attempt ended and its outcome is decided."""

    def on_retry(self, scheduled_delay_s: float) -> None:
        """A failed attempt was sent to the delay tier of this scheduled delay."""

    def on_dead_lettered(self, reason: str) -> None:
        """A message was parked in its dead-letter queue (``exhausted`` or ``gone``)."""

    def on_circuit(self, transition: str) -> None:
        """A circuit moved: ``opened``, ``closed`` or ``reopened``."""

    def on_circuits_open(self, count: int) -> None:
        """How many enabled webhooks have an open or half-open circuit."""

    def on_queue_depths(self, backlog: int, deepest: int, dead_letters: int, orphaned: int) -> None:
        """Messages waiting in webhook queues (total, deepest), dead letters, orphans."""

    def on_queues_consumed(self, delta: int) -> None:
        """The worker started (+) or stopped (-) consuming webhook queues."""

    def on_log_batch(self, rows: int) -> None:
        """A batch of attempt rows was committed."""

    def on_log_error(self) -> None:
        """Writing a batch of attempt rows failed (it will be retried)."""


class MetricsHooks(WorkerHooks):
    """Feeds the Prometheus metrics of ``router.metrics``."""

    def on_consumed(self) -> None:
        metrics.CONSUMED.inc()

    def on_invalid(self, reason: str) -> None:
        metrics.INVALID.labels(reason).inc()

    def on_unrouted(self) -> None:
        metrics.UNROUTED.inc()

    def before_request(self) -> None:
        metrics.IN_FLIGHT.inc()

    def after_request(self) -> None:
        metrics.IN_FLIGHT.dec()

    def on_attempt(
        self, event_type: str, outcome: str, status_code: int | None, duration_s: float
    ) -> None:
        metrics.DELIVERIES.labels(event_type, outcome).inc()
        metrics.DELIVERY_DURATION.labels(status_class(status_code)).observe(duration_s)

    def on_retry(self, scheduled_delay_s: float) -> None:
        metrics.RETRIES.labels(f"{scheduled_delay_s:g}s").inc()

    def on_dead_lettered(self, reason: str) -> None:
        metrics.DEAD_LETTERED.labels(reason).inc()

    def on_circuit(self, transition: str) -> None:
        metrics.CIRCUIT_TRANSITIONS.labels(transition).inc()

    def on_circuits_open(self, count: int) -> None:
        metrics.CIRCUITS_OPEN.set(count)

    def on_queue_depths(self, backlog: int, deepest: int, dead_letters: int, orphaned: int) -> None:
        metrics.WEBHOOK_BACKLOG.set(backlog)
        metrics.WEBHOOK_BACKLOG_MAX.set(deepest)
        metrics.DEAD_LETTER_BACKLOG.set(dead_letters)
        metrics.ORPHANED.set(orphaned)

    def on_queues_consumed(self, delta: int) -> None:
        metrics.CONSUMED_QUEUES.inc(delta)

    def on_log_batch(self, rows: int) -> None:
        metrics.LOG_BATCH_ROWS.observe(rows)

    def on_log_error(self) -> None:
        metrics.LOG_WRITE_ERRORS.inc()
