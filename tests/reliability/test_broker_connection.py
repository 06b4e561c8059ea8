"""The worker's connection to RabbitMQ cut and restored mid-load: nothing lost, all logged."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import Engine

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
from tests.reliability.proxy import TcpProxy

EVENTS = 300
CUTS = 3

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def through(proxy: TcpProxy, amqp_url: str) -> str:
    """The same AMQP URL, pointed at the proxy."""
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


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
        worker = start_worker_process(
            settings,
            log,
            ROUTER_AMQP_URL=through(proxy, amqp_url),
            ROUTER_RETRY_SCHEDULE="0.5,0.5,0.5",
            ROUTER_RETRY_JITTER="0",
        )
        try:
            ids = publish_events(settings, EVENTS)

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
    delivered, repeats = duplicates(receiver.delivered_ids())
    print(
        f"{CUTS} cuts, {connections} broker connections; {len(delivered)} events delivered, "
        f"{repeats} duplicate deliveries (same webhook-id), {len(receiver.requests)} "
        f"requests, {len(rows)} attempt rows"
    )
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
    assert len(rows) == len(receiver.requests)
    assert {row.event_id for row in rows if row.status == "succeeded"} == set(ids)
    assert connections > CUTS, "the worker reconnected after each cut"
