"""A worker process logs each delivery attempt as a JSON line matching its attempt row
(consumers/attempt_logging.py): DEBUG when delivered, WARNING when not, never a secret."""

from __future__ import annotations

import base64
import json
import logging
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from consumers.attempt_logging import log_attempt
from router.models import DeliveryAttempt, Webhook
from router.settings import Settings
from tests.helpers import (
    attempts,
    declare_shared,
    make_webhook,
    publish_events,
    start_worker_process,
    wait_until,
)
from tests.receiver import Received, Receiver

# What is logged does not depend on the log database's backend.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "pw-never-logged-7Qx"
PATH_TOKEN = "tok-never-logged-3Kd"  # URLs may carry tokens in their path
RETRY_DELAY_S = 0.2
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROW_FIELDS = (
    "webhook_id",
    "account_id",
    "event_id",
    "event_type",
    "attempt",
    "trigger",
    "outcome",
    "response_status",
    "duration_ms",
    "error",
)


def answer_by_order_number(receiver: Receiver) -> None:
    """Order o0, o3…: 200. o1, o4…: 503 once, then 200. o2, o5…: 503 every time."""
    seen: dict[str, int] = {}

    def respond(request: Received) -> tuple[int, dict[str, str]]:
        event_id = request.headers["webhook-id"]
        seen[event_id] = seen.get(event_id, 0) + 1
        kind = int(request.json()["data"]["order"]["id"][1:]) % 3
        failing = kind == 2 or (kind == 1 and seen[event_id] == 1)
        return (503 if failing else 200), {}

    receiver.responder = respond


def basic_auth_webhook(engine: Engine, settings: Settings, receiver: Receiver) -> Webhook:
    """A webhook with a password and a token in its URL's path: none of it may be logged."""
    return make_webhook(
        engine,
        settings,
        f"{receiver.url}/hooks/{PATH_TOKEN}",
        ["delivery.done"],
        auth_mode="basic",
        auth_credentials={"username": "router", "password": PASSWORD},
    )


def run_worker(
    settings: Settings, engine: Engine, webhook: Webhook, log: Path, level: str, rows: int
) -> list[DeliveryAttempt]:
    """Run a worker process at ``level`` until ``rows`` attempt rows exist, then stop it."""
    worker = start_worker_process(
        settings,
        log,
        ROUTER_LOG_LEVEL=level,
        ROUTER_RETRY_SCHEDULE=str(RETRY_DELAY_S),
        ROUTER_RETRY_JITTER="0",
        ROUTER_CIRCUIT_FAILURE_THRESHOLD="1000",  # half the attempts fail, by design
    )
    try:
        wait_until(lambda: len(attempts(engine, webhook.id)) >= rows, 30, f"{rows} rows")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    return attempts(engine, webhook.id)


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the process's output as JSON; one that does not parse fails the test."""
    records = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
    assert records, "the worker logged nothing"
    return records


def attempt_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["message"] in ("delivery attempt", "delivery failed")]


@sqlite_only
def test_every_attempt_is_one_json_record_matching_its_row(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given a basic-auth webhook whose endpoint accepts some events, fails others once
    # and fails the rest for good, and a worker process logging at DEBUG
    declare_shared(settings)
    answer_by_order_number(receiver)
    webhook = basic_auth_webhook(engine, settings, receiver)
    log = tmp_path / "worker.log"
    # When six events go through: two delivered at once, two on their retry, two
    # dead-lettered after their two attempts
    publish_events(settings, 6)
    rows = run_worker(settings, engine, webhook, log, "DEBUG", rows=10)

    # Then every line the process wrote is a JSON object with a UTC time
    records = json_lines(log)
    assert all(RFC3339_UTC_MS.match(r["time"]) for r in records)
    # And each attempt row has exactly one record, no other attempt record exists
    found = attempt_records(records)
    assert sorted(r["attempt_id"] for r in found) == sorted(row.id for row in rows)
    assert {row.outcome for row in rows} == {"delivered", "retrying", "dead_lettered"}
    by_id = {r["attempt_id"]: r for r in found}
    for row in rows:
        logged = by_id[row.id]
        # A success at DEBUG, a failure at WARNING alone
        if row.status == "succeeded":
            assert (logged["level"], logged["message"]) == ("DEBUG", "delivery attempt")
        else:
            assert (logged["level"], logged["message"]) == ("WARNING", "delivery failed")
        # With the row's values, the target host, and the delay of a retry
        assert logged["logger"] == "consumers.attempt_logging"
        assert {f: logged[f] for f in ROW_FIELDS} == {f: getattr(row, f) for f in ROW_FIELDS}
        assert logged["target_host"] == "127.0.0.1"
        if row.outcome == "retrying":
            assert logged["next_retry_in_s"] == RETRY_DELAY_S
        else:
            assert "next_retry_in_s" not in logged
    assert {r["error"] for r in found if r["level"] == "WARNING"} == {"HTTP 503"}

    # And no secret appears anywhere: signing secret, password, its header, URL path
    text = log.read_text()
    authorization = receiver.requests[0].headers["authorization"]
    assert authorization == "Basic " + base64.b64encode(f"router:{PASSWORD}".encode()).decode()
    for secret in (webhook.secret, webhook.secret.removeprefix("whsec_"), PASSWORD, PATH_TOKEN):
        assert secret not in text
    assert authorization.split()[1] not in text


@sqlite_only
def test_at_info_only_failures_are_logged(
    settings: Settings, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    # Given an endpoint failing every event once, and a worker process logging at INFO
    declare_shared(settings)
    receiver.fail_first(1)
    webhook = basic_auth_webhook(engine, settings, receiver)
    log = tmp_path / "worker.log"
    # When three events are delivered on their second attempt
    publish_events(settings, 3)
    rows = run_worker(settings, engine, webhook, log, "INFO", rows=6)

    # Then the output is JSON lines, with a WARNING record per failed attempt
    records = json_lines(log)
    found = attempt_records(records)
    failed = {row.id for row in rows if row.status == "failed"}
    assert len(failed) == 3
    assert {r["attempt_id"] for r in found} == failed
    assert all(r["level"] == "WARNING" for r in found)
    # And none for the successes, nor anything below INFO
    assert not [r for r in records if r["level"] == "DEBUG"]


def test_an_error_quoting_the_url_is_logged_with_its_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a failed attempt whose transport error quotes the URL, token and all
    url = f"https://hooks.example.com/services/{PATH_TOKEN}"
    row = {
        "id": "att_1",
        "webhook_id": "wh_1",
        "account_id": "acme",
        "event_id": "evt_1",
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "failed",
        "outcome": "retrying",
        "response_status": None,
        "duration_ms": 12,
        "error": f"invalid URL: {url}",
        "request_url": url,
    }
    caplog.set_level(logging.DEBUG, logger="consumers.attempt_logging")
    # When it is logged
    log_attempt(row, 5000)
    # Then the one record names the host, never the path
    [logged] = caplog.records
    assert logged.__dict__["error"] == "invalid URL: hooks.example.com"
    assert logged.__dict__["target_host"] == "hooks.example.com"
    assert logged.__dict__["next_retry_in_s"] == 5.0
    assert PATH_TOKEN not in caplog.text
