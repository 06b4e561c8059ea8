"""Scale benchmark: 10,000 webhooks configured; topology sync, one worker's start-up and
memory, and one event fanned out to 1,000 of them.

Webhooks are inserted straight into the database (100 accounts x 10 sites, random subsets
of event types, all pointing at the fast receiver). Exactly ``--matching`` of them match
the event (``acct0``, ``site0``, ``delivery.done``): webhooks of ``acct0`` subscribed to
``delivery.done`` with sites ``[]`` or containing ``site0``; every other webhook of
``acct0`` lacks ``delivery.done`` or names only other sites. Then:

1. ``router.cli topology sync``: wall time, and the broker's memory before and after;
2. one ``router.cli worker`` (not serve; ``ROUTER_RECONCILE_INTERVAL_S=3600``): time until
   its ``webhook_router_webhook_queues_consumed`` gauge reaches the webhook count, its RSS;
3. one matching event published: time until ``--matching`` rows are logged and the
   receiver has that many requests; the worker's RSS after.

    .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --webhooks 2000 --matching 200 --database postgres
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from typing import Any

import httpx
from harness import (
    CIPHER,
    RowPoller,
    Sandbox,
    free_port,
    log_problems,
    metric_totals,
    on_sigterm_exit,
    rabbitmqctl,
    run_cli,
    sandbox,
    start,
    start_receiver,
    stop,
    wait_receiver,
)
from procstats import cpu_seconds, machine_info, memory_mib
from sqlalchemy import insert
from sqlalchemy.orm import Session
from workload import Target, publish_events

from consumers.signing import generate_secret
from router.db import make_engine
from router.events import CATALOG
from router.models import Webhook, new_id

EVENT_TYPE = "delivery.done"
TYPES = [t.type for t in CATALOG]
OTHER_TYPES = [t for t in TYPES if t != EVENT_TYPE]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=10_000, help="webhooks configured")
    parser.add_argument("--matching", type=int, default=1000, help="webhooks the event matches")
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the subscriptions")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait per step")
    args = parser.parse_args(argv)
    if not 0 < args.matching <= args.webhooks:
        parser.error("--matching must be between 1 and --webhooks")
    return args


# --- the webhooks -------------------------------------------------------------------------


def subscription(
    rng: random.Random, sites: list[str], matching: bool
) -> tuple[list[str], list[str]]:
    """(events, sites) of one webhook of acct0: matching the event or certainly not."""
    events = rng.sample(OTHER_TYPES, rng.randint(0, 4))
    if matching:
        chosen = [] if rng.random() < 0.5 else ["site0", *rng.sample(sites[1:], rng.randint(0, 2))]
        return [EVENT_TYPE, *events], chosen
    if rng.random() < 0.5:  # delivery.done, but only on other sites
        return [EVENT_TYPE, *events], rng.sample(sites[1:], rng.randint(1, 3))
    chosen = [] if rng.random() < 0.5 else rng.sample(sites, rng.randint(1, 3))
    return events or [rng.choice(OTHER_TYPES)], chosen


def webhook_rows(args: argparse.Namespace, receiver_url: str) -> list[dict[str, Any]]:
    """Every webhook row: ``--matching`` of acct0 match the event, the rest spread around."""
    rng = random.Random(args.seed)
    sites = [f"site{n}" for n in range(args.sites)]
    rows = []
    for index in range(args.webhooks):
        matching = index < args.matching
        account = "acct0" if matching else f"acct{index % args.accounts}"
        if matching or account == "acct0":
            events, chosen = subscription(rng, sites, matching)
        else:
            events = rng.sample(TYPES, rng.randint(1, 5))
            chosen = [] if rng.random() < 0.5 else rng.sample(sites, rng.randint(1, 3))
        rows.append(
            {
                "id": new_id("wh"),
                "account_id": account,
                "name": f"scale {index}",
                "url": f"{receiver_url}/hooks/{index}",
                "auth_mode": "none",
                "auth_credentials": {},
                "secret": generate_secret(),
                "events": events,
                "sites": chosen,
            }
        )
    return rows


def matches(row: dict[str, Any]) -> bool:
    """Whether the chosen event (acct0, site0, delivery.done) is routed to this webhook."""
    return (
        row["account_id"] == "acct0"
        and EVENT_TYPE in row["events"]
        and (not row["sites"] or "site0" in row["sites"])
    )


def insert_webhooks(database_url: str, rows: list[dict[str, Any]]) -> float:
    """Insert the rows in one transaction; the seconds it took."""
    started = time.monotonic()
    engine = make_engine(database_url, CIPHER)
    try:
        with Session(engine) as session:
            session.execute(insert(Webhook), rows)
            session.commit()
    finally:
        engine.dispose()
    return time.monotonic() - started


# --- the broker and the worker ------------------------------------------------------------


def note(message: str) -> None:
    """Progress on stderr, so a long run shows where it is (and where it failed)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def broker_status() -> dict[str, float]:
    """The broker node's memory in MiB and its file descriptors (whole node: other vhosts
    count too)."""
    status = json.loads(rabbitmqctl("status", "--formatter", "json", timeout_s=120))
    memory, fds = status["memory"], status["file_descriptors"]
    mib = 1024 * 1024
    return {
        "rss_mib": round(memory["total"]["rss"] / mib, 1),
        "erlang_mib": round(memory["total"]["erlang"] / mib, 1),
        "queue_procs_mib": round(memory["queue_procs"] / mib, 1),
        "mnesia_mib": round(memory["mnesia"] / mib, 1),
        "fds_used": fds["total_used"],
        "fds_limit": fds["total_limit"],
    }


