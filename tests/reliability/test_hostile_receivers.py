"""Receivers that misbehave: bounded, logged with a clear error, retried, isolated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from router.models import Webhook
from router.settings import Settings
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    make_webhook,
    publish_events,
    wait_until,
)
from tests.receiver import Receiver
from tests.reliability.hostile import PATHS, HostileServer

EVENTS = 20
# What each misbehaviour must be logged as: fragments, one of which the error contains.
EXPECTED_ERROR = {
    "silent": ("timed out",),
    "trickle": ("timed out",),
    "huge": ("HTTP 500",),
    "redirect": ("HTTP 302",),
    "reset": ("reset by peer", "disconnected"),
    "garbage": ("invalid HTTP answer",),
}

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def test_misbehaving_receivers_are_bounded_logged_retried_and_isolated(
    settings: Settings, engine: Engine, receiver: Receiver, hostile: HostileServer
) -> None:
    # Given one healthy webhook and six hostile ones on the same event, a 2 s delivery
    # timeout, two retries, and a circuit breaker that stays out of the way
    settings = settings.model_copy(
        update={"delivery_timeout_s": 2.0, "circuit_failure_threshold": 1000}
    )
    declare_shared(settings)
    healthy = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    hooks: dict[str, Webhook] = {
        path: make_webhook(engine, settings, hostile.url(path), ["delivery.done"], name=path)
        for path in PATHS
    }
    worker = WorkerThread(settings, engine).start()
    try:
        # When events are published
        ids = publish_events(settings, EVENTS)

        # Then the healthy webhook gets every event while the hostile ones are still
        # being tried (the slow ones hold only their own prefetch)
        wait_until(lambda: set(receiver.delivered_ids()) == set(ids), 15, "healthy deliveries")
        healthy_rows = wait_until(
            lambda: len(rows := attempts(engine, healthy.id)) == EVENTS and rows, 15, "rows"
        )
        assert {r.outcome for r in healthy_rows} == {"delivered"}, [
            (r.error, r.duration_ms) for r in healthy_rows if r.outcome != "delivered"
        ]
        # And every hostile attempt ends: each event dead-lettered after 3 attempts
        for path, webhook in hooks.items():
            wait_until(
                lambda webhook=webhook: (
                    sum(r.outcome == "dead_lettered" for r in attempts(engine, webhook.id))
                    == EVENTS
                ),
                90,
                f"{path}: every event dead-lettered",
            )
    finally:
        worker.stop()

    report = []
    for path, webhook in hooks.items():
        rows = attempts(engine, webhook.id)
        outcomes = sorted({r.outcome for r in rows})
        report.append(f"{path}: {len(rows)} attempts {outcomes}, error {rows[-1].error!r}")
        assert len(rows) == EVENTS * 3, path
        assert all(r.status == "failed" and r.error for r in rows), path
        assert all(any(f in (r.error or "") for f in EXPECTED_ERROR[path]) for r in rows), path
        # Bounded: no attempt outlives the timeout by much, no excerpt beyond its limit
        assert max(r.duration_ms for r in rows) < 4000, path
        assert all(len(r.response_body or "") <= settings.response_excerpt_bytes for r in rows)
    print("\n".join(report))
    assert hostile.hits["redirect"] == EVENTS * 3
    assert hostile.hits.get("elsewhere", 0) == 0  # redirects are not followed
