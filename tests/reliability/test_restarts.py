"""The broker restarted and the log database stopped mid-load: nothing lost, no manual restart.

These restart the machine's shared RabbitMQ application and PostgreSQL cluster, so they
run in the serial suite only (never beside other test runs on the same services).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from router.publisher import Publisher, new_event
from router.settings import Settings
from tests.helpers import attempts, declare_shared, make_webhook, wait_until
from tests.receiver import Receiver

EVENTS = 300


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def postgres_cluster() -> str:
    """The version directory of the local PostgreSQL cluster (e.g. ``15``)."""
    return sorted(os.listdir("/etc/postgresql"))[-1]


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on the test vhost and database."""
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ROUTER_DATABASE_URL": settings.database_url.get_secret_value(),
        "ROUTER_RETRY_SCHEDULE": "0.5,0.5,0.5",
        "ROUTER_RETRY_JITTER": "0",
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with (tmp_path / "worker.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "worker"], env=env, stdout=log, stderr=log
        )
    yield process
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def publish(settings: Settings, count: int) -> list[str]:
    ids = []
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        for n in range(count):
            event = new_event("delivery.done", "acme", "paris", {"order": {"id": f"o{n}"}})
            publisher.publish(event)
            ids.append(event.id)
    return ids


def report(what: str, receiver: Receiver, rows: int) -> Counter[str]:
    delivered = Counter(receiver.delivered_ids())
    duplicates = sum(count - 1 for count in delivered.values())
    print(
        f"{what}: {len(delivered)} events delivered, {duplicates} duplicate deliveries "
        f"(same webhook-id), {len(receiver.requests)} requests, {rows} attempt rows"
    )
    return delivered


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_broker_restart_mid_load_loses_nothing(
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    worker: subprocess.Popen[bytes],
) -> None:
    # Given a worker delivering a backlog to a slowish endpoint
    declare_shared(settings)
    receiver.delay_s = 0.01
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    ids = publish(settings, EVENTS)
    wait_until(lambda: len(receiver.requests) >= EVENTS // 3, 60, "a third delivered")
    # When the broker application stops for 3 s and starts again
    run("rabbitmqctl", "-q", "stop_app")
    try:
        time.sleep(3)
    finally:
        run("rabbitmqctl", "-q", "start_app")
        run("rabbitmqctl", "-q", "await_startup")
    # Then the worker reconnects by itself and every event is delivered and logged
    wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 90, "every event")
    wait_until(lambda: len(attempts(engine, webhook.id)) >= len(receiver.requests), 30, "every row")
    assert worker.poll() is None, "the worker exited"
    rows = attempts(engine, webhook.id)
    delivered = report("broker restart", receiver, len(rows))
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
    assert len(rows) == len(receiver.requests)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_stopped_mid_load_loses_nothing(
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    worker: subprocess.Popen[bytes],
) -> None:
    # Given a worker delivering a backlog, logged to PostgreSQL
    declare_shared(settings)
    receiver.delay_s = 0.01
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    ids = publish(settings, EVENTS)
    wait_until(lambda: len(receiver.requests) >= EVENTS // 3, 60, "a third delivered")
    # When PostgreSQL stops for 5 s (every connection dropped) and starts again
    cluster = postgres_cluster()
    run("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "stop", "-m", "fast")
    try:
        time.sleep(5)
        requests_while_down = len(receiver.requests)
    finally:
        run("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start")
    # Then deliveries waited for the database (at most one prefetch went out unlogged),
    # and after it is back every event is delivered and logged, without a restart
    wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 90, "every event")
    wait_until(lambda: len(attempts(engine, webhook.id)) >= len(receiver.requests), 60, "every row")
    assert worker.poll() is None, "the worker exited"
    rows = attempts(engine, webhook.id)
    delivered = report(
        f"PostgreSQL down 5 s ({requests_while_down} requests by then)", receiver, len(rows)
    )
    assert set(delivered) == set(ids)
    assert len(rows) == len(receiver.requests)
