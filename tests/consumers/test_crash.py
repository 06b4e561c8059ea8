"""A worker process killed with SIGKILL loses nothing: delays live in the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine

from router.publisher import Publisher, new_event
from router.settings import Settings
from tests.helpers import declare_shared, make_webhook, wait_until
from tests.receiver import Receiver

EVENTS = 40


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ROUTER_DATABASE_URL": settings.database_url.get_secret_value(),
        "ROUTER_RETRY_SCHEDULE": "1.0,1.0",
        "ROUTER_RETRY_JITTER": "0",
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
        "ROUTER_PREFETCH_PER_WEBHOOK": "8",
        "ROUTER_CIRCUIT_FAILURE_THRESHOLD": "1000",  # every first attempt fails, by design
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "router.cli", "worker"], env=env, stdout=out, stderr=out
        )


def test_sigkill_mid_load_loses_nothing(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a slow endpoint that fails every event once, so that at any moment some
    # messages wait in delay tiers and some requests are in flight
    declare_shared(settings)
    receiver.fail_first(1)
    receiver.delay_s = 0.05
    make_webhook(engine, settings, receiver.url, ["delivery.done"])
    log = tmp_path / "worker.log"
    workers = [start_worker(settings, log)]
    try:
        ids = []
        with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
            for n in range(EVENTS):
                event = new_event("delivery.done", "acme", "paris", {"order": {"id": f"o{n}"}})
                publisher.publish(event)
                ids.append(event.id)

        # When the worker is killed with SIGKILL once retries wait and requests fly
        wait_until(lambda: len(receiver.requests) >= EVENTS // 2, 20, "half the first attempts")
        workers[0].send_signal(signal.SIGKILL)
        assert workers[0].wait(10) == -signal.SIGKILL
        killed_at = len(receiver.requests)

        # And a new worker starts
        workers.append(start_worker(settings, log))

        # Then every event is delivered; duplicates only ever repeat a webhook-id
        wait_until(lambda: set(receiver.delivered_ids()) == set(ids), 30, "every event delivered")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(30)
    delivered = Counter(receiver.delivered_ids())
    duplicates = sum(count - 1 for count in delivered.values())
    print(
        f"killed after {killed_at} requests; {len(delivered)} events delivered, "
        f"{duplicates} duplicate deliveries (same webhook-id)"
    )
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
