"""Log retention (router/retention.py) on the real databases, beside a real worker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, insert, select, text

from router.crypto import SecretCipher
from router.db import make_engine
from router.models import DeliveryAttempt, utcnow
from router.retention import (
    PURGE_LOCK_KEY,
    PurgeLoop,
    batch_delete,
    purge_attempts,
    retention_cutoff,
)
from router.schema import upgrade_database
from router.settings import Settings
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    free_port,
    make_webhook,
    publish_events,
    wait_until,
)
from tests.receiver import Receiver

OLD = timedelta(days=40)
RECENT = timedelta(days=1)
WEBHOOK = "wh_retention"


def attempt_rows(count: int, age: timedelta, webhook_id: str = WEBHOOK) -> list[dict[str, Any]]:
    """``count`` attempt rows made ``age`` ago (a microsecond apart), ids as new_id makes
    them at that time."""
    rows = []
    start = utcnow() - age
    for n in range(count):
        created_at = start + timedelta(microseconds=n)
        rows.append(attempt_row(created_at, webhook_id, n))
    return rows


def attempt_row(created_at: datetime, webhook_id: str, n: int = 0) -> dict[str, Any]:
    ns = int(created_at.timestamp()) * 1_000_000_000 + created_at.microsecond * 1000
    return {
        "id": f"att_{ns:016x}{os.urandom(4).hex()}",
        "webhook_id": webhook_id,
        "account_id": "acme",
        "event_id": f"evt_{n}",
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "succeeded",
        "outcome": "delivered",
        "response_status": 200,
        "duration_ms": 12,
        "request_url": "https://example.com/hook",
        "request_headers": {"content-type": "application/json"},
        "request_body": '{"type": "delivery.done"}',
        "created_at": created_at,
    }


def insert_rows(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(DeliveryAttempt), rows)


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(DeliveryAttempt.id)))


def thirty_days_ago() -> datetime:
    cutoff = retention_cutoff(30)
    assert cutoff is not None
    return cutoff


# ---------------------------------------------------------------- purge_attempts


def test_purge_deletes_old_rows_in_batches_and_keeps_recent_ones(engine: Engine) -> None:
    # Given 2,500 attempts 40 days old, 300 a day old, and one 29 days and 23 hours old
    insert_rows(engine, attempt_rows(2500, OLD))
    recent = attempt_rows(300, RECENT) + attempt_rows(1, timedelta(days=30) - timedelta(hours=1))
    insert_rows(engine, recent)
    sizes: list[int] = []

    # When rows older than 30 days are purged, 1,000 per batch
    result = purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0, on_batch=sizes.append)

    # Then the 2,500 old ones are gone in three batches of at most 1,000
    assert result is not None
    assert (result.rows, result.batches) == (2500, 3)
    assert sizes == [1000, 1000, 500]
    # And exactly the recent rows are left
    assert stored_ids(engine) == {row["id"] for row in recent}


def test_nothing_to_purge_is_zero_batches(engine: Engine) -> None:
    # Given only recent attempts
    recent = attempt_rows(10, RECENT)
    insert_rows(engine, recent)
    # When a purge runs
    result = purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0)
    # Then it deletes nothing, in no batch
    assert result is not None
    assert (result.rows, result.batches) == (0, 0)
    assert len(stored_ids(engine)) == 10


def test_created_at_is_checked_as_well_as_the_id(engine: Engine) -> None:
    # Given an attempt whose id says 40 days old but whose created_at is yesterday
    # (a worker's clock that disagreed with itself)
    row = attempt_row(utcnow() - OLD, WEBHOOK)
    row["created_at"] = utcnow() - RECENT
    insert_rows(engine, [row])
    # When rows older than 30 days are purged
    result = purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0)
    # Then it is kept
    assert result is not None
    assert result.rows == 0
    assert stored_ids(engine) == {row["id"]}


def test_stop_ends_the_pass_between_batches(engine: Engine) -> None:
    # Given 300 old attempts
    insert_rows(engine, attempt_rows(300, OLD))
    stop = threading.Event()
    # When the pass is told to stop during its first batch of 100
    result = purge_attempts(
        engine, thirty_days_ago(), 100, pause_s=0, stop=stop, on_batch=lambda _n: stop.set()
    )
    # Then it ends after that batch, leaving the rest for the next pass
    assert result is not None
    assert (result.rows, result.batches) == (100, 1)
    assert len(stored_ids(engine)) == 200


def test_the_batch_delete_walks_the_primary_key(engine: Engine) -> None:
    # Given the statement of one batch
    statement = batch_delete(thirty_days_ago(), 5000, after="att_0")
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # An empty table's cheapest plan is a scan: ask whether the index can serve.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        # When the database explains it
        plan = "\n".join(str(row[-1]) for row in connection.exec_driver_sql(explain + sql))
    # Then both the batch and the delete use the primary key, and nothing scans the table
    if engine.dialect.name == "postgresql":
        assert plan.count("Index Scan using delivery_attempts_pkey") == 2, plan
        assert "Index Cond: (((id)::text < 'att_" in plan, plan
        assert "Index Cond: ((id)::text = " in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        index = "INDEX sqlite_autoindex_delivery_attempts_1"
        assert f"SEARCH delivery_attempts USING {index} (id>? AND id<?)" in plan, plan
        assert f"SEARCH delivery_attempts USING COVERING {index} (id=?)" in plan, plan
        assert "SCAN" not in plan, plan


# SQLite has a single writer: it needs no lock.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_replicas_take_turns_on_postgresql(engine: Engine) -> None:
    # Given old attempts, and another process in the middle of a purge pass
    insert_rows(engine, attempt_rows(50, OLD))
    with engine.connect() as other:
        assert other.scalar(select(func.pg_try_advisory_lock(PURGE_LOCK_KEY)))
        # When a purge runs meanwhile
        skipped = purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0)
        # Then it does nothing
        assert skipped is None
        assert len(stored_ids(engine)) == 50
        other.scalar(select(func.pg_advisory_unlock(PURGE_LOCK_KEY)))
    # And once the other pass is over, the next one purges, and releases the lock again
    result = purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0)
    assert result is not None
    assert result.rows == 50
    assert purge_attempts(engine, thirty_days_ago(), 1000, pause_s=0) is not None


def test_keep_forever_has_no_cutoff() -> None:
    # Given a retention of 0 days / Then nothing expires; otherwise the cutoff is that old
    now = utcnow()
    assert retention_cutoff(0, now) is None
    assert retention_cutoff(1.5, now) == now - timedelta(hours=36)


# ---------------------------------------------------------------- the periodic purge


def purged_total() -> float:
    return REGISTRY.get_sample_value("webhook_router_log_rows_purged_total") or 0.0


def test_a_failed_pass_warns_and_the_next_one_purges(
    tmp_path: Path, cipher: SecretCipher, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a purge loop every 50 ms on a database without its tables yet
    engine = make_engine(f"sqlite:///{tmp_path / 'late.db'}", cipher)
    loop = PurgeLoop(engine, 30, 1000, 0.05, pause_s=0)
    before = purged_total()
    caplog.set_level(logging.WARNING, logger="router.retention")
    try:
        loop.start()
        # Then its passes fail with a warning, and the loop goes on
        wait_until(lambda: caplog.records, 10, "a warning")
        assert "purging attempt rows older than 30 days failed" in caplog.records[0].message
        # When the schema appears, with old and recent attempts
        upgrade_database(engine)
        insert_rows(engine, attempt_rows(120, OLD))
        recent = attempt_rows(5, RECENT)
        insert_rows(engine, recent)
        # Then a later pass purges the old ones, and counts them in the metric
        wait_until(lambda: len(stored_ids(engine)) == 5, 10, "old rows purged")
    finally:
        loop.stop()
        engine.dispose()
    assert purged_total() - before == 120


def test_keep_forever_starts_no_loop(engine: Engine) -> None:
    # Given old attempts and a retention of 0 days
    insert_rows(engine, attempt_rows(10, OLD))
    loop = PurgeLoop(engine, 0, 1000, 0.05, pause_s=0)
    # When the loop is started and a pass is asked for
    loop.start()
    result = loop.run_once()
    loop.stop()
    # Then nothing is deleted
    assert result is None
    assert len(stored_ids(engine)) == 10


# ---------------------------------------------------------------- processes


@pytest.fixture
def sqlite_file(tmp_path: Path, cipher: SecretCipher) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite file: its URL, and an engine on it."""
    url = f"sqlite:///{tmp_path / 'router.db'}"
    engine = make_engine(url, cipher)
    upgrade_database(engine)
    yield url, engine
    engine.dispose()


