"""Soak: a steady stream with 10% failing deliveries for 10 minutes (``make test-slow``).

Every process of ``serve`` is sampled for memory (VmRSS) and open file descriptors; after
the stream, every event must reach both webhooks and every queue must drain to zero.
``WR_SOAK_S`` (600) and ``WR_SOAK_RATE`` (events/s, 50) change the length and the pace.
"""

from __future__ import annotations

import hashlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pika
import pytest
from sqlalchemy import Engine

from router.publisher import Publisher, new_event
from router.settings import Settings
from router.topology import delay_queue, delay_tiers_ms, webhook_queue
from tests.helpers import declare_shared, make_webhook, queue_depth, wait_until
from tests.receiver import Received, Receiver

SOAK_S = float(os.environ.get("WR_SOAK_S", "600"))
RATE = float(os.environ.get("WR_SOAK_RATE", "50"))
SAMPLE_EVERY_S = 5.0
SCHEDULE = (0.5, 1.0, 2.0)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(SOAK_S + 600),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def fails_first_time(event_id: str) -> bool:
    """One event in ten fails its first attempt (stable per event, whatever the order)."""
    return hashlib.sha256(event_id.encode()).digest()[0] % 10 == 0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += tree(int(child))
    return found


def consumers(amqp_url: str, queue: str) -> int:
    """Consumers of ``queue`` (passive declare)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    finally:
        connection.close()


def sample(pid: int) -> tuple[float, int] | None:
    """(RSS in MiB, open file descriptors) of a live process, None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kib / 1024, fds


def test_soak_keeps_memory_and_descriptors_flat_and_drains(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given `serve` with one worker, two webhooks on delivery.done, and a receiver that
    # fails the first attempt of one event in ten
    declare_shared(settings.model_copy(update={"retry_schedule": SCHEDULE}))
    hooks = [
        make_webhook(engine, settings, receiver.url + f"/{n}", ["delivery.done"]) for n in (1, 2)
    ]
    seen: set[tuple[str, str]] = set()
    delivered: set[tuple[str, str]] = set()  # (path, webhook-id) answered 200

    def respond(request: Received) -> tuple[int, dict[str, str]]:
        key = (request.path, request.headers.get("webhook-id", ""))
        first = key not in seen
        seen.add(key)
        if first and fails_first_time(key[1]):
            return 500, {}
        delivered.add(key)
        return 200, {}

    receiver.responder = respond
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ROUTER_DATABASE_URL": settings.database_url.get_secret_value(),
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
        "ROUTER_RETRY_SCHEDULE": ",".join(str(s) for s in SCHEDULE),
        "ROUTER_RETRY_JITTER": "0",
        "ROUTER_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--port", "0"],
        env=env,
        stdout=log,
        stderr=log,
    )
    samples: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    names: dict[int, str] = {}
    stop_sampling = threading.Event()

    def sampler() -> None:
        started = time.monotonic()
        while not stop_sampling.wait(SAMPLE_EVERY_S):
            for pid in tree(serve.pid):
                found = sample(pid)
                if found is not None:
                    names.setdefault(pid, _name(pid))
                    samples[pid].append((time.monotonic() - started, *found))

    ids: list[str] = []
    try:
        amqp_url = settings.amqp_url.get_secret_value()
        queues = [webhook_queue(h.id) for h in hooks]
        wait_until(lambda: all(consumers(amqp_url, q) == 1 for q in queues), 30, "consumers")
        threading.Thread(target=sampler, daemon=True).start()
        # When events are published at a steady pace for the soak's length
        with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < SOAK_S:
                event = new_event("delivery.done", "acme", "paris", {"order": {"id": "o"}})
                publisher.publish(event)
                ids.append(event.id)
                time.sleep(max(0.0, len(ids) / RATE - elapsed))
        # Then every event reaches both webhooks and every queue drains to zero
        expected = {(f"/{n}", i) for n in (1, 2) for i in ids}
        wait_until(lambda: expected <= delivered, 120, "every delivery")
        queues += [delay_queue(ms) for ms in delay_tiers_ms(SCHEDULE, 0.0)]
        wait_until(lambda: all(queue_depth(amqp_url, q) == 0 for q in queues), 60, "drained")
        assert serve.poll() is None, "serve exited during the soak"
    finally:
        stop_sampling.set()
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        log.close()

    # And memory and descriptors stay flat: the last fifth against the second fifth
    failed_first = sum(fails_first_time(i) for i in ids)
    print(
        f"\nsoak {SOAK_S:g} s at {RATE:g} events/s x 2 webhooks: {len(ids)} events, "
        f"{len(ids) * 2} deliveries, {failed_first * 2} failed first attempts "
        f"({100 * failed_first / len(ids):.1f}%), {len(receiver.requests)} requests; queues drained"
    )
    for pid, rows in samples.items():
        if len(rows) < 10:
            continue
        fifth = len(rows) // 5
        early, late = rows[fifth : 2 * fifth], rows[-fifth:]
        rss_early = statistics.median(r[1] for r in early)
        rss_late = statistics.median(r[1] for r in late)
        fds_early, fds_late = max(r[2] for r in early), max(r[2] for r in late)
        print(
            f"  {names[pid]} (pid {pid}): RSS {rows[0][1]:.1f} MiB at {rows[0][0]:.0f} s, median "
            f"{rss_early:.1f} (2nd fifth) -> {rss_late:.1f} (last fifth), max "
            f"{max(r[1] for r in rows):.1f}; fds {rows[0][2]} -> {fds_early} -> {fds_late}"
        )
        assert rss_late - rss_early < max(10.0, rss_early * 0.1), f"pid {pid} memory grew"
        assert fds_late <= fds_early + 5, f"pid {pid} descriptors grew"


def _name(pid: int) -> str:
    """The router command a process runs (``serve``, ``worker``), from its command line."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    return next((a.decode() for a in args if a in (b"serve", b"worker", b"api")), "?")
