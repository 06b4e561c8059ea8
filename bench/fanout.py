"""Fan-out benchmark: N events x M webhooks through a real ``serve``, RabbitMQ and database.

Sets up a private RabbitMQ vhost and a fresh database, runs ``webhook-router serve``, a
fast receiver (bench/receiver.py), creates M webhooks on ``delivery.done`` through the API,
publishes N events with ``router.publisher.Publisher``, then waits until the database holds
N x M attempt rows and the receiver N x M requests. Reports end-to-end deliveries/s,
publish rate, publish-to-receipt latency, CPU per delivery, and the deliveries metric;
the last line of output is the same as JSON. Everything it created is removed at the end.

    .venv/bin/python bench/fanout.py --events 5000 --webhooks 4
    .venv/bin/python bench/fanout.py --events 5000 --webhooks 4 --database postgres
    .venv/bin/python bench/fanout.py --events 2000 --webhooks 4 --rate 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any

import httpx
from harness import (
    RowPoller,
    Running,
    Sandbox,
    create_webhook,
    log_problems,
    on_sigterm_exit,
    read_metrics,
    rows_by_status,
    sandbox,
    start_services,
    stop,
    wait_consuming,
    wait_receiver,
)
from procstats import CpuSnapshot, cpu_snapshot, find_pid, machine_info
from workload import PublishResult, Target, publish_events

ACCOUNT = "bench"
SITE = "site-1"
EVENT_TYPE = "delivery.done"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events to publish (N)")
    parser.add_argument("--webhooks", type=int, default=4, help="webhooks subscribed (M)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (default 1)")
    parser.add_argument("--rate", type=float, default=None, help="paced events/s (default: max)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for rows")
    return parser.parse_args(argv)


def create_webhooks(api: httpx.Client, receiver_url: str, count: int) -> list[str]:
    """M webhooks on delivery.done, all sites, each POSTing to its own receiver path."""
    return [
        create_webhook(api, f"bench {index}", f"{receiver_url}/hooks/{index}", [EVENT_TYPE], [])
        for index in range(count)
    ]


def measure(args: argparse.Namespace, box: Sandbox, run: Running) -> dict[str, Any]:
    """Create the webhooks, publish, wait for every row and request; the raw figures."""
    create_webhooks(run.api, run.receiver_url, args.webhooks)
    consuming_s = wait_consuming(run.api, args.webhooks * args.workers, 30)
    target = args.events * args.webhooks
    broker_pid = find_pid("beam.smp")
    before = cpu_snapshot(run.serve.pid, run.receiver.pid, broker_pid)
    poller = RowPoller(box.database_url, target, time.monotonic() + args.timeout)
    poller.start()
    exchange = box.env.get("ROUTER_EXCHANGE", "events")
    target_events = Target(box.amqp_url, exchange, EVENT_TYPE, ACCOUNT, SITE)
    published = publish_events(target_events, args.events, args.rate)
    poller.join(lambda: run.serve.poll() is None)
    stats = wait_receiver(run.receiver_url, target, 30 if poller.reached_at else 1)
    after = cpu_snapshot(run.serve.pid, run.receiver.pid, broker_pid)
    return {
        "consuming_s": consuming_s,
        "published": published,
        "poller": poller,
        "receiver": stats,
        "before": before,
        "after": after,
        "metrics": read_metrics(run.api),
        "rows": rows_by_status(box.database_url),
    }


def figures(args: argparse.Namespace, raw: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers from the raw measurements."""
    published: PublishResult = raw["published"]
    poller: RowPoller = raw["poller"]
    before: CpuSnapshot = raw["before"]
    after: CpuSnapshot = raw["after"]
    target = args.events * args.webhooks
    publish_s = published.finished - published.started
    end_to_end_s = (poller.reached_at - published.started) if poller.reached_at else None
    done = max(poller.count, 1)

    def per_delivery_ms(name: str) -> float:
        used = float(getattr(after, name)) - float(getattr(before, name))
        return round(used * 1000 / done, 3)

    receiver = raw["receiver"]
    return {
        "events": args.events,
        "webhooks": args.webhooks,
        "workers": args.workers,
        "database": args.database,
        "rate": args.rate,
        "envelope_bytes": published.envelope_bytes,
        "deliveries_expected": target,
        "rows_logged": poller.count,
        "rows_by_outcome": raw["rows"],
        "complete": poller.reached_at is not None and receiver["count"] >= target,
        "publish_s": round(publish_s, 3),
        "publish_events_per_s": round(args.events / publish_s, 1),
        "end_to_end_s": round(end_to_end_s, 3) if end_to_end_s else None,
        "deliveries_per_s": round(target / end_to_end_s, 1) if end_to_end_s else None,
        "latency_ms": receiver["latency_ms"],
        "receiver_requests": receiver["count"],
        "receiver_duplicates": receiver["duplicates"],
        "cpu_ms_per_delivery": {
            "serve_and_workers": per_delivery_ms("serve"),
            "receiver": per_delivery_ms("receiver"),
            "rabbitmq": per_delivery_ms("broker"),
            "machine_total": per_delivery_ms("machine"),
        },
        "metrics_deliveries_total": raw["metrics"]["deliveries_total"],
        "workers_consuming_after_s": round(raw["consuming_s"], 2),
        "poller_error": poller.error,
    }