def run_purge(url: str, *args: str, **env: str) -> str:
    environment = {**os.environ, "ROUTER_DATABASE_URL": url, **env}
    done = subprocess.run(
        [sys.executable, "-m", "router.cli", "logs", "purge", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_logs_purge_command(sqlite_file: tuple[str, Engine]) -> None:
    # Given a SQLite file with 2,500 attempts 40 days old and 10 a day old
    url, engine = sqlite_file
    insert_rows(engine, attempt_rows(2500, OLD))
    recent = attempt_rows(10, RECENT)
    insert_rows(engine, recent)
    # When `webhook-router logs purge` runs with batches of 1,000
    out = run_purge(url, ROUTER_LOG_PURGE_BATCH_SIZE="1000")
    # Then it says what it did, and did it
    assert out.startswith("purged 2500 attempt(s) older than 30 days in 3 batch(es), "), out
    assert stored_ids(engine) == {row["id"] for row in recent}


def test_logs_purge_older_than_days_overrides_the_setting(
    sqlite_file: tuple[str, Engine],
) -> None:
    # Given attempts 40 days and a day old, and a retention of 0 (keep forever)
    url, engine = sqlite_file
    insert_rows(engine, attempt_rows(20, OLD))
    insert_rows(engine, attempt_rows(10, RECENT))
    # When the command runs as configured
    out = run_purge(url, ROUTER_LOG_RETENTION_DAYS="0")
    # Then nothing is purged
    assert out.strip() == "log retention is 0 days (keep forever): nothing purged"
    assert len(stored_ids(engine)) == 30
    # When it runs with --older-than-days 0.5
    out = run_purge(url, "--older-than-days", "0.5", ROUTER_LOG_RETENTION_DAYS="0")
    # Then everything older than 12 hours goes
    assert out.startswith("purged 30 attempt(s) older than 0.5 days in 1 batch(es), "), out
    assert stored_ids(engine) == set()


def test_the_api_process_purges_on_its_own(sqlite_file: tuple[str, Engine]) -> None:
    # Given a SQLite file with old and recent attempts
    url, engine = sqlite_file
    insert_rows(engine, attempt_rows(300, OLD))
    recent = attempt_rows(3, RECENT)
    insert_rows(engine, recent)
    # When `webhook-router api` runs
    environment = {**os.environ, "ROUTER_DATABASE_URL": url, "ROUTER_LOG_LEVEL": "WARNING"}
    api = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "api", "--port", str(free_port())],
        env=environment,
    )
    try:
        # Then the old attempts go without anyone asking
        wait_until(lambda: len(stored_ids(engine)) == 3, 30, "the API purging old rows")
        assert stored_ids(engine) == {row["id"] for row in recent}
    finally:
        api.send_signal(signal.SIGTERM)
        # And it still stops on SIGTERM (uvicorn re-raises it once it has shut down)
        assert api.wait(30) in (0, -signal.SIGTERM)


