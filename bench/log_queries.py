"""Log queries and log retention at 10 million attempt rows.

Creates its own database (PostgreSQL ``bench_logs_<pid>``, or with ``--database sqlite`` a
file in a temp dir), migrates it (``router.schema.upgrade_database``) and fills
``delivery_attempts`` with ``--rows`` rows straight in SQL: 60 days of attempts, ids made
as ``new_id`` makes them from each row's ``created_at`` and in that order (as workers
write them), ~1,000 webhooks of ~100 accounts, one webhook holding ~10% of the rows, ~5%
failures, event types skewed (``delivery.done`` the most common), ~400-byte request
bodies. Rows derive from their number by multiplicative hashing: every run and both
backends get the same data. The two secondary indexes are dropped for the load and
rebuilt from the model afterwards, then the table is analysed (PostgreSQL: VACUUM
ANALYZE, as autovacuum would have done).

Then it times, ``--runs`` times each (warm caches), the statements the logs endpoint
runs (``config.logs.log_queries``, executed through an ORM session as the route does):
the first page and a deep page (cursor 30 days back) of "errors of webhook X, newest
first", with and without an event type, and the ``counts`` query, for the big webhook
and a typical one; each with its plan (PostgreSQL: EXPLAIN (ANALYZE, BUFFERS)). Last, it
purges the oldest 30 days (``router.retention.purge_attempts``, default batch size and
pause) while a thread commits 500-row inserts the way the workers' log writer does, and
compares those commits' latency before and during the purge.

Prints figures, never judges them; drops the database at the end (also on Ctrl-C and
SIGTERM).

    .venv/bin/python bench/log_queries.py                                # PostgreSQL, 10M rows
    .venv/bin/python bench/log_queries.py --database sqlite --rows 10000000
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from harness import CIPHER, POSTGRES_ADMIN_URL, on_sigterm_exit, quietly
from procstats import machine_info
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import sessionmaker

from config.logs import log_queries
from router.db import make_engine
from router.events import CATALOG
from router.models import Base, DeliveryAttempt, new_id
from router.retention import PAUSE_S, batch_delete, id_bound, purge_attempts
from router.schema import upgrade_database
from router.settings import Settings

DAYS = 60
BIG_SHARE = 0.10
FAIL_SHARE = 0.05
COMMON_TYPE = "delivery.done"
# delivery.done first: the skew below makes the first type the most common (~20%).
TYPES = [COMMON_TYPE, *(t.type for t in CATALOG if t.type != COMMON_TYPE)]
INSERT_BATCH = 500
INSERT_EVERY_S = 0.1  # 5,000 rows/s: a busy worker's log writer


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def disk_free_gib() -> float:
    return round(shutil.disk_usage("/").free / 1024**3, 1)


# --- the database -------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(kind: str) -> Iterator[str]:
    """A new empty database of ``kind``; its URL. Removed on the way out."""
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="wr-bench-logs-"))
        try:
            yield f"sqlite:///{tmp / 'router.db'}"
        finally:
            quietly("temp dir", shutil.rmtree, tmp)
        return
    name = f"bench_logs_{os.getpid()}"
    admin = sqlalchemy.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )

    def admin_sql(sql: str) -> None:
        with admin.connect() as connection:
            connection.execute(text(sql))

    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        quietly("database", admin_sql, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database_bytes(engine: Engine) -> int:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT pg_database_size(current_database())")))
    path = Path(str(engine.url.database))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# --- filling ------------------------------------------------------------------------------

# Multiplicative hashes of the row number: u(k) is a uniform value in [0, 1) per row.
_PRIMES = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 3323198485)


def _u(k: int) -> str:
    return f"(((g.i * {_PRIMES[k]}) % 4294967296) / 4294967296.0)"


def _floor(expression: str) -> str:
    # Of a value >= 0. PostgreSQL rounds a float cast to an integer, SQLite truncates.
    return f"CAST(floor({expression}) AS BIGINT)"


def _sqlite_floor(expression: str) -> str:
    # SQLite truncates: the floor of a value >= 0 (floor() itself is not always built in).
    return f"CAST({expression} AS INTEGER)"


def _type_case(floor: Callable[[str], str]) -> str:
    # Skewed: type n with probability sqrt((n+1)/N) - sqrt(n/N), about 20% for the first.
    whens = " ".join(f"WHEN {n} THEN '{name}'" for n, name in enumerate(TYPES))
    return f"CASE {floor(f'{_u(2)} * {_u(2)} * {len(TYPES)}')} {whens} END"


@dataclass(frozen=True)
class Shape:
    """How the rows are spread."""

    rows: int
    webhooks: int
    accounts: int
    start_ns: int
    step_ns: int


def fill_sql(dialect: str, shape: Shape) -> str:
    """INSERT ... SELECT of rows :lo to :hi, for one dialect."""
    if dialect == "postgresql":
        hex16, hex8 = "lpad(to_hex({}), 16, '0')", "lpad(to_hex({}), 8, '0')"
        hex24 = "lpad(to_hex({}), 24, '0')"
        floor = _floor
        created_at = (
            "timestamptz '1970-01-01 00:00:00+00' + (r.ns / 1000) * interval '1 microsecond'"
        )
        rows = "generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g(i)"
        prefix = ""
        headers = "CAST({} AS json)"
        iso = "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        next_retry = "r.created_at + interval '30 seconds'"
    else:
        hex16, hex8, hex24 = "printf('%016x', {})", "printf('%08x', {})", "printf('%024x', {})"
        floor = _sqlite_floor
        created_at = (
            "strftime('%Y-%m-%d %H:%M:%S', r.ns / 1000000000, 'unixepoch')"
            " || '.' || printf('%06d', (r.ns / 1000) % 1000000)"
        )
        rows = "g"
        prefix = "WITH RECURSIVE g(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM g WHERE i < :hi) "
        headers = "{}"
        iso = "replace(r.created_at, ' ', 'T') || '+00:00'"
        next_retry = "strftime('%Y-%m-%d %H:%M:%f000', r.created_at, '+30 seconds')"
    big = int(BIG_SHARE * 1_000_000)
    webhook = (
        f"CASE WHEN {floor(f'{_u(0)} * 1000000')} < {big} THEN 0"
        f" ELSE 1 + {floor(f'{_u(1)} * {shape.webhooks - 1}')} END"
    )
    event_hash = hex8.format(f"(g.i * {_PRIMES[5]}) % 4294967296")
    event_id = f"'evt_' || {hex16.format('g.i * 7919')} || {event_hash}"
    # Columns of one row, from r (row number, time, webhook, failure draw, event id/type).
    inner = (
        f"SELECT g.i AS i, {shape.start_ns} + g.i * {shape.step_ns}"
        f" + {floor(f'{_u(3)} * {shape.step_ns * 9 // 10}')} AS ns,"
        f" {webhook} AS w, {_u(4)} AS f, {event_id} AS event_id,"
        f" {_type_case(floor)} AS event_type"
        f" FROM {rows}"
    )
    timed = f"SELECT s.*, {created_at.replace('r.', 's.')} AS created_at FROM ({inner}) s"
    failed = f"r.f < {FAIL_SHARE}"
    timeout = f"r.f < {FAIL_SHARE * 0.2}"  # a fifth of failures: no answer
    dead = f"r.f < {FAIL_SHARE * 0.1}"  # a tenth: attempts used up
    envelope = (
        '\'{"id":"\' || r.event_id || \'","type":"\' || r.event_type'
        f' || \'","occurred_at":"\' || {iso}'
        ' || \'","account_id":"acct_\' || (r.w % ' + str(shape.accounts) + ")"
        ' || \'","site_id":"site-\' || (r.i % 17) || \'","data":{"order":{"id":"ord_\''
        f' || {hex8.format("r.i")} || \'","reference":"REF-\' || r.i'
        ' || \'","status":"done","site_id":"site-\' || (r.i % 17)'
        ' || \'","route_id":"rt_\' || (r.i / 40) || \'","planned_date":"\''
        ' || substr(r.created_at, 1, 10) || \'"},"route":{"id":"rt_\' || (r.i / 40)'
        ' || \'","driver":"drv_\' || (r.i % 311) || \'","vehicle":"van-\' || (r.i % 53)'
        ' || \'","stops":\' || (r.i % 37) || \',"notes":"ring twice"}}}\''
    )
    if dialect == "postgresql":
        envelope = envelope.replace(
            "substr(r.created_at, 1, 10)", "to_char(r.created_at, 'YYYY-MM-DD')"
        )
    signature = (
        f"'v1,' || {hex16.format('r.i * 31')} || {hex16.format('r.i * 37')} || 'c2lnbmF0dXJl'"
    )
    headers_json = (
        '\'{"content-type":"application/json","user-agent":"webhook-router/0.1.0",'
        '"webhook-id":"\' || r.event_id || \'","webhook-timestamp":"\' || (r.ns / 1000000000)'
        ' || \'","webhook-signature":"\' || ' + signature + " || '\"}'"
    )
    return (
        prefix + "INSERT INTO delivery_attempts (id, webhook_id, account_id, event_id, event_type,"
        " attempt, trigger, status, outcome, response_status, response_body, error, duration_ms,"
        " request_url, request_headers, request_body, next_retry_at, created_at) SELECT"
        f" 'att_' || {hex16.format('r.ns')} || {hex8.format(f'(r.i * {_PRIMES[5]}) % 4294967296')},"
        f" 'wh_' || {hex24.format('r.w')},"
        f" 'acct_' || (r.w % {shape.accounts}),"
        " r.event_id, r.event_type,"
        f" CASE WHEN {failed} THEN 1 + r.i % 5 ELSE 1 END,"
        " 'event',"
        f" CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END,"
        f" CASE WHEN {dead} THEN 'dead_lettered' WHEN {failed} THEN 'retrying'"
        " ELSE 'delivered' END,"
        f" CASE WHEN {timeout} THEN NULL WHEN {failed} THEN 503 ELSE 200 END,"
        f" CASE WHEN {timeout} THEN NULL WHEN {failed}"
        # "\:" is a colon to text(), which would read ":true" as a parameter.
        ' THEN \'{"error":"service unavailable, try again later"}\' ELSE \'{"ok"\\:true}\' END,'
        f" CASE WHEN {timeout} THEN 'timed out after 10 s' WHEN {failed} THEN 'HTTP 503' END,"
        " 5 + (r.i * 13) % 400,"
        f" 'https://hooks.acct' || (r.w % {shape.accounts}) || '.example.com/webhooks/' || r.w,"
        f" {headers.format(headers_json)},"
        f" {envelope},"
        f" CASE WHEN {failed} AND NOT {dead} THEN {next_retry} END,"
        " r.created_at"
        f" FROM ({timed}) r"
    )


def fill(engine: Engine, shape: Shape, chunk: int) -> dict[str, Any]:
    """Insert ``shape.rows`` rows, secondary indexes dropped meanwhile; timings."""
    dialect = engine.dialect.name
    sql = text(fill_sql(dialect, shape))
    table = Base.metadata.tables[DeliveryAttempt.__tablename__]
    indexes = sorted(table.indexes, key=lambda index: str(index.name))
    started = time.perf_counter()
    # A loading engine of its own: its session settings must not leak into the measurements.
    loader = make_engine(engine.url.render_as_string(hide_password=False), CIPHER)
    if dialect == "sqlite":
        sqlalchemy.event.listen(
            loader, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA synchronous = OFF")
        )
    try:
        with loader.begin() as connection:
            for index in indexes:
                index.drop(connection)
        for lo in range(0, shape.rows, chunk):
            hi = min(lo + chunk, shape.rows) - 1
            with loader.begin() as connection:
                if dialect == "postgresql":
                    connection.execute(text("SET LOCAL synchronous_commit = off"))
                connection.execute(sql, {"lo": lo, "hi": hi})
            log(f"filled {hi + 1:,} / {shape.rows:,} rows ({time.perf_counter() - started:.0f} s)")
        inserted_s = time.perf_counter() - started
        with loader.begin() as connection:
            if dialect == "postgresql":
                connection.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
            for index in indexes:
                index.create(connection)
        indexed_s = time.perf_counter() - started - inserted_s
        log(f"indexes rebuilt in {indexed_s:.0f} s")
        with loader.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            analyse = "VACUUM ANALYZE delivery_attempts" if dialect == "postgresql" else "ANALYZE"
            connection.execute(text(analyse))
        analysed_s = time.perf_counter() - started - inserted_s - indexed_s
        log(f"analysed in {analysed_s:.0f} s")
    finally:
        loader.dispose()
    return {
        "insert_s": round(inserted_s, 1),
        "rows_per_s": round(shape.rows / inserted_s),
        "index_s": round(indexed_s, 1),
        "analyse_s": round(analysed_s, 1),
    }


def describe_data(engine: Engine) -> dict[str, Any]:
    """What was loaded, as the database sees it."""
    with engine.connect() as connection:
        by_webhook = connection.execute(
            select(DeliveryAttempt.webhook_id, func.min(DeliveryAttempt.account_id), func.count())
            .group_by(DeliveryAttempt.webhook_id)
            .order_by(func.count().desc(), DeliveryAttempt.webhook_id)
        ).all()
        row = connection.execute(
            select(
                func.count(),
                func.sum(func.length(DeliveryAttempt.request_body)),
                func.min(DeliveryAttempt.created_at),
                func.max(DeliveryAttempt.created_at),
            )
        ).one()
        failed = connection.scalar(select(func.count()).where(DeliveryAttempt.status == "failed"))
        accounts = connection.scalar(select(func.count(func.distinct(DeliveryAttempt.account_id))))
        types = connection.execute(
            select(DeliveryAttempt.event_type, func.count())
            .group_by(DeliveryAttempt.event_type)
            .order_by(func.count().desc())
        ).all()
    counts = [int(n) for _, _, n in by_webhook]
    big, typical = by_webhook[0], by_webhook[len(by_webhook) // 2]
    return {
        "rows": int(row[0]),
        "webhooks": len(counts),
        "accounts": int(accounts or 0),
        # The big webhook and a typical one (the median row count): id, account, rows.
        "picked": {
            "big": [str(big[0]), str(big[1]), int(big[2])],
            "typical": [str(typical[0]), str(typical[1]), int(typical[2])],
        },
        "median_webhook_rows": int(statistics.median(counts[1:])),
        "failed_share": round(int(failed or 0) / int(row[0]), 4),
        "request_body_avg_bytes": round(int(row[1]) / int(row[0])),
        "created_at": [str(row[2]), str(row[3])],
        "event_types": {str(name): int(n) for name, n in types[:3]} | {"…": len(types)},
    }


# --- timing queries -----------------------------------------------------------------------


def percentiles(values_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms."""
    ordered = sorted(values_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}