def print_report(result: dict[str, Any]) -> None:
    """The human-readable summary; the JSON line follows it."""
    lat = result["latency_ms"]
    cpu = result["cpu_ms_per_delivery"]
    mode = f"paced at {result['rate']:g} events/s" if result["rate"] else "as fast as possible"
    e2e = result["end_to_end_s"]
    print(
        f"\nfan-out: {result['events']} events x {result['webhooks']} webhooks = "
        f"{result['deliveries_expected']} deliveries, {result['database']}, "
        f"{result['workers']} worker(s), published {mode}, envelope "
        f"{result['envelope_bytes']} B\n"
        f"  complete          {result['complete']} (rows {result['rows_logged']} "
        f"{result['rows_by_outcome']}, receiver {result['receiver_requests']}, "
        f"duplicates {result['receiver_duplicates']})\n"
        f"  publish           {result['publish_s']:.2f} s = "
        f"{result['publish_events_per_s']:,.0f} events/s "
        f"({'confirmed one at a time' if result['rate'] else 'pipelined confirms'})\n"
        f"  end to end        {f'{e2e:.2f} s' if e2e else 'not reached'} = "
        f"{result['deliveries_per_s'] or 0:,.0f} deliveries/s (first publish to last row)\n"
        f"  latency ms        p50 {lat.get('p50')}  p90 {lat.get('p90')}  "
        f"p99 {lat.get('p99')}  max {lat.get('max')}  (publish to receipt)\n"
        f"  CPU ms/delivery   serve+workers {cpu['serve_and_workers']}  "
        f"receiver {cpu['receiver']}  rabbitmq {cpu['rabbitmq']}  "
        f"machine {cpu['machine_total']}\n"
        f"  /metrics          webhook_router_deliveries_total "
        f"{result['metrics_deliveries_total']}\n"
        f"  shutdown          serve exited in {result['serve_stop_s']:.2f} s after SIGTERM "
        f"(exit code {result['serve_exit_code']}), leaving "
        f"{result['serve_leftover_processes']} process(es) behind"
    )
    print(
        f"  machine           {result['machine']['nproc']} CPU(s) {result['machine']['cpu']}, "
        f"load average before {' '.join(result['machine']['load_average'])}, "
        f"ROUTER_* from the environment: {result['router_env'] or 'none'}"
    )
    for line in result["serve_log_problems"]:
        print(f"  serve log         {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    on_sigterm_exit()
    machine = machine_info()  # load average before the run: other work skews the figures
    with sandbox(args.database) as box, contextlib.ExitStack() as stack:
        run = start_services(stack, box, args.workers, ACCOUNT)
        result = figures(args, measure(args, box, run))
        stopped = stop(run.serve, 40.0)
        result["serve_stop_s"] = round(stopped.seconds, 2)
        result["serve_exit_code"] = stopped.returncode
        result["serve_leftover_processes"] = len(stopped.leftovers)
        result["serve_log_problems"] = log_problems(run.log)
        result["machine"] = machine
        result["router_env"] = {k: v for k, v in os.environ.items() if k.startswith("ROUTER_")}
    print_report(result)
    print(json.dumps(result, sort_keys=True))
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
