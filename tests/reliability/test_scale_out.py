"""Scale-out on one machine: several worker processes share quorum queues; one is killed,
one leaves gracefully, one joins, all under load. Nothing is lost, every attempt is logged."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from router.publisher import Publisher, new_event
from router.settings import Settings
from router.topology import (
    INVALID_QUEUE,
    dead_letter_queue,
    delay_queue,
    delay_tiers_ms,
    webhook_queue,
)
from tests.helpers import (
    attempts,
    declare_shared,
    free_port,
    make_webhook,
    queue_depth,
    start_worker_process,
    wait_until,
)
from tests.receiver import Received, Receiver

WEBHOOKS = 8
EVENTS = 300
PUBLISH_RATE = 60  # events/s: the load lasts 5 s, long enough for workers to come and go
SCHEDULE = "0.2,0.4,0.8"

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def delivered_by(port: int) -> float:
    """Deliveries a worker counted, read from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "webhook_router_deliveries"
        for sample in family.samples
        if sample.name == "webhook_router_deliveries_total"
        and sample.labels["outcome"] == "delivered"
    )


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).is_success
    except httpx.TransportError:
        return False


def queue_types(amqp_url: str) -> dict[str, str]:
    """Every queue of the test's vhost and its type, as RabbitMQ reports it."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type", "--formatter", "json"],
        check=True,
        capture_output=True,
    ).stdout
    return {queue["name"]: queue["type"] for queue in orjson.loads(listing)}


def publish_paced(settings: Settings, ids: list[str]) -> None:
    """Publish EVENTS events at PUBLISH_RATE, appending each id once confirmed."""
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        started = time.monotonic()
        for n in range(EVENTS):
            time.sleep(max(0.0, started + n / PUBLISH_RATE - time.monotonic()))
            event = new_event("delivery.done", "acme", "paris", {"order": {"id": f"o{n}"}})
            publisher.publish(event)
            ids.append(event.id)


def test_workers_leaving_and_joining_under_load_lose_nothing(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given quorum queues for the shared tiers and for every webhook, 8 webhooks
    # whose endpoint fails every event's first attempt one time in five (so retries go
    # through the delay tiers), and three workers consuming them all
    settings = settings.model_copy(
        update={
            "queue_type": "quorum",
            "retry_schedule": tuple(float(s) for s in SCHEDULE.split(",")),
        }
    )
    amqp_url = settings.amqp_url.get_secret_value()
    declare_shared(settings)
    webhooks = [
        make_webhook(engine, settings, f"{receiver.url}/{n}", ["delivery.done"])
        for n in range(WEBHOOKS)
    ]
    seen: Counter[tuple[str, str]] = Counter()
    answered: list[tuple[str, str, int]] = []

    def respond(request: Received) -> tuple[int, dict[str, str]]:
        key = (request.path, request.headers["webhook-id"])
        seen[key] += 1
        first_try_of_a_fifth = seen[key] == 1 and hash(key) % 5 == 0
        status = 503 if first_try_of_a_fifth else 200
        answered.append((request.path, request.headers["webhook-id"], status))
        return status, {}

    receiver.responder = respond
    receiver.delay_s = 0.005
    environment = {"ROUTER_QUEUE_TYPE": "quorum", "ROUTER_RETRY_SCHEDULE": SCHEDULE}
    environment["ROUTER_RETRY_JITTER"] = "0"
    log = tmp_path / "workers.log"
    ports = {name: free_port() for name in ("killed", "leaving", "staying", "joining")}

    def start(name: str) -> subprocess.Popen[bytes]:
        return start_worker_process(
            settings, log, ROUTER_METRICS_PORT=str(ports[name]), **environment
        )

    workers = {name: start(name) for name in ("killed", "leaving", "staying")}
    total = EVENTS * WEBHOOKS
    ids: list[str] = []
    try:
        for name in workers:
            wait_until(lambda name=name: ready(ports[name]), 30, f"worker {name} ready")
        publisher = threading.Thread(target=publish_paced, args=(settings, ids))
        publisher.start()

        # When, under load, one worker is killed outright, one joins and one leaves
        wait_until(lambda: len(answered) >= total // 4, 60, "a quarter delivered")
        workers["killed"].kill()
        wait_until(lambda: len(answered) >= total // 2, 60, "half delivered")
        workers["joining"] = start("joining")
        wait_until(lambda: len(answered) >= 3 * total // 4, 60, "three quarters delivered")
        leaving_delivered = delivered_by(ports["leaving"])
        workers["leaving"].send_signal(signal.SIGTERM)
        assert workers["leaving"].wait(30) == 0
        publisher.join(60)

        # Then every event reaches every webhook
        expected = {(f"/{n}", event_id) for n in range(WEBHOOKS) for event_id in ids}
        wait_until(
            lambda: {(p, i) for p, i, s in list(answered) if s == 200} >= expected,
            90,
            "every event at every webhook",
        )
        # And each delivery has its succeeded attempt row, written by whichever worker
        # sent it
        path_of = {w.id: f"/{n}" for n, w in enumerate(webhooks)}

        def logged() -> set[tuple[str, str]]:
            rows = [row for w in webhooks for row in attempts(engine, w.id)]
            return {(path_of[r.webhook_id], r.event_id) for r in rows if r.status == "succeeded"}

        wait_until(lambda: logged() == expected, 30, "a succeeded row per delivery")
        rows = [row for w in webhooks for row in attempts(engine, w.id)]
        # And no row claims a request the endpoint never saw
        assert len(rows) <= len(answered)
        # And the work was spread: the workers still running delivered their share
        staying_delivered = delivered_by(ports["staying"])
        joining_delivered = delivered_by(ports["joining"])
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers.values():
            worker.wait(30)

    # And no queue holds anything: no retry stranded in a tier, nothing dead-lettered
    for webhook in webhooks:
        assert queue_depth(amqp_url, webhook_queue(webhook.id)) == 0
        assert queue_depth(amqp_url, dead_letter_queue(webhook.id)) == 0
    for delay_ms in delay_tiers_ms(settings.retry_schedule, 0):
        assert queue_depth(amqp_url, delay_queue(delay_ms)) == 0
    # And the queues really are quorum queues, the shared tiers included
    types = queue_types(amqp_url)
    assert types[delay_queue(200)] == "quorum"
    assert types[INVALID_QUEUE] == "quorum"
    assert all(types[webhook_queue(w.id)] == "quorum" for w in webhooks)

    failures = sum(1 for _, _, status in answered if status != 200)
    repeats = sum(1 for _, _, status in answered if status == 200) - len(expected)
    print(
        f"{WEBHOOKS} webhooks x {EVENTS} events = {total} deliveries over 4 workers "
        f"(1 killed, 1 left, 1 joined): {len(answered)} requests, {failures} failed first "
        f"attempts retried through quorum tiers, {repeats} repeated deliveries (same "
        f"webhook-id, from the killed worker), {len(rows)} attempt rows; delivered by "
        f"leaving {leaving_delivered:.0f}, staying {staying_delivered:.0f}, joining "
        f"{joining_delivered:.0f}"
    )
    assert failures > 0
    assert leaving_delivered > 0
    assert staying_delivered > 0
    assert joining_delivered > 0
    # Only the killed worker can repeat a delivery: at most what it had in flight
    assert repeats <= WEBHOOKS * settings.prefetch_per_webhook
