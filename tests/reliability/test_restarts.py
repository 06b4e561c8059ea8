"""The broker restarted and the log database stopped mid-load: nothing lost, no manual restart.

These restart the machine's shared RabbitMQ application and PostgreSQL cluster, so they
run in the serial suite only (never beside other test runs on the same services).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from router.models import Webhook
from router.settings import Settings
from tests.helpers import (
    attempts,
    declare_shared,
    duplicates,
    make_webhook,
    publish_events,
    start_worker_process,
    wait_until,
)
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
    process = start_worker_process(
        settings,
        tmp_path / "worker.log",
        ROUTER_RETRY_SCHEDULE="0.5,0.5,0.5",
        ROUTER_RETRY_JITTER="0",
    )
    yield process
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def backlog_under_way(
    settings: Settings, engine: Engine, receiver: Receiver
) -> tuple[Webhook, list[str]]:
    """A webhook with EVENTS published to it, a third of them already delivered."""
    declare_shared(settings)
    receiver.delay_s = 0.01
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    ids = publish_events(settings, EVENTS)
    wait_until(lambda: len(receiver.requests) >= EVENTS // 3, 60, "a third delivered")
    return webhook, ids


def assert_all_delivered_and_logged(
    what: str,
    engine: Engine,
    receiver: Receiver,
    webhook: Webhook,
    ids: list[str],
    worker: subprocess.Popen[bytes],
) -> None:
    """Every event reaches the webhook, every request has its row, the worker still runs."""
    wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 90, "every event")
    wait_until(lambda: len(attempts(engine, webhook.id)) >= len(receiver.requests), 60, "every row")
    assert worker.poll() is None, "the worker exited"
    rows = attempts(engine, webhook.id)
    delivered, repeats = duplicates(receiver.delivered_ids())
    print(
        f"{what}: {len(delivered)} events delivered, {repeats} duplicate deliveries "
        f"(same webhook-id), {len(receiver.requests)} requests, {len(rows)} attempt rows"
    )
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
    assert len(rows) == len(receiver.requests)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_broker_restart_mid_load_loses_nothing(
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    worker: subprocess.Popen[bytes],
) -> None:
    # Given a worker delivering a backlog to a slowish endpoint
    webhook, ids = backlog_under_way(settings, engine, receiver)
    # When the broker application stops for 3 s and starts again
    run("rabbitmqctl", "-q", "stop_app")
    try:
        time.sleep(3)
    finally:
        run("rabbitmqctl", "-q", "start_app")
        run("rabbitmqctl", "-q", "await_startup")
    # Then the worker reconnects by itself and every event is delivered and logged
    assert_all_delivered_and_logged("broker restart", engine, receiver, webhook, ids, worker)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_stopped_mid_load_loses_nothing(
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    worker: subprocess.Popen[bytes],
) -> None:
    # Given a worker delivering a backlog, logged to PostgreSQL
    webhook, ids = backlog_under_way(settings, engine, receiver)
    # When PostgreSQL stops for 5 s (every connection dropped) and starts again
    cluster = postgres_cluster()
    run("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "stop", "-m", "fast")
    try:
        time.sleep(5)
        requests_while_down = len(receiver.requests)
    finally:
        run("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start")
    # Then, once it is back, every event is delivered and logged, without a restart
    what = f"PostgreSQL down 5 s ({requests_while_down} requests by then)"
    assert_all_delivered_and_logged(what, engine, receiver, webhook, ids, worker)