def timed_runs(run: Callable[[], object], runs: int, budget_s: float) -> dict[str, float]:
    """``run`` up to ``runs`` times (after one warm-up), fewer if ``budget_s`` runs out."""
    run()
    times: list[float] = []
    deadline = time.monotonic() + budget_s
    while len(times) < runs and (len(times) < 5 or time.monotonic() < deadline):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def explain(engine: Engine, statement: Any, *, analyze: bool = True) -> list[str]:
    """The plan of ``statement`` (PostgreSQL: executed, in a transaction rolled back)."""
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    if engine.dialect.name == "postgresql":
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
    else:
        prefix = "EXPLAIN QUERY PLAN "
    with engine.connect() as connection:
        plan = [str(row[-1]) for row in connection.exec_driver_sql(prefix + sql)]
        connection.rollback()
    return plan


@dataclass
class Case:
    """One query of the endpoint, timed."""

    name: str
    statement: Any
    kind: str  # "page" or "counts"
    figures: dict[str, float] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)


def query_cases(engine: Engine, webhooks: dict[str, tuple[str, str]]) -> list[Case]:
    """Every query the brief asks about, for each webhook (label: id, account)."""
    month_ago = id_bound(datetime.now(UTC) - timedelta(days=30))
    cases = []
    with engine.connect() as connection:
        for label, (webhook_id, account) in webhooks.items():
            # A real cursor: the newest failure of that webhook 30 days back.
            cursor = connection.scalar(
                select(DeliveryAttempt.id)
                .where(
                    DeliveryAttempt.webhook_id == webhook_id,
                    DeliveryAttempt.status == "failed",
                    DeliveryAttempt.id < month_ago,
                )
                .order_by(DeliveryAttempt.id.desc())
                .limit(1)
            )
            for event_type in (None, COMMON_TYPE):
                typed = f", type {event_type}" if event_type else ""
                first = log_queries(webhook_id, account, status="failed", event_type=event_type)
                deep = log_queries(
                    webhook_id, account, status="failed", event_type=event_type, cursor=cursor
                )
                cases += [
                    Case(f"{label}: errors, first page{typed}", first.page, "page"),
                    Case(f"{label}: errors, page 30 days back{typed}", deep.page, "page"),
                    Case(f"{label}: counts{typed}", first.counts, "counts"),
                ]
            everything = log_queries(webhook_id, account)
            cases.append(Case(f"{label}: all, first page", everything.page, "page"))
    return cases


