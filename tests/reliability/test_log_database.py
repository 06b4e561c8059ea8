"""The log database unavailable for a while (SQLite locked): deliveries wait, nothing lost."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import Engine

from router.settings import Settings
from tests.helpers import (
    WorkerThread,
    attempts,
    declare_shared,
    duplicates,
    make_webhook,
    publish_events,
    wait_until,
)
from tests.receiver import Receiver

EVENTS = 200
LOCKED_S = 4.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_locked_sqlite_holds_acks_until_rows_commit(
    settings: Settings, engine: Engine, receiver: Receiver
) -> None:
    # Given a worker delivering a stream of events, logged to SQLite
    declare_shared(settings)
    receiver.delay_s = 0.005
    webhook = make_webhook(engine, settings, receiver.url, ["delivery.done"])
    path = settings.database_url.get_secret_value().removeprefix("sqlite:///")
    worker = WorkerThread(settings, engine).start()
    try:
        ids = publish_events(settings, EVENTS)
        # When another process takes the write lock for a while, mid-load
        wait_until(lambda: len(receiver.requests) >= EVENTS // 4, 30, "a quarter delivered")
        blocker = sqlite3.connect(path, timeout=30, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        rows_when_locked = len(attempts(engine, webhook.id))
        time.sleep(LOCKED_S)
        requests_while_locked = len(receiver.requests)
        rows_while_locked = len(attempts(engine, webhook.id))
        blocker.execute("COMMIT")
        blocker.close()

        # Then nothing was logged while locked, the worker waited (at most its prefetch
        # of requests went out unlogged) and caught up once the lock was gone
        wait_until(lambda: set(receiver.delivered_ids()) >= set(ids), 60, "every event")
        wait_until(
            lambda: len(attempts(engine, webhook.id)) >= len(receiver.requests), 30, "every row"
        )
    finally:
        worker.stop()
    rows = attempts(engine, webhook.id)
    delivered, repeats = duplicates(receiver.delivered_ids())
    print(
        f"locked {LOCKED_S:g} s at {rows_when_locked} rows; {requests_while_locked} requests by "
        f"the end of the lock; {len(delivered)} events delivered, {repeats} duplicates, "
        f"{len(rows)} rows"
    )
    assert rows_while_locked == rows_when_locked
    assert requests_while_locked - rows_when_locked <= settings.prefetch_per_webhook + 1
    assert set(delivered) == set(ids)
    assert repeats == 0
    assert len(rows) == len(receiver.requests) == EVENTS
