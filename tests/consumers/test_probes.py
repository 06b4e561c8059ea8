"""A standalone worker's /healthz, /readyz and /metrics on ROUTER_METRICS_PORT, answered
while its broker or database is cut off (through a TCP proxy) and after they return."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import Engine

from router.settings import Settings
from tests.helpers import (
    declare_shared,
    free_port,
    make_webhook,
    publish_events,
    start_worker_process,
)
from tests.helpers import wait_until as wait_for
from tests.receiver import Receiver
from tests.reliability.proxy import TcpProxy


def through(proxy: TcpProxy, url: str) -> str:
    """The same URL, its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


def get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def readiness(port: int) -> tuple[int, Any]:
    try:
        response = get(port, "/readyz")
    except httpx.TransportError:
        return 0, None
    return response.status_code, response.json()


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", urlsplit(settings.amqp_url.get_secret_value()).port or 5672) as p:
        yield p


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_serves_metrics_and_is_ready_only_while_consuming(
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    broker_proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    # Given a worker with a metrics port, reaching RabbitMQ through a proxy
    declare_shared(settings)
    make_webhook(engine, settings, receiver.url, ["delivery.done"])
    port = free_port()
    log = tmp_path / "worker.log"
    amqp_url = through(broker_proxy, settings.amqp_url.get_secret_value())
    worker = start_worker_process(
        settings, log, ROUTER_AMQP_URL=amqp_url, ROUTER_METRICS_PORT=str(port)
    )
    try:
        # When it has connected and a delivery went through
        wait_for(lambda: readiness(port)[0] == 200, 20, "ready")
        publish_events(settings, 3)
        wait_for(lambda: len(receiver.delivered_ids()) == 3, 20, "deliveries")

        # Then it is alive, ready, and its metrics count the deliveries
        assert get(port, "/healthz").json() == {"status": "ok"}
        assert readiness(port) == (200, {"status": "ready", "database": "ok", "broker": "ok"})
        metrics = get(port, "/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert (
            'webhook_router_deliveries_total{event_type="delivery.done",outcome="delivered"} 3.0'
            in metrics.text
        )

        # When the broker becomes unreachable
        broker_proxy.cut()

        # Then the worker stays alive but says it is not ready, and why
        wait_for(lambda: readiness(port)[0] == 503, 20, "not ready")
        assert readiness(port)[1] == {
            "status": "unavailable",
            "database": "ok",
            "broker": "unavailable",
        }
        assert get(port, "/healthz").status_code == 200

        # When the broker is back
        broker_proxy.restore()

        # Then the worker reconnects and is ready again
        wait_for(lambda: readiness(port)[0] == 200, 30, "ready again")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_is_not_ready_while_its_database_is_unreachable(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # Given a worker reaching PostgreSQL through a proxy
    database_url = settings.database_url.get_secret_value()
    port = free_port()
    log = tmp_path / "worker.log"
    with TcpProxy("127.0.0.1", urlsplit(database_url).port or 5432) as proxy:
        worker = start_worker_process(
            settings,
            log,
            ROUTER_DATABASE_URL=through(proxy, database_url),
            ROUTER_METRICS_PORT=str(port),
        )
        try:
            wait_for(lambda: readiness(port)[0] == 200, 20, "ready")

            # When the database becomes unreachable
            proxy.cut()

            # Then the worker says it is not ready because of the database
            wait_for(lambda: readiness(port)[0] == 503, 20, "not ready")
            assert readiness(port)[1] == {
                "status": "unavailable",
                "database": "unavailable",
                "broker": "ok",
            }

            # When it is back
            proxy.restore()

            # Then the worker is ready again, never having exited
            wait_for(lambda: readiness(port)[0] == 200, 20, "ready again")
            assert worker.poll() is None
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