def time_cases(engine: Engine, cases: list[Case], runs: int, budget_s: float) -> None:
    sessions = sessionmaker(engine, expire_on_commit=False)
    for case in cases:

        def run(case: Case = case) -> object:
            with sessions() as session:
                if case.kind == "page":
                    return list(session.scalars(case.statement))
                return session.execute(case.statement).all()

        case.figures = timed_runs(run, runs, budget_s)
        case.plan = explain(engine, case.statement)
        log(f"{case.name}: {case.figures}")


# --- the purge beside a log writer --------------------------------------------------------


class LogWriterLoad:
    """Commits ``INSERT_BATCH`` rows every ``INSERT_EVERY_S`` as consumers/outcomes.py does,
    recording each commit's latency under the current phase."""

    def __init__(self, engine: Engine, webhook_id: str) -> None:
        self._engine = engine
        self._webhook_id = webhook_id
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _rows(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [
            {
                "id": new_id("att"),
                "webhook_id": self._webhook_id,
                "account_id": "acct_0",
                "event_id": new_id("evt"),
                "event_type": COMMON_TYPE,
                "attempt": 1,
                "trigger": "event",
                "status": "succeeded",
                "outcome": "delivered",
                "response_status": 200,
                "response_body": '{"ok":true}',
                "error": None,
                "duration_ms": 12,
                "request_url": "https://hooks.acct0.example.com/webhooks/0",
                "request_headers": {"content-type": "application/json", "webhook-id": "evt"},
                "request_body": "x" * 400,
                "next_retry_at": None,
                "created_at": now,
            }
            for _ in range(INSERT_BATCH)
        ]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                rows = self._rows()
                started = time.perf_counter()
                with self._engine.begin() as connection:
                    connection.execute(insert(DeliveryAttempt), rows)
                elapsed = time.perf_counter() - started
                self.latencies.setdefault(self.phase, []).append(elapsed)
                self._stop.wait(max(0.0, INSERT_EVERY_S - elapsed))
        except BaseException as exc:
            self.error = exc


def purge_beside_writer(
    engine: Engine, batch_size: int, webhook_id: str, before_s: float
) -> dict[str, Any]:
    """Purge the oldest 30 days while the writer load runs; figures of both."""
    cutoff = datetime.now(UTC) - timedelta(days=30)
    bound = id_bound(cutoff)
    with engine.connect() as connection:
        expired = connection.scalar(select(func.count()).where(DeliveryAttempt.id < bound)) or 0
    plan = explain(engine, batch_delete(cutoff, batch_size))
    log(f"{expired:,} rows older than 30 days; writer load alone for {before_s:g} s")
    load = LogWriterLoad(engine, webhook_id)
    load.start()
    batch_ends: list[float] = []
    try:
        time.sleep(before_s)
        load.phase = "during"
        result = purge_attempts(
            engine, cutoff, batch_size, on_batch=lambda _n: batch_ends.append(time.perf_counter())
        )
        load.phase = "after"
        time.sleep(min(before_s, 5.0))
    finally:
        load.stop()
    if load.error is not None:
        raise load.error
    assert result is not None
    with engine.connect() as connection:
        left = connection.scalar(select(func.count()).where(DeliveryAttempt.id < bound)) or 0
    cycles = [b - a for a, b in itertools.pairwise(batch_ends)]
    return {
        "expired_rows": expired,
        "purged_rows": result.rows,
        "left_rows": left,
        "batches": result.batches,
        "seconds": round(result.seconds, 1),
        "rows_per_s": round(result.rows / result.seconds) if result.seconds else None,
        "batch_cycle_ms": percentiles(cycles) if cycles else {},
        "pause_s": PAUSE_S,
        "insert_commit_ms": {
            phase: percentiles(values) for phase, values in load.latencies.items()
        },
        "plan": plan,
    }


# --- the report ---------------------------------------------------------------------------


def pick_webhooks(described: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Label (with its row count) -> (webhook id, account) of the two webhooks timed."""
    return {
        f"{label} ({rows:,} rows)": (webhook_id, account)
        for label, (webhook_id, account, rows) in described["picked"].items()
    }


def print_report(report: dict[str, Any], cases: list[Case]) -> None:
    print(
        f"\nlog queries: {report['data']['rows']:,} attempt rows, {report['database']},"
        f" {report['data']['webhooks']} webhooks of {report['data']['accounts']} accounts"
    )
    print(f"  data              {json.dumps(report['data'])}")
    print(f"  fill              {json.dumps(report['fill'])}")
    print(
        f"  size              database {report['database_gib']} GiB;"
        f" disk free {report['disk_free_gib']}"
    )
    print("  timings           ms over n runs each (warm), one ORM session per run")
    width = max(len(case.name) for case in cases)
    for case in cases:
        f = case.figures
        print(
            f"    {case.name:<{width}}  p50 {f['p50']:>8}  p95 {f['p95']:>8}"
            f"  p99 {f['p99']:>8}  max {f['max']:>8}  n {f['n']}"
        )
    purge = report["purge"]
    print(
        f"  purge             {purge['purged_rows']:,} of {purge['expired_rows']:,} rows older"
        f" than 30 days in {purge['batches']} batches of {report['batch_size']},"
        f" {purge['seconds']} s = {purge['rows_per_s']:,} rows/s ({purge['left_rows']} left);"
        f" pause {purge['pause_s']} s; batch+pause cycle ms {json.dumps(purge['batch_cycle_ms'])}"
    )
    for phase, figures in purge["insert_commit_ms"].items():
        print(
            f"  {INSERT_BATCH}-row inserts     {phase:<6} the purge: p50 {figures['p50']} ms"
            f"  p99 {figures['p99']} ms  max {figures['max']} ms  ({figures['n']} commits)"
        )
    print(f"  machine           {json.dumps(report['machine'])}")
    print("\nplans:")
    for case in cases:
        print(f"\n-- {case.name}")
        print("\n".join("   " + line for line in case.plan))
    print(f"\n-- purge: one batch of {report['batch_size']}")
    print("\n".join("   " + line for line in purge["plan"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per query")
    parser.add_argument("--budget-s", type=float, default=60.0, help="at most per query")
    parser.add_argument("--chunk", type=int, default=500_000, help="rows per fill statement")
    parser.add_argument("--before-s", type=float, default=20.0, help="writer load alone")
    parser.add_argument("--skip-purge", action="store_true")
    args = parser.parse_args()
    on_sigterm_exit()
    batch_size = Settings().log_purge_batch_size
    report: dict[str, Any] = {
        "database": args.database,
        "batch_size": batch_size,
        "machine": machine_info(),
        "disk_free_gib": {"start": disk_free_gib()},
    }
    log(f"disk free {report['disk_free_gib']['start']} GiB")
    now_ns = time.time_ns()
    step_ns = DAYS * 86400 * 10**9 // args.rows
    shape = Shape(args.rows, args.webhooks, args.accounts, now_ns - DAYS * 86400 * 10**9, step_ns)
    with bench_database(args.database) as url:
        engine = make_engine(url, CIPHER)
        try:
            upgrade_database(engine)
            report["fill"] = fill(engine, shape, args.chunk)
            report["data"] = describe_data(engine)
            report["database_gib"] = {"loaded": round(database_bytes(engine) / 1024**3, 2)}
            report["disk_free_gib"]["loaded"] = disk_free_gib()
            log(f"data {report['data']}; disk free {report['disk_free_gib']['loaded']} GiB")
            webhooks = pick_webhooks(report["data"])
            cases = query_cases(engine, webhooks)
            time_cases(engine, cases, args.runs, args.budget_s)
            report["queries"] = {case.name: case.figures for case in cases}
            if not args.skip_purge:
                big_id, _ = next(iter(webhooks.values()))
                report["purge"] = purge_beside_writer(engine, batch_size, big_id, args.before_s)
                report["database_gib"]["purged"] = round(database_bytes(engine) / 1024**3, 2)
                report["disk_free_gib"]["purged"] = disk_free_gib()
        finally:
            engine.dispose()
    report["disk_free_gib"]["end"] = disk_free_gib()
    print_report(report, cases)
    report["plans"] = {case.name: case.plan for case in cases}
    print(json.dumps(report, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
