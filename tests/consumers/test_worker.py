"""The worker against the real broker, a real database and real HTTP receivers."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as StandardWebhook

from router.models import Webhook
from router.publisher import Publisher, new_event
from router.settings import Settings
from router.topology import INVALID_QUEUE, dead_letter_queue
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    make_webhook,
    publish_raw,
    queue_depth,
    wait_until,
)
from tests.receiver import Receiver

ORDER = {
    "id": "ord_1",
    "reference": "REF-1",
    "status": "done",
    "site_id": "paris",
    "route_id": "rt_9",
    "planned_date": "2026-11-27",
    "customer": {"name": "Ada", "phone": "+33 1 23 45 67 89"},
}


@pytest.fixture
def worker(settings: Settings, engine: Engine) -> Iterator[WorkerThread]:
    declare_shared(settings)
    thread = WorkerThread(settings, engine).start()
    yield thread
    thread.stop()


def publish(settings: Settings, event_type: str, site: str = "paris", account: str = "acme"):
    event = new_event(event_type, account, site, {"order": ORDER, "route": {"id": "rt_9"}})
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        publisher.publish(event)
    return event


def test_delivers_signed_summary_and_logs_it(
    settings: Settings, engine: Engine, worker: WorkerThread, receiver: Receiver
) -> None:
    # Given a webhook on delivery.done for site paris, with bearer auth
    hook = make_webhook(
        engine,
        settings,
        receiver.url + "/hook",
        ["delivery.done"],
        ["paris"],
        auth_mode="bearer",
        auth_credentials={"token": "t0k3n"},
    )
    wait_until(lambda: worker.consumes(hook.id), 10, "worker consuming the new webhook")

    # When an event is published
    event = publish(settings, "delivery.done")

    # Then the receiver gets one POST that verifies with the Standard Webhooks library
    [got] = receiver.wait_for(1)
    assert got.path == "/hook"
    assert got.headers["authorization"] == "Bearer t0k3n"
    assert got.headers["webhook-id"] == event.id
    assert got.headers["user-agent"].startswith("webhook-router/")
    payload = StandardWebhook(hook.secret).verify(got.body, got.headers)
    assert payload["type"] == "delivery.done"
    assert payload["id"] == event.id
    assert payload["data"]["order"] == {k: ORDER[k] for k in ORDER if k != "customer"}
    # And the attempt is logged as succeeded, credentials redacted
    [row] = wait_until(lambda: attempts(engine, hook.id), 5, "attempt row")
    assert (row.status, row.outcome, row.attempt, row.response_status) == (
        "succeeded",
        "delivered",
        1,
        200,
    )
    assert row.event_id == event.id
    assert row.request_headers["authorization"] == "[redacted]"
    assert "t0k3n" not in orjson.dumps(row.request_headers).decode()


def test_include_order_sends_the_whole_order(
    settings: Settings, engine: Engine, worker: WorkerThread, receiver: Receiver
) -> None:
    # Given a webhook that asked for the whole work order, on every site
    hook = make_webhook(engine, settings, receiver.url, ["route.started"], include_order=True)
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When events of two sites are published
    publish(settings, "route.started", site="paris")
    publish(settings, "route.started", site="lyon")

    # Then both arrive with the full order
    got = receiver.wait_for(2)
    assert sorted(r.json()["site_id"] for r in got) == ["lyon", "paris"]
    assert all(r.json()["data"]["order"] == ORDER for r in got)


def test_failures_retry_through_delay_tiers_then_dead_letter(
    settings: Settings, engine: Engine, worker: WorkerThread, receiver: Receiver
) -> None:
    # Given an endpoint that always fails (schedule 0.2 s, 0.4 s: three attempts)
    receiver.status = 503
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")

    # When an event is published
    event = publish(settings, "delivery.done")

    # Then it is tried three times with the same webhook-id, then parked
    got = receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in got} == {event.id}
    amqp_url = settings.amqp_url.get_secret_value()
    wait_until(lambda: queue_depth(amqp_url, dead_letter_queue(hook.id)) == 1, 10, "dead letter")
    rows = wait_until(
        lambda: len(attempts(engine, hook.id)) == 3 and attempts(engine, hook.id), 5, "three rows"
    )
    assert [r.attempt for r in rows] == [1, 2, 3]
    assert [r.outcome for r in rows] == ["retrying", "retrying", "dead_lettered"]
    assert all(r.status == "failed" and r.response_status == 503 for r in rows)
    assert len(receiver.requests) == 3


def test_invalid_messages_are_quarantined_and_worker_carries_on(
    settings: Settings, engine: Engine, worker: WorkerThread, receiver: Receiver
) -> None:
    # Given a webhook on every delivery.done of acme
    hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    wait_until(lambda: worker.consumes(hook.id), 10, "consumer")
    amqp_url = settings.amqp_url.get_secret_value()
    key = "acme.paris.delivery.done"

    # When garbage, a half envelope, an unknown type and a huge body are published
    publish_raw(amqp_url, settings.exchange, key, b"{not json")
    publish_raw(amqp_url, settings.exchange, key, b'{"id": "e1"}')
    unknown = {
        "id": "e2",
        "type": "delivery.nope",
        "occurred_at": "2026-11-27T18:00:00Z",
        "account_id": "acme",
        "site_id": "paris",
        "data": {},
    }
    publish_raw(amqp_url, settings.exchange, key, orjson.dumps(unknown))
    publish_raw(amqp_url, settings.exchange, key, b"x" * (settings.max_event_bytes + 1))
    # and then a valid event
    event = publish(settings, "delivery.done")

    # Then the valid one is delivered and the four bad ones wait in events.invalid
    [got] = receiver.wait_for(1)
    assert got.headers["webhook-id"] == event.id
    wait_until(lambda: queue_depth(amqp_url, INVALID_QUEUE) == 4, 10, "4 quarantined")
    wait_until(lambda: len(attempts(engine, hook.id)) == 1, 5, "one attempt row")


def test_worker_follows_webhook_changes_live_through_control_notices(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    # Given a worker whose periodic reconcile is too slow to matter in this test
    admin = declare_shared(settings)
    slow = settings.model_copy(update={"reconcile_interval_s": 300.0})
    worker = WorkerThread(slow, engine).start()
    try:
        # When a webhook is created and announced on the control exchange
        hook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
        admin.notify(hook.id)
        # Then the running worker starts consuming it and delivers
        wait_until(lambda: worker.consumes(hook.id), 5, "consumer started by the notice")
        publish(settings, "delivery.done")
        receiver.wait_for(1)

        # When it is disabled and announced
        with Session(engine) as session:
            session.get(Webhook, hook.id).enabled = False
            session.commit()
        admin.notify(hook.id)
        # Then the worker stops consuming it
        wait_until(lambda: not worker.consumes(hook.id), 5, "consumer stopped by the notice")

        # When it is enabled again and then its queue is deleted under the worker
        with Session(engine) as session:
            session.get(Webhook, hook.id).enabled = True
            session.commit()
        admin.notify(hook.id)
        wait_until(lambda: worker.consumes(hook.id), 5, "consumer restarted")
        with Session(engine) as session:
            session.delete(session.get(Webhook, hook.id))
            session.commit()
        admin.delete_webhook(hook.id)
        # Then the broker's cancel is handled and the worker keeps running
        wait_until(lambda: not worker.consumes(hook.id), 5, "consumer cancelled by the broker")
        assert worker.worker.ready.is_set()
    finally:
        worker.stop()
