"""Failure handling against the real broker: retries, dead letters, circuits, 410, orphans."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from consumers.hooks import WorkerHooks
from router.broker import BrokerAdmin
from router.models import Webhook
from router.settings import Settings
from router.topology import ORPHANED, dead_letter_queue, webhook_queue
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    make_webhook,
    publish_events,
    queue_depth,
    wait_until,
)
from tests.receiver import Receiver


@dataclass
class RecordingHooks(WorkerHooks):
    """Remembers what the worker reported, for assertions."""

    circuits: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    retries: list[float] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)

    def on_circuit(self, transition: str) -> None:
        self.circuits.append(transition)

    def on_dead_lettered(self, reason: str) -> None:
        self.dead_lettered.append(reason)

    def on_retry(self, scheduled_delay_s: float) -> None:
        self.retries.append(scheduled_delay_s)

    def on_queue_depths(self, backlog: int, deepest: int, dead_letters: int, orphaned: int) -> None:
        self.orphaned.append(orphaned)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


def start_worker(settings: Settings, engine: Engine, hooks: WorkerHooks, **overrides: object):
    declare_shared(settings)
    return WorkerThread(settings.model_copy(update=overrides), engine, hooks).start()


@pytest.fixture
def run_worker(settings: Settings, engine: Engine, hooks: RecordingHooks) -> Iterator:
    started: list[WorkerThread] = []

    def run(**overrides: object) -> WorkerThread:
        merged = settings.model_copy(update=overrides)
        worker = start_worker(merged, engine, hooks)
        started.append(worker)
        return worker

    yield run
    for worker in started:
        worker.stop()


def publish(settings: Settings, count: int = 1, event_type: str = "delivery.done") -> list[str]:
    return publish_events(settings, count, event_type)


def test_three_failures_then_success_is_one_delivery_after_three_retries(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker
) -> None:
    # Given an endpoint that fails each event three times, and four short retries
    receiver.fail_first(3)
    worker = run_worker(retry_schedule=(0.1, 0.1, 0.1, 0.1))
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When one event is published
    [event_id] = publish(settings)

    # Then it is delivered exactly once, on the fourth attempt, with one webhook-id
    wait_until(lambda: receiver.delivered_ids() == [event_id], 15, "one delivery")
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id] * 4
    rows = wait_until(
        lambda: len(attempts(engine, hook.id)) == 4 and attempts(engine, hook.id), 5, "four rows"
    )
    assert [r.attempt for r in rows] == [1, 2, 3, 4]
    assert [r.outcome for r in rows] == ["retrying"] * 3 + ["delivered"]
    assert [r.response_status for r in rows] == [503, 503, 503, 200]


def test_always_failing_ends_in_the_dead_letter_queue_with_its_history(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker, hooks: RecordingHooks
) -> None:
    # Given an endpoint that always fails and two retries
    receiver.status = 500
    worker = run_worker()
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When an event is published
    [event_id] = publish(settings)

    # Then after three attempts it is parked, the last row saying so
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, dead_letter_queue(hook.id)) == 1, 10, "parked")
    rows = wait_until(
        lambda: len(attempts(engine, hook.id)) == 3 and attempts(engine, hook.id), 5, "three rows"
    )
    assert rows[-1].outcome == "dead_lettered"
    assert hooks.dead_lettered == ["exhausted"]
    assert hooks.retries == [0.2, 0.4]
    assert queue_depth(amqp_url, webhook_queue(hook.id)) == 0
    assert receiver.delivered_ids() == []
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event_id}


def test_a_failing_webhook_does_not_disturb_a_healthy_one_on_the_same_event(
    settings: Settings, engine: Engine, run_worker
) -> None:
    # Given two webhooks on one event, one of which always fails
    with Receiver() as healthy, Receiver() as failing:
        failing.status = 502
        worker = run_worker()
        good = make_webhook(engine, settings, healthy.url, ["delivery.done"])
        bad = make_webhook(engine, settings, failing.url, ["delivery.done"])
        wait_until(lambda: worker.consumes(good.id) and worker.consumes(bad.id), 10, "consumers")

        # When the event is published and the failing one has used all its attempts
        [event_id] = publish(settings)
        amqp_url = settings.amqp_url.get_secret_value()
        wait_until(lambda: queue_depth(amqp_url, dead_letter_queue(bad.id)) == 1, 10, "parked")

        # Then the healthy one got exactly one copy, and the retries never reached it
        assert healthy.delivered_ids() == [event_id]
        assert len(healthy.requests) == 1
        assert len(failing.requests) == 3


def test_per_webhook_max_attempts(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker
) -> None:
    # Given a webhook allowed a single attempt
    receiver.status = 500
    worker = run_worker()
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"], max_attempts=1)
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")
    # When its only attempt fails
    publish(settings)
    # Then it is dead-lettered at once
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, dead_letter_queue(hook.id)) == 1, 10, "parked")
    rows = wait_until(lambda: attempts(engine, hook.id), 5, "the row")
    assert [r.outcome for r in rows] == ["dead_lettered"]
    assert len(receiver.requests) == 1


def test_retry_after_picks_a_tier_at_least_that_long(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker
) -> None:
    # Given tiers of 0.1 s and 2 s, and an endpoint asking to come back in 1 s
    receiver.responder = lambda _r: (429, {"retry-after": "1"})
    worker = run_worker(retry_schedule=(0.1, 2.0))
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")
    # When the first attempt is answered 429
    publish(settings)
    # Then the retry is scheduled in the 2 s tier, not the 0.1 s one
    [row] = wait_until(lambda: attempts(engine, hook.id), 10, "first row")
    assert row.outcome == "retrying"
    waited_s = (row.next_retry_at - row.created_at).total_seconds()
    assert waited_s == pytest.approx(2.0, abs=0.01)


def test_410_gone_disables_the_webhook_and_parks_the_message(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker, hooks: RecordingHooks
) -> None:
    # Given an endpoint that answers 410 Gone
    receiver.status = 410
    worker = run_worker()
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When an event is published
    publish(settings)

    # Then the webhook is disabled with the reason, the message parked, consuming stopped
    def disabled() -> Webhook | None:
        with Session(engine) as session:
            row = session.get(Webhook, hook.id)
            return row if row is not None and not row.enabled else None

    row = wait_until(disabled, 10, "webhook disabled")
    assert "410" in (row.disabled_reason or "")
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, dead_letter_queue(hook.id)) == 1, 10, "parked")
    wait_until(lambda: not worker.consumes(hook.id), 10, "consumer stopped")
    assert hooks.dead_lettered == ["gone"]
    # And its bindings are gone: a new event no longer reaches its queue
    publish(settings)
    assert queue_depth(amqp_url, webhook_queue(hook.id)) == 0
    assert len(receiver.requests) == 1


def test_circuit_opens_holds_messages_then_delivers_them_all_on_recovery(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker, hooks: RecordingHooks
) -> None:
    # Given a circuit that opens after 3 consecutive failures and probes after 1.5 s
    receiver.status = 503
    worker = run_worker(
        retry_schedule=(0.2, 0.2, 0.2, 0.2, 0.2, 0.2),
        circuit_failure_threshold=3,
        circuit_cooldown_s=1.5,
        prefetch_per_webhook=1,
    )
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When ten events are published to the failing endpoint
    ids = publish(settings, count=10)

    # Then the circuit opens and every message waits in the queue, attempts unburnt
    def circuit_state() -> str:
        with Session(engine) as session:
            return session.get(Webhook, hook.id).circuit_state

    wait_until(lambda: circuit_state() != "closed", 10, "circuit open")
    wait_until(lambda: not worker.consumes(hook.id), 5, "consumer paused")
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, webhook_queue(hook.id)) == 10, 10, "all queued")
    assert queue_depth(amqp_url, dead_letter_queue(hook.id)) == 0

    # When the endpoint recovers
    receiver.status = 200

    # Then a probe closes the circuit and all ten are delivered, each exactly once
    wait_until(lambda: sorted(receiver.delivered_ids()) == sorted(ids), 20, "all delivered")
    wait_until(lambda: circuit_state() == "closed", 5, "circuit closed")
    assert "opened" in hooks.circuits
    assert hooks.circuits[-1] == "closed"
    assert queue_depth(amqp_url, dead_letter_queue(hook.id)) == 0


def test_retries_of_a_deleted_webhook_land_in_the_orphan_queue(
    settings: Settings, engine: Engine, receiver: Receiver, run_worker, hooks: RecordingHooks
) -> None:
    # Given a failing webhook whose retry waits 1.5 s in a delay tier
    receiver.status = 500
    worker = run_worker(retry_schedule=(1.5,), reconcile_interval_s=0.5)
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")
    publish(settings)
    wait_until(lambda: attempts(engine, hook.id), 10, "first attempt")

    # When the webhook is deleted while its retry waits
    with Session(engine) as session:
        session.delete(session.get(Webhook, hook.id))
        session.commit()
    BrokerAdmin(settings.amqp_url.get_secret_value()).delete_webhook(hook.id)

    # Then the returning retry is not lost: it waits in router.orphaned, and is counted
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, ORPHANED) == 1, 10, "orphaned")
    wait_until(lambda: hooks.orphaned and hooks.orphaned[-1] == 1, 10, "orphan gauge")
    assert len(receiver.requests) == 1
