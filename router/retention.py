"""Log retention: delete attempt rows older than a cutoff, one short transaction at a time.

Workers insert attempt rows all the time (consumers/outcomes.py), each message waiting
for its row's commit before it is acked. One big DELETE would hold SQLite's single write
lock (or, on PostgreSQL, pile up WAL and locks) for minutes, so the purge deletes a batch,
commits, pauses, and goes on. Attempt ids sort by creation time (``new_id``), so every
batch is a range walk along the primary key, never a scan of the table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import ReturningDelete

from router.metrics import LOG_ROWS_PURGED
from router.models import DeliveryAttempt, utcnow

log = logging.getLogger(__name__)

# Between batches. SQLite's busy handler polls a waiting writer at most every 100 ms: a
# gap at least that long lets every log commit that queued behind a batch go first.
PAUSE_S = 0.1
# pg_try_advisory_lock key of a purge pass ("wr_logs"), so API replicas take turns.
PURGE_LOCK_KEY = 0x77725F6C6F6773
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PurgeResult:
    """What one pass did."""

    rows: int
    batches: int
    seconds: float


def retention_cutoff(days: float, now: datetime | None = None) -> datetime | None:
    """Rows created before this expire; None when ``days`` is 0 (keep forever)."""
    if days == 0:
        return None
    return (now or utcnow()) - timedelta(days=days)


def id_bound(cutoff: datetime) -> str:
    """An attempt id below every id made at or after ``cutoff`` (the format of ``new_id``)."""
    # Before 1970 (a retention of over 56 years) no id is older: the lowest bound will do.
    ns = max(0, (cutoff - _EPOCH) // timedelta(microseconds=1) * 1000)
    return f"att_{ns:016x}"


def batch_delete(cutoff: datetime, limit: int, after: str | None = None) -> ReturningDelete[str]:
    """Delete the ``limit`` oldest expired rows with an id above ``after``; their ids.

    ``after`` (the previous batch's last id) keeps each batch from walking again over
    the index entries its predecessors deleted, which PostgreSQL keeps until a vacuum.
    The id bound makes the walk a primary key range; ``created_at`` stays as the rule
    itself, in case some row's id and creation time disagree.
    """
    oldest = select(DeliveryAttempt.id).where(
        DeliveryAttempt.id < id_bound(cutoff), DeliveryAttempt.created_at < cutoff
    )
    if after is not None:
        oldest = oldest.where(DeliveryAttempt.id > after)
    oldest = oldest.order_by(DeliveryAttempt.id).limit(limit)
    return (
        delete(DeliveryAttempt)
        .where(DeliveryAttempt.id.in_(oldest))
        .returning(DeliveryAttempt.id)
        .execution_options(synchronize_session=False)
    )


def purge_attempts(
    engine: Engine,
    cutoff: datetime,
    batch_size: int,
    *,
    pause_s: float = PAUSE_S,
    stop: threading.Event | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> PurgeResult | None:
    """Delete every attempt created before ``cutoff``, ``batch_size`` rows per transaction.

    None when another process is purging (PostgreSQL). ``stop`` ends the pass between
    two batches; ``on_batch`` is told how many rows each batch deleted.
    """
    started = time.perf_counter()
    rows = batches = 0
    with engine.connect() as connection:
        if not _lock(connection):
            return None
        try:
            after = None
            while stop is None or not stop.is_set():
                with connection.begin():
                    deleted = list(
                        connection.scalars(batch_delete(cutoff, batch_size, after=after))
                    )
                if not deleted:
                    break
                batches += 1
                rows += len(deleted)
                after = max(deleted)
                if on_batch is not None:
                    on_batch(len(deleted))
                if len(deleted) < batch_size:
                    break
                if stop is None:
                    time.sleep(pause_s)
                else:
                    stop.wait(pause_s)
        finally:
            _unlock(connection)
    return PurgeResult(rows, batches, time.perf_counter() - started)


def _lock(connection: Connection) -> bool:
    # SQLite has a single writer anyway; on PostgreSQL a session lock covers the pass.
    if connection.dialect.name != "postgresql":
        return True
    locked = bool(connection.scalar(select(func.pg_try_advisory_lock(PURGE_LOCK_KEY))))
    connection.commit()
    return locked


def _unlock(connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    try:
        connection.rollback()
        connection.scalar(select(func.pg_advisory_unlock(PURGE_LOCK_KEY)))
        connection.commit()
    except SQLAlchemyError:
        # Never hand a connection that may still hold the lock back to the pool: closed,
        # it releases the lock on the server.
        connection.invalidate()


class PurgeLoop:
    """A purge pass at start-up, then every ``interval_s``, on a daemon thread.

    A failed pass is logged and tried again next time: the process it runs in (the
    API) must not die because the log database is briefly away.
    """

    def __init__(
        self,
        engine: Engine,
        retention_days: float,
        batch_size: int,
        interval_s: float,
        *,
        pause_s: float = PAUSE_S,
    ) -> None:
        self._engine = engine
        self._retention_days = retention_days
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-purge", daemon=True)

    def start(self) -> None:
        """Start the thread; a retention of 0 days keeps every row, so none is started."""
        if self._retention_days == 0:
            log.info("log retention is 0 days: attempt rows are kept forever")
            return
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current batch."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def run_once(self) -> PurgeResult | None:
        """One pass now; None when it failed or another process was purging."""
        cutoff = retention_cutoff(self._retention_days)
        if cutoff is None:
            return None
        try:
            result = purge_attempts(
                self._engine,
                cutoff,
                self._batch_size,
                pause_s=self._pause_s,
                stop=self._stop,
                on_batch=LOG_ROWS_PURGED.inc,
            )
        except Exception as exc:
            log.warning(
                "purging attempt rows older than %g days failed, next try in %g s: %s",
                self._retention_days,
                self._interval_s,
                exc,
            )
            return None
        if result is None:
            log.info("another process is purging old attempt rows; skipped this time")
        elif result.rows:
            log.info(
                "purged %d attempt row(s) older than %g days in %d batch(es), %.1f s",
                result.rows,
                self._retention_days,
                result.batches,
                result.seconds,
            )
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._interval_s)