# ---------------------------------------------------------------- beside a worker


def test_purging_while_a_worker_delivers_loses_nothing(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    # Given a worker delivering a webhook whose log holds 4,000 attempts 40 days old
    declare_shared(settings)
    worker = WorkerThread(settings, engine).start()
    try:
        hook = make_webhook(engine, settings, receiver.url, ["delivery.done"], ["paris"])
        wait_until(lambda: worker.consumes(hook.id), 10, "worker consuming the webhook")
        insert_rows(engine, attempt_rows(4000, OLD, webhook_id=hook.id))
        # When purges of 100 rows a batch run over and over while 200 events are delivered
        stop = threading.Event()
        purged: list[int] = []

        def purge_until_stopped() -> None:
            while not stop.is_set():
                result = purge_attempts(engine, thirty_days_ago(), 100, pause_s=0.005, stop=stop)
                purged.append(result.rows if result is not None else 0)

        purger = threading.Thread(target=purge_until_stopped)
        purger.start()
        try:
            events = publish_events(settings, 200)
            receiver.wait_for(200, timeout_s=60)
            rows = wait_until(
                lambda: (found := attempts(engine, hook.id)) and len(found) == 200 and found,
                60,
                "a row per delivery",
            )
        finally:
            stop.set()
            purger.join(30)
    finally:
        worker.stop()
    # Then every event was delivered once and has its row
    assert sorted(receiver.delivered_ids()) == sorted(events)
    assert sorted(row.event_id for row in rows) == sorted(events)
    assert {row.status for row in rows} == {"succeeded"}
    # And the purges deleted exactly the 4,000 old rows: not one delivered row among them
    assert sum(purged) == 4000
