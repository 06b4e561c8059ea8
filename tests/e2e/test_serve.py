"""End to end: the real ``webhook-router serve`` process, the real broker, real receivers."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook as StandardWebhook

from router.publisher import Publisher, new_event
from tests.helpers import free_port, queue_depth, wait_until
from tests.receiver import Receiver

ORDER = {"id": "ord_7", "reference": "R-7", "status": "done", "customer": {"name": "Ada"}}


@dataclass
class Service:
    """A running ``serve`` process and how to reach it."""

    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "router.cli", *args],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        return result.stdout.decode()

    def key(self, account: str, role: str) -> str:
        return self.cli("keys", "create", "--account", account, "--role", role).splitlines()[-1]

    def metric(self, name: str) -> float:
        text = httpx.get(self.base_url + "/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )


@pytest.fixture
def service(amqp_url: str, database_url: str, tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"  # apart from the SQLite file: both end in .db
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": amqp_url,
        "ROUTER_DATABASE_URL": database_url,
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
        "ROUTER_RETRY_SCHEDULE": "0.2,0.4",
        "ROUTER_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    for setup in (["db", "upgrade"], ["topology", "sync"]):
        subprocess.run([sys.executable, "-m", "router.cli", *setup], env=env, check=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--port", str(port)], env=env
    )
    svc = Service(f"http://127.0.0.1:{port}", env, process)
    try:
        wait_until(lambda: _ready(svc.base_url), 30, "serve ready")
        yield svc
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(40) == 0


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_routes_each_event_to_exactly_its_subscribers(service: Service) -> None:
    # Given keys for two accounts and three receivers
    acme = {"authorization": "Bearer " + service.key("acme", "admin")}
    globex = {"authorization": "Bearer " + service.key("globex", "admin")}
    with Receiver() as rx_a, Receiver() as rx_b, Receiver() as rx_c:
        # And webhooks made over the API: A (paris, two types, basic auth, summary),
        # B (all sites, delivery.done, custom header, whole order), C (another account)
        a = _create(
            service,
            acme,
            {
                "name": "A",
                "url": rx_a.url + "/a",
                "events": ["delivery.done", "route.started"],
                "sites": ["paris"],
                "auth": {"mode": "basic", "username": "u", "password": "p"},
            },
        )
        b = _create(
            service,
            acme,
            {
                "name": "B",
                "url": rx_b.url + "/b",
                "events": ["delivery.done"],
                "include_order": True,
                "auth": {"mode": "header", "name": "X-Api-Key", "value": "k"},
            },
        )
        c = _create(service, globex, {"name": "C", "url": rx_c.url, "events": ["delivery.done"]})

        # When events of several types, sites and accounts are published
        amqp_url = service.env["ROUTER_AMQP_URL"]
        data = {"order": ORDER}
        published = {}
        with Publisher(amqp_url) as publisher:
            for account, site, kind in [
                ("acme", "paris", "delivery.done"),  # A and B
                ("acme", "lyon", "delivery.done"),  # B
                ("acme", "paris", "route.started"),  # A
                ("acme", "lyon", "route.started"),  # nobody
                ("acme", "paris", "delivery.created"),  # nobody
            ]:
                event = new_event(kind, account, site, data)
                publisher.publish(event)
                published[(account, site, kind)] = event.id
        published[("globex", "paris", "delivery.done")] = service.cli(
            "publish",
            "--type",
            "delivery.done",
            "--account",
            "globex",
            "--site",
            "paris",
            "--data",
            orjson.dumps(data).decode(),
        ).strip()

        # Then each receiver gets exactly its events, signed with its own secret
        got_a, got_b, got_c = rx_a.wait_for(2), rx_b.wait_for(2), rx_c.wait_for(1)
        wait_until(
            lambda: service.metric("webhook_router_events_unrouted_total") == 2,
            10,
            "two unrouted events counted",
        )
        for hook in (a, b, c):
            assert queue_depth(amqp_url, f"webhook.{hook['id']}") == 0
        assert service.metric("webhook_router_messages_consumed_total") == 5
        assert [len(rx.requests) for rx in (rx_a, rx_b, rx_c)] == [2, 2, 1]

        assert {r.headers["webhook-id"] for r in got_a} == {
            published[("acme", "paris", "delivery.done")],
            published[("acme", "paris", "route.started")],
        }
        assert {r.headers["webhook-id"] for r in got_b} == {
            published[("acme", "paris", "delivery.done")],
            published[("acme", "lyon", "delivery.done")],
        }
        assert got_c[0].headers["webhook-id"] == published[("globex", "paris", "delivery.done")]

        basic = "Basic " + base64.b64encode(b"u:p").decode()
        for request in got_a:
            assert request.path == "/a"
            assert request.headers["authorization"] == basic
            body = StandardWebhook(a["secret"]).verify(request.body, request.headers)
            assert body["data"]["order"] == {"id": "ord_7", "reference": "R-7", "status": "done"}
        for request in got_b:
            assert request.headers["x-api-key"] == "k"
            assert "authorization" not in request.headers
            body = StandardWebhook(b["secret"]).verify(request.body, request.headers)
            assert body["data"]["order"] == ORDER
        StandardWebhook(c["secret"]).verify(got_c[0].body, got_c[0].headers)

        # And the attempts are readable over the API, errors-only empty
        logs = _get(service, acme, f"/v1/webhooks/{a['id']}/logs")
        assert [item["status"] for item in logs["items"]] == ["succeeded", "succeeded"]
        assert _get(service, acme, f"/v1/webhooks/{a['id']}/logs?status=failed")["items"] == []
        # And one account cannot see the other's webhook
        response = httpx.get(f"{service.base_url}/v1/webhooks/{c['id']}", headers=acme)
        assert response.status_code == 404


def _create(service: Service, headers: dict[str, str], body: dict[str, object]) -> dict:
    response = httpx.post(f"{service.base_url}/v1/webhooks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _get(service: Service, headers: dict[str, str], path: str) -> dict:
    response = httpx.get(service.base_url + path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_dead_letters_and_single_events_are_replayed_over_the_api(service: Service) -> None:
    # Given a webhook whose endpoint fails every attempt (three, with the test schedule)
    acme = {"authorization": "Bearer " + service.key("acme", "admin")}
    with Receiver() as receiver:
        receiver.status = 500
        hook = _create(
            service, acme, {"name": "R", "url": receiver.url, "events": ["loading.done"]}
        )
        assert hook["circuit"] == "closed"
        event = new_event("loading.done", "acme", "depot", {"order": ORDER})
        with Publisher(service.env["ROUTER_AMQP_URL"]) as publisher:
            publisher.publish(event)

        # When its attempts are used up, the event waits in the dead-letter queue
        path = f"/v1/webhooks/{hook['id']}"
        wait_until(
            lambda: (_get(service, acme, path)["backlog"] or {}).get("dead_letters") == 1,
            15,
            "one dead letter",
        )
        assert receiver.delivered_ids() == []

        # When the endpoint recovers and the dead letters are replayed
        receiver.status = 200
        replay = httpx.post(f"{service.base_url}{path}/dead-letters/replay", headers=acme)
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"replayed": 1, "remaining": 0}

        # Then it is delivered, logged as a manual attempt
        wait_until(lambda: receiver.delivered_ids() == [event.id], 10, "replayed delivery")
        logs = wait_until(
            lambda: [
                i
                for i in _get(service, acme, f"{path}/logs")["items"]
                if i["status"] == "succeeded"
            ],
            10,
            "succeeded row",
        )
        assert logs[0]["trigger"] == "manual"
        assert logs[0]["attempt"] == 1

        # When that one attempt is replayed again
        again = httpx.post(f"{service.base_url}/v1/logs/{logs[0]['id']}/replay", headers=acme)
        assert again.status_code == 202, again.text

        # Then the receiver gets the same event (same webhook-id) a second time
        wait_until(lambda: receiver.delivered_ids() == [event.id, event.id], 10, "second replay")
        failed = _get(service, acme, f"{path}/logs?status=failed")["items"]
        assert [item["outcome"] for item in failed] == ["dead_lettered", "retrying", "retrying"]