def queue_count(vhost: str) -> int:
    """Queues declared in the vhost."""
    return len(rabbitmqctl("list_queues", "-p", vhost, "name", timeout_s=300).split())


def time_sync(box: Sandbox, timeout_s: float) -> dict[str, Any]:
    """Run ``topology sync``; its wall time, the broker around it, queues made."""
    before = broker_status()
    started = time.monotonic()
    output = run_cli(box, "topology", "sync", timeout_s=timeout_s)
    wall_s = time.monotonic() - started
    return {
        "wall_s": round(wall_s, 2),
        "output": output.strip(),
        "broker_before": before,
        "broker_after": broker_status(),
        "queues_in_vhost": queue_count(box.vhost),
    }


def wait_worker(worker: Any, metrics_url: str, queues: int, timeout_s: float) -> dict[str, Any]:
    """Poll the worker's metrics until it consumes ``queues`` queues; when it got there."""
    started = time.monotonic()
    first_scrape_s: float | None = None
    consumed = 0.0
    progress: dict[str, float] = {}  # when each tenth of the queues was first seen consumed
    while time.monotonic() - started < timeout_s and worker.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(metrics_url, timeout=5).text
            first_scrape_s = first_scrape_s or round(time.monotonic() - started, 2)
            consumed = metric_totals(text, "webhook_router_webhook_queues_consumed").get("", 0.0)
            decile = int(consumed * 10 // queues) * 10
            progress.setdefault(f"{decile}%", round(time.monotonic() - started, 2))
            if consumed >= queues:
                break
        time.sleep(0.25)
    return {
        "queues_consumed": int(consumed),
        "all_consumed": consumed >= queues,
        "metrics_up_after_s": first_scrape_s,
        "consuming_all_after_s": round(time.monotonic() - started, 2),
        "progress_s": progress,
        "worker_cpu_s": round(cpu_seconds(worker.pid), 2),
        "worker_memory_mib": memory_mib(worker.pid),
        "broker": broker_status(),
    }


def fan_out(
    box: Sandbox, worker: Any, receiver_url: str, expected: int, timeout_s: float
) -> dict[str, Any]:
    """Publish one matching event; how long until every row and request is in.

    A publish the broker refuses (nack) is recorded, and what did get through is still
    waited for (30 s at most).
    """
    cpu_before = cpu_seconds(worker.pid)
    started, published_ns = time.monotonic(), time.time_ns()
    poller = RowPoller(box.database_url, expected, started + timeout_s)
    poller.start()
    exchange = box.env.get("ROUTER_EXCHANGE", "events")
    publish_error = None
    try:
        publish_events(Target(box.amqp_url, exchange, EVENT_TYPE, "acct0", "site0"), 1, None)
    except Exception as exc:  # e.g. PublishRejected: report it with the rest
        publish_error = repr(exc)
        poller.deadline = min(poller.deadline, time.monotonic() + 30)
    poller.join(lambda: worker.poll() is None)
    stats = wait_receiver(receiver_url, expected, 30 if poller.reached_at else 1)
    rows_s = poller.reached_at - started if poller.reached_at else None
    return {
        "publish_error": publish_error,
        "rows_logged": poller.count,
        "rows_after_s": round(rows_s, 3) if rows_s else None,
        "receiver_requests": stats["count"],
        "receiver_first_after_s": _after_s(stats["first_ns"], published_ns),
        "receiver_last_after_s": _after_s(stats["last_ns"], published_ns),
        "receiver_duplicates": stats["duplicates"],
        "worker_cpu_s": round(cpu_seconds(worker.pid) - cpu_before, 2),
        "worker_memory_mib": memory_mib(worker.pid),
        "broker": broker_status(),
        "poller_error": poller.error,
    }


def _after_s(moment_ns: int, since_ns: int) -> float | None:
    return round((moment_ns - since_ns) / 1e9, 3) if moment_ns else None


# --- the run ------------------------------------------------------------------------------


def worker_env(box: Sandbox, metrics_port: int) -> dict[str, str]:
    """The sandbox's environment for a lone worker serving its own /metrics."""
    env = {k: v for k, v in box.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["ROUTER_RECONCILE_INTERVAL_S"] = "3600"
    env["ROUTER_METRICS_PORT"] = str(metrics_port)
    return env


def prepare(
    args: argparse.Namespace, box: Sandbox, receiver_url: str, result: dict[str, Any]
) -> int:
    """Migrate and insert the webhooks; how many match the event."""
    run_cli(box, "db", "upgrade")
    rows = webhook_rows(args, receiver_url)
    expected = sum(1 for row in rows if matches(row))
    if expected != args.matching:
        raise RuntimeError(f"{expected} webhooks match the event, not {args.matching}")
    result["webhooks"] = len(rows)
    result["accounts"] = len({row["account_id"] for row in rows})
    result["bindings_to_events"] = sum(len(r["events"]) * max(1, len(r["sites"])) for r in rows)
    result["insert_s"] = round(insert_webhooks(box.database_url, rows), 2)
    note(f"{len(rows)} webhooks inserted in {result['insert_s']} s")
    return expected


def measure(
    args: argparse.Namespace, box: Sandbox, stack: contextlib.ExitStack, result: dict[str, Any]
) -> None:
    """Insert the webhooks, sync, start a worker, fan one event out; figures into ``result``
    as they come, so a failure keeps what was measured before it."""
    _receiver, receiver_url = start_receiver(stack, box)
    expected = prepare(args, box, receiver_url, result)
    result["topology_sync"] = time_sync(box, args.timeout)
    note(f"topology sync: {result['topology_sync']['wall_s']} s")
    port = free_port()
    log = box.tmp / "worker.log"
    argv = [sys.executable, "-m", "router.cli", "worker"]
    worker = start(stack, argv, worker_env(box, port), log)
    try:
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        result["worker_startup"] = wait_worker(worker, metrics_url, args.webhooks, args.timeout)
        note(f"worker consuming after {result['worker_startup']['consuming_all_after_s']} s")
        fanout = fan_out(box, worker, receiver_url, expected, args.timeout)
        result["fan_out"] = fanout
        note(f"fan-out: {fanout['rows_logged']} rows, publish error {fanout['publish_error']}")
        result["complete"] = min(fanout["rows_logged"], fanout["receiver_requests"]) >= expected
    finally:
        stopped = stop(worker, 120.0)
        result["worker_stop_s"] = round(stopped.seconds, 2)
        result["worker_exit_code"] = stopped.returncode
        result["worker_log_problems"] = log_problems(log)


def _setup_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"\nscale: {result.get('webhooks')} webhooks over {result.get('accounts')} accounts "
        f"({result.get('bindings_to_events')} event bindings), {result['database']}; "
        f"one event matching {result['matching']} of them",
        f"  insert rows       {result.get('insert_s')} s (SQLAlchemy, one transaction)",
    ]
    if sync := result.get("topology_sync"):
        before, after = sync["broker_before"], sync["broker_after"]
        lines += [
            f"  topology sync     {sync['wall_s']:.2f} s wall ({sync['output']}); "
            f"{sync['queues_in_vhost']} queues in the vhost",
            f"  broker            RSS {before['rss_mib']} -> {after['rss_mib']} MiB, queue "
            f"processes {before['queue_procs_mib']} -> {after['queue_procs_mib']} MiB, mnesia "
            f"{before['mnesia_mib']} -> {after['mnesia_mib']} MiB (whole node)",
        ]
    if up := result.get("worker_startup"):
        lines += [
            f"  worker start-up   metrics up after {up['metrics_up_after_s']} s, consuming "
            f"{up['queues_consumed']} queues after {up['consuming_all_after_s']:.2f} s "
            f"({up['worker_cpu_s']} s CPU); progress {up['progress_s']}",
            f"  worker memory     RSS {up['worker_memory_mib']['rss_mib']} MiB once consuming; "
            f"broker RSS then {up['broker']['rss_mib']} MiB, "
            f"{up['broker']['fds_used']}/{up['broker']['fds_limit']} file descriptors",
        ]
    return lines


def report_lines(result: dict[str, Any]) -> list[str]:
    """The human-readable summary, one line per step that ran."""
    lines = _setup_lines(result)
    if fan := result.get("fan_out"):
        lines.append(
            f"  fan-out           {fan['rows_logged']} rows after {fan['rows_after_s']} s, "
            f"receiver {fan['receiver_requests']} requests (first after "
            f"{fan['receiver_first_after_s']} s, last after {fan['receiver_last_after_s']} s, "
            f"duplicates {fan['receiver_duplicates']}), worker CPU {fan['worker_cpu_s']} s, "
            f"worker RSS after {fan['worker_memory_mib']['rss_mib']} MiB (peak "
            f"{fan['worker_memory_mib']['peak_rss_mib']} MiB)"
        )
        if fan["publish_error"]:
            lines.append(f"  publish error     {fan['publish_error']}")
    if "worker_stop_s" in result:
        lines.append(
            f"  shutdown          worker exited in {result['worker_stop_s']:.2f} s after "
            f"SIGTERM (exit code {result['worker_exit_code']}); cleanup took "
            f"{result['cleanup_s']:.2f} s"
        )
    machine = result["machine"]
    lines.append(
        f"  machine           {machine['nproc']} CPU(s) {machine['cpu']}, load average "
        f"before {' '.join(machine['load_average'])}"
    )
    lines += [f"  worker log        {line}" for line in result.get("worker_log_problems", [])]
    if result.get("error"):
        lines.append(f"  failed            {result['error']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run it; exit 0 when the event reached every matching webhook."""
    args = parse_args(argv)
    on_sigterm_exit()
    result: dict[str, Any] = {
        "database": args.database,
        "matching": args.matching,
        "complete": False,
        "machine": machine_info(),  # load average before the run: other work skews figures
        "router_env": {k: v for k, v in os.environ.items() if k.startswith("ROUTER_")},
    }
    with sandbox(args.database) as box:
        try:
            with contextlib.ExitStack() as stack:
                measure(args, box, stack, result)
        except Exception as exc:  # keep and print what was measured before the failure
            result["error"] = repr(exc)
        note("cleaning up (deleting the vhost)")
        cleanup_started = time.monotonic()
    result["cleanup_s"] = round(time.monotonic() - cleanup_started, 2)
    print("\n".join(report_lines(result)))
    print(json.dumps(result, sort_keys=True))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
