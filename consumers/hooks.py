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

    def on_queues_consumed(self, delta: int) -> None:
        metrics.CONSUMED_QUEUES.inc(delta)

    def on_log_batch(self, rows: int) -> None:
        metrics.LOG_BATCH_ROWS.observe(rows)

    def on_log_error(self) -> None:
        metrics.LOG_WRITE_ERRORS.inc()
