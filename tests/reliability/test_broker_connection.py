"""The worker's connection to RabbitMQ cut and restored mid-load: nothing lost, all logged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import Engine

from router.publisher import Publisher, new_event
from router.settings import Settings
from tests.helpers import attempts, declare_shared, make_webhook, wait_until
from tests.receiver import Receiver
from tests.reliability.proxy import TcpProxy

EVENTS = 300
CUTS = 3

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def through(proxy: TcpProxy, amqp_url: str) -> str:
    """The same AMQP URL, pointed at the proxy."""
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def start_worker(settings: Settings, amqp_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": amqp_url,
        "ROUTER_DATABASE_URL": settings.database_url.get_secret_value(),
        "ROUTER_RETRY_SCHEDULE": "0.5,0.5,0.5",
        "ROUTER_RETRY_JITTER": "0",
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli", "worker"], env=env, stdout=out, stderr=out
        )


def test_connection_cut_and_restored_mid_load_loses_nothing(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a worker whose only path to RabbitMQ is a proxy, and a slowish endpoint so
    # that requests are in flight whenever the connection drops
    amqp_url = settings.amqp_url.get_secret_value()
    declare_shared(settings)
    receiver.delay_s = 0.01
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    log = tmp_path / "worker.log"
    with TcpProxy("127.0.0.1", urlsplit(amqp_url).port or 5672) as proxy:
        worker = start_worker(settings, through(proxy, amqp_url), log)
        try:
            ids = []
            with Publisher(amqp_url, settings.exchange) as publisher:
                for n in range(EVENTS):
                    event = new_event("delivery.done", "acme", "paris", {"order": {"id": f"o{n}"}})
                    publisher.publish(event)
                    ids.append(event.id)

            # When the connection is reset three times during the load, down 1 s each time
            for cut in range(CUTS):
                wait_until(
                    lambda cut=cut: len(receiver.requests) >= (cut + 1) * EVENTS // (CUTS + 1),
                    60,
                    f"deliveries before cut {cut + 1}",
                )
                proxy.cut()
                time.sleep(1.0)
                proxy.restore()

            # Then every event reaches the webhook, with nobody restarting anything
            wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 60, "every event")
            # And every request the receiver saw has its attempt row
            wait_until(
                lambda: len(attempts(engine, webhook.id)) >= len(receiver.requests),
                30,
                "every attempt logged",
            )
            assert worker.poll() is None, "the worker exited"
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        connections = proxy.connections
    rows = attempts(engine, webhook.id)
    delivered = Counter(receiver.delivered_ids())
    duplicates = sum(count - 1 for count in delivered.values())
    print(
        f"{CUTS} cuts, {connections} broker connections; {len(delivered)} events delivered, "
        f"{duplicates} duplicate deliveries (same webhook-id), {len(receiver.requests)} "
        f"requests, {len(rows)} attempt rows"
    )
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
    assert len(rows) == len(receiver.requests)
    assert {row.event_id for row in rows if row.status == "succeeded"} == set(ids)
    assert connections > CUTS, "the worker reconnected after each cut"
