"""Test helpers: a worker running in a background thread, webhooks made directly in the DB."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from consumers.hooks import WorkerHooks
from consumers.signing import generate_secret
from consumers.worker import Worker
from router.broker import BrokerAdmin
from router.models import DeliveryAttempt, Webhook, new_id
from router.publisher import Publisher, new_event
from router.settings import Settings
from router.topology import binding_keys, shared_topology, webhook_topology


class WorkerThread:
    """Runs a real Worker on its own event loop in a thread; ``stop`` drains it."""

    def __init__(self, settings: Settings, engine: Engine, hooks: WorkerHooks | None = None):
        self.worker = Worker(settings, engine, hooks or WorkerHooks())
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.worker.run(self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self._loop.close()

    def start(self, timeout_s: float = 15) -> WorkerThread:
        self._thread.start()
        wait_until(lambda: self.worker.ready.is_set(), timeout_s, "worker ready")
        return self

    def consumes(self, webhook_id: str) -> bool:
        return webhook_id in self.worker.consumed_webhooks()

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until truthy; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def declare_shared(settings: Settings) -> BrokerAdmin:
    """Declare the shared topology on the test vhost; returns the admin client."""
    admin = BrokerAdmin(settings.amqp_url.get_secret_value())
    admin.apply(
        shared_topology(
            settings.exchange,
            settings.retry_schedule,
            settings.retry_jitter,
            settings.shared_queues_type,
        )
    )
    return admin


def make_webhook(
    engine: Engine,
    settings: Settings,
    url: str,
    events: Iterable[str],
    sites: Iterable[str] = (),
    account_id: str = "acme",
    **fields: Any,
) -> Webhook:
    """Insert a webhook and declare its queue and bindings, as the API does."""
    webhook = Webhook(
        id=new_id("wh"),
        account_id=account_id,
        name=fields.pop("name", "test hook"),
        url=url,
        auth_mode=fields.pop("auth_mode", "none"),
        auth_credentials=fields.pop("auth_credentials", {}),
        secret=generate_secret(),
        events=list(events),
        sites=list(sites),
        include_order=fields.pop("include_order", False),
        enabled=fields.pop("enabled", True),
        **fields,
    )
    with Session(engine, expire_on_commit=False) as session:
        session.add(webhook)
        session.commit()
    keys = binding_keys(account_id, webhook.events, webhook.sites) if webhook.enabled else ()
    BrokerAdmin(settings.amqp_url.get_secret_value()).apply(
        webhook_topology(settings.exchange, webhook.id, keys, settings.queue_type)
    )
    return webhook


def attempts(engine: Engine, webhook_id: str | None = None) -> list[DeliveryAttempt]:
    """Attempt rows, oldest first."""
    with Session(engine) as session:
        query = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
        if webhook_id is not None:
            query = query.where(DeliveryAttempt.webhook_id == webhook_id)
        return list(session.scalars(query))


def count_attempts(engine: Engine) -> int:
    """How many attempt rows exist."""
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryAttempt)) or 0)


def queue_depth(amqp_url: str, queue: str) -> int:
    """Ready messages in ``queue`` (passive declare)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        frame = connection.channel().queue_declare(queue, passive=True)
        return int(frame.method.message_count)
    finally:
        connection.close()


def publish_raw(
    amqp_url: str,
    exchange: str,
    routing_key: str,
    body: bytes,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish arbitrary bytes, as a misbehaving upstream would."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange, routing_key, body, pika.BasicProperties(delivery_mode=2, headers=headers)
        )
    finally:
        connection.close()


def publish_events(
    settings: Settings, count: int, event_type: str = "delivery.done", site: str = "paris"
) -> list[str]:
    """Publish ``count`` events of acme at ``site``, each confirmed; their ids in order."""
    ids = []
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        for n in range(count):
            event = new_event(event_type, "acme", site, {"order": {"id": f"o{n}"}})
            publisher.publish(event)
            ids.append(event.id)
    return ids


def start_worker_process(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``worker`` process on the test's vhost and database; ``env`` adds ROUTER_* values."""
    environment = {
        **os.environ,
        "ROUTER_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ROUTER_DATABASE_URL": settings.database_url.get_secret_value(),
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
        **env,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli", "worker"], env=environment, stdout=out, stderr=out
        )


def duplicates(delivered_ids: Iterable[str]) -> tuple[Counter[str], int]:
    """Deliveries per event id, and how many were repeats."""
    counts = Counter(delivered_ids)
    return counts, sum(n - 1 for n in counts.values())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
