"""Isolation benchmark: does one hanging webhook slow down the nine healthy ones beside it?

One ``serve`` (one worker), one receiver, two phases in the same run on separate webhooks:

- phase A: 9 healthy webhooks on site ``a``; N ``delivery.done`` events for site ``a``,
  each delivered to all 9. Rate = 9 x N / (first publish to the poll that saw 9 x N rows
  of those 9 webhooks).
- phase B: 9 *other* healthy webhooks on site ``b`` plus 1 webhook on site ``b`` whose
  endpoint (the receiver's ``/hang/`` path) never answers, so every request to it waits
  for the delivery timeout (``ROUTER_DELIVERY_TIMEOUT_S``, 10 s by default). N events for
  site ``b``; the rate counts the rows of the 9 healthy webhooks only.

Phase A's webhooks receive nothing in phase B and the reverse, since webhooks filter by
site. The target is B/A >= 0.90. The hanging webhook's retries are not waited for: serve
is stopped (SIGTERM, then whatever is left is killed) once phase B's rows are in.

    .venv/bin/python bench/isolation.py
    .venv/bin/python bench/isolation.py --events 3000 --timeout-s 5
    .venv/bin/python bench/isolation.py --hang-host 127.0.0.2   # hanging endpoint on another host
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
from harness import (
    RowPoller,
    Running,
    Sandbox,
    create_webhook,
    log_problems,
    metric_totals,
    on_sigterm_exit,
    read_metrics,
    rows_by_status,
    sandbox,
    start_services,
    stop,
    wait_consuming,
)
from procstats import cpu_seconds, machine_info
from workload import Target, publish_events

ACCOUNT = "bench"
EVENT_TYPE = "delivery.done"
HEALTHY = 9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per phase (N)")
    parser.add_argument(
        "--timeout-s", type=float, default=None, help="ROUTER_DELIVERY_TIMEOUT_S (default: 10)"
    )
    parser.add_argument(
        "--hang-host",
        default="127.0.0.1",
        help="address of the hanging endpoint (default 127.0.0.1, the healthy ones' host)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for rows")
    return parser.parse_args(argv)


@dataclass
class Webhooks:
    """The webhook ids of each phase."""

    phase_a: list[str]
    phase_b: list[str]
    hanging: str


def create_all(api: httpx.Client, receiver_url: str, hang_url: str) -> Webhooks:
    """9 healthy webhooks on site a, 9 on site b, and the hanging one on site b."""

    def healthy(site: str) -> list[str]:
        return [
            create_webhook(
                api, f"{site}{i}", f"{receiver_url}/hooks/{site}{i}", [EVENT_TYPE], [site]
            )
            for i in range(HEALTHY)
        ]

    phase_a, phase_b = healthy("a"), healthy("b")
    hanging = create_webhook(api, "hang", f"{hang_url}/hang/b{HEALTHY}", [EVENT_TYPE], ["b"])
    return Webhooks(phase_a, phase_b, hanging)


def run_phase(
    args: argparse.Namespace, box: Sandbox, run: Running, site: str, ids: list[str]
) -> dict[str, Any]:
    """Publish N events for ``site``; wait for 9 x N rows of ``ids``; its figures."""
    target = args.events * len(ids)
    cpu_before = cpu_seconds(run.serve.pid)
    poller = RowPoller(box.database_url, target, time.monotonic() + args.timeout, ids)
    poller.start()
    exchange = box.env.get("ROUTER_EXCHANGE", "events")
    published = publish_events(
        Target(box.amqp_url, exchange, EVENT_TYPE, ACCOUNT, site), args.events, None
    )
    poller.join(lambda: run.serve.poll() is None)
    seconds = poller.reached_at - published.started if poller.reached_at else None
    stats = httpx.get(f"{run.receiver_url}/stats", timeout=10).json()
    received = sum(n for path, n in stats["paths"].items() if path.startswith(f"/hooks/{site}"))
    return {
        "site": site,
        "deliveries_expected": target,
        "rows_logged": poller.count,
        "rows_by_outcome": rows_by_status(box.database_url, ids),
        "receiver_requests": received,
        "publish_s": round(published.finished - published.started, 3),
        "seconds": round(seconds, 3) if seconds else None,
        "deliveries_per_s": round(target / seconds, 1) if seconds else None,
        "serve_cpu_ms_per_delivery": round(
            (cpu_seconds(run.serve.pid) - cpu_before) * 1000 / max(poller.count, 1), 3
        ),
        "poller_error": poller.error,
    }


def measure(args: argparse.Namespace, box: Sandbox, run: Running) -> dict[str, Any]:
    """Both phases, then what the hanging endpoint and the metrics saw."""
    receiver_port = run.receiver_url.rsplit(":", 1)[1]
    hooks = create_all(run.api, run.receiver_url, f"http://{args.hang_host}:{receiver_port}")
    consuming_s = wait_consuming(run.api, 2 * HEALTHY + 1, 30)
    phase_a = run_phase(args, box, run, "a", hooks.phase_a)
    phase_b = run_phase(args, box, run, "b", hooks.phase_b)
    stats = httpx.get(f"{run.receiver_url}/stats", timeout=10).json()
    metrics = read_metrics(run.api)
    circuit = metric_totals(
        metrics["text"], "webhook_router_circuit_transitions_total", "transition"
    )
    rate_a, rate_b = phase_a["deliveries_per_s"], phase_b["deliveries_per_s"]
    return {
        "events": args.events,
        "healthy_webhooks": HEALTHY,
        "database": args.database,
        "delivery_timeout_s": float(box.env.get("ROUTER_DELIVERY_TIMEOUT_S", "10")),
        "hang_host": args.hang_host,
        "workers_consuming_after_s": round(consuming_s, 2),
        "phase_a": phase_a,
        "phase_b": phase_b,
        "ratio_b_over_a": round(rate_b / rate_a, 3) if rate_a and rate_b else None,
        "hanging_requests": stats["hang"]["requests"],
        "hanging_closed_by_client": stats["hang"]["closed_by_client"],
        "hanging_rows_by_outcome": rows_by_status(box.database_url, [hooks.hanging]),
        "metrics_deliveries_total": metrics["deliveries_total"],
        "metrics_circuit_transitions": circuit,
    }


def print_report(result: dict[str, Any]) -> None:
    """The human-readable summary; the JSON line follows it."""
    print(
        f"\nisolation: {result['healthy_webhooks']} healthy webhooks, {result['events']} "
        f"events per phase, {result['database']}, 1 worker, delivery timeout "
        f"{result['delivery_timeout_s']:g} s, hanging endpoint on {result['hang_host']}"
    )
    for name, label in (("phase_a", "A: 9 alone"), ("phase_b", "B: 9 + 1 hanging")):
        phase = result[name]
        rate = phase["deliveries_per_s"]
        print(
            f"  {label:<17} {phase['rows_logged']}/{phase['deliveries_expected']} rows "
            f"{phase['rows_by_outcome']}, receiver {phase['receiver_requests']}, "
            f"{phase['seconds'] or 0:.2f} s = {rate or 0:,.0f} deliveries/s, "
            f"serve CPU {phase['serve_cpu_ms_per_delivery']} ms/delivery"
        )
    ratio = result["ratio_b_over_a"]
    verdict = "PASS" if ratio is not None and ratio >= 0.9 else "FAIL"
    print(
        f"  ratio B/A         {ratio} (target >= 0.90: {verdict})\n"
        f"  hanging endpoint  {result['hanging_requests']} request(s) received, "
        f"{result['hanging_closed_by_client']} given up by the client; its rows "
        f"{result['hanging_rows_by_outcome']}; circuit transitions "
        f"{result['metrics_circuit_transitions'] or 'none'}\n"
        f"  /metrics          webhook_router_deliveries_total "
        f"{result['metrics_deliveries_total']}\n"
        f"  shutdown          serve exited in {result['serve_stop_s']:.2f} s after SIGTERM "
        f"(exit code {result['serve_exit_code']}), leaving "
        f"{result['serve_leftover_processes']} process(es) behind\n"
        f"  machine           {result['machine']['nproc']} CPU(s) {result['machine']['cpu']}, "
        f"load average before {' '.join(result['machine']['load_average'])}, "
        f"ROUTER_* from the environment: {result['router_env'] or 'none'}"
    )
    phase_b_s = result["phase_b"]["seconds"]
    if phase_b_s and phase_b_s < result["delivery_timeout_s"]:
        print(
            f"  note              phase B lasted {phase_b_s:.1f} s, less than the delivery "
            "timeout: no hanging request timed out during it (more --events, or --timeout-s)"
        )
    for line in result["serve_log_problems"]:
        print(f"  serve log         {line}")


def main(argv: list[str] | None = None) -> int:
    """Run both phases; exit 0 when both completed and B/A >= 0.90."""
    args = parse_args(argv)
    on_sigterm_exit()
    machine = machine_info()  # load average before the run: other work skews the figures
    router_env = {k: v for k, v in os.environ.items() if k.startswith("ROUTER_")}
    with sandbox(args.database) as box, contextlib.ExitStack() as stack:
        if args.timeout_s is not None:
            box.env["ROUTER_DELIVERY_TIMEOUT_S"] = str(args.timeout_s)
        hosts = tuple(dict.fromkeys(["127.0.0.1", args.hang_host]))
        run = start_services(stack, box, 1, ACCOUNT, hosts)
        result = measure(args, box, run)
        stopped = stop(run.serve, 40.0)
        result["serve_stop_s"] = round(stopped.seconds, 2)
        result["serve_exit_code"] = stopped.returncode
        result["serve_leftover_processes"] = len(stopped.leftovers)
        result["serve_log_problems"] = log_problems(run.log)
        result["machine"] = machine
        result["router_env"] = router_env
    print_report(result)
    print(json.dumps(result, sort_keys=True))
    ratio = result["ratio_b_over_a"]
    return 0 if ratio is not None and ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
