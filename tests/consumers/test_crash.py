"""A worker process killed with SIGKILL loses nothing: delays live in the broker."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from sqlalchemy import Engine

from router.settings import Settings
from tests.helpers import (
    declare_shared,
    duplicates,
    make_webhook,
    publish_events,
    start_worker_process,
    wait_until,
)
from tests.receiver import Receiver

EVENTS = 40


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return start_worker_process(
        settings,
        log,
        ROUTER_RETRY_SCHEDULE="1.0,1.0",
        ROUTER_RETRY_JITTER="0",
        ROUTER_PREFETCH_PER_WEBHOOK="8",
        ROUTER_CIRCUIT_FAILURE_THRESHOLD="1000",  # every first attempt fails, by design
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
        ids = publish_events(settings, EVENTS)

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
    delivered, repeats = duplicates(receiver.delivered_ids())
    print(
        f"killed after {killed_at} requests; {len(delivered)} events delivered, "
        f"{repeats} duplicate deliveries (same webhook-id)"
    )
    assert set(delivered) == set(ids)
    assert {r.headers["webhook-id"] for r in receiver.requests} == set(ids)
