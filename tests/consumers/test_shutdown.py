"""SIGTERM to a worker process: it stops consuming, lets in-flight deliveries finish and be
logged up to ROUTER_SHUTDOWN_GRACE_S, and leaves everything else in its queue."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import Engine

from router.models import Webhook
from router.settings import Settings
from router.topology import webhook_queue
from tests.helpers import (
    attempts,
    declare_shared,
    duplicates,
    make_webhook,
    publish_events,
    queue_depth,
    start_worker_process,
    wait_until,
)
from tests.receiver import Receiver

EVENTS = 40
PREFETCH = 8

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class InFlight(NamedTuple):
    """A worker process holding PREFETCH deliveries in flight, the rest of EVENTS queued."""

    worker: subprocess.Popen[bytes]
    webhook: Webhook
    ids: list[str]
    log: Path


def worker_with_deliveries_in_flight(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path, grace_s: str
) -> InFlight:
    declare_shared(settings)
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    log = tmp_path / "worker.log"
    worker = start_worker_process(
        settings, log, ROUTER_PREFETCH_PER_WEBHOOK=str(PREFETCH), ROUTER_SHUTDOWN_GRACE_S=grace_s
    )
    amqp_url = settings.amqp_url.get_secret_value()
    try:
        ids = publish_events(settings, EVENTS)
        wait_until(
            lambda: queue_depth(amqp_url, webhook_queue(webhook.id)) == EVENTS - PREFETCH,
            20,
            "in flight",
        )
    except BaseException:
        worker.kill()
        raise
    return InFlight(worker, webhook, ids, log)


@contextmanager
def successor_worker(settings: Settings, log: Path) -> Iterator[None]:
    """A fresh worker process for what the stopped one left, stopped on leaving."""
    successor = start_worker_process(settings, log)
    try:
        yield
    finally:
        successor.send_signal(signal.SIGTERM)
        successor.wait(30)


def test_sigterm_finishes_in_flight_deliveries_and_leaves_the_rest_queued(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a worker with PREFETCH deliveries in flight to a slow endpoint and the rest
    # of the events still queued
    receiver.delay_s = 1.0
    worker, webhook, ids, log = worker_with_deliveries_in_flight(
        settings, engine, receiver, tmp_path, grace_s="20"
    )
    queue = webhook_queue(webhook.id)
    amqp_url = settings.amqp_url.get_secret_value()
    try:
        # When the worker is told to stop
        worker.send_signal(signal.SIGTERM)

        # Then it exits cleanly once the requests it had sent are answered
        assert worker.wait(30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    # And each of those requests was answered and logged
    assert len(receiver.requests) == PREFETCH
    rows = attempts(engine, webhook.id)
    assert sorted(row.event_id for row in rows) == sorted(receiver.delivered_ids())
    assert all(row.status == "succeeded" for row in rows)
    # And nothing else was taken: the other events wait in the queue, none acked unsent
    assert queue_depth(amqp_url, queue) == EVENTS - PREFETCH

    # When another worker starts
    receiver.delay_s = 0
    with successor_worker(settings, log):
        wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 30, "every event")
        wait_until(lambda: len(attempts(engine, webhook.id)) == EVENTS, 10, "every row")
    # Then every event is delivered exactly once: the graceful stop left no duplicates
    _, repeats = duplicates(receiver.delivered_ids())
    assert repeats == 0
    assert len(receiver.requests) == EVENTS


def test_deliveries_still_running_at_the_deadline_are_left_for_redelivery(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a worker with a short grace period and deliveries to an endpoint that takes
    # longer than that to answer
    receiver.delay_s = 4.0
    worker, webhook, ids, log = worker_with_deliveries_in_flight(
        settings, engine, receiver, tmp_path, grace_s="0.5"
    )
    queue = webhook_queue(webhook.id)
    amqp_url = settings.amqp_url.get_secret_value()
    try:
        # When the worker is told to stop
        worker.send_signal(signal.SIGTERM)

        # Then it gives up on them at the deadline and exits cleanly
        assert worker.wait(30) == 0, log.read_text()
        answered_before_exit = len(receiver.requests)
    finally:
        if worker.poll() is None:
            worker.kill()
    # And none of them was acked: every event is back in the queue
    assert answered_before_exit == 0
    wait_until(lambda: queue_depth(amqp_url, queue) == EVENTS, 10, "messages requeued")
    assert attempts(engine, webhook.id) == []

    # When another worker starts
    receiver.delay_s = 0
    with successor_worker(settings, log):
        wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 30, "every event")
    # Then every event is delivered; the abandoned requests are the only repeats, under
    # the same webhook-id, as at-least-once delivery promises
    delivered, repeats = duplicates(receiver.delivered_ids())
    assert set(delivered) == set(ids)
    assert repeats <= PREFETCH
    assert {row.event_id for row in attempts(engine, webhook.id)} == set(ids)
