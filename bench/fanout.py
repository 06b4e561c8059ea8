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
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from sqlalchemy import func, select

from router.db import make_engine
from router.events import Event
from router.models import DeliveryAttempt
from router.publisher import Publisher, new_event

ROOT = Path(__file__).resolve().parent.parent
RECEIVER = Path(__file__).resolve().parent / "receiver.py"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AMQP_HOST = "127.0.0.1:5672"
ACCOUNT = "bench"
EVENT_TYPE = "delivery.done"
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events to publish (N)")
    parser.add_argument("--webhooks", type=int, default=4, help="webhooks subscribed (M)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (default 1)")
    parser.add_argument("--rate", type=float, default=None, help="paced events/s (default: max)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for rows")
    return parser.parse_args(argv)


# --- the isolated environment -------------------------------------------------------------


@dataclass
class Sandbox:
    """A private vhost, database and temp dir, and the environment pointing at them."""

    tmp: Path
    vhost: str
    amqp_url: str
    database_url: str
    env: dict[str, str]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _quietly(what: str, fn: Callable[..., Any], *args: Any) -> None:
    """Run a cleanup step; report its failure instead of masking the real error."""
    try:
        fn(*args)
    except Exception as exc:
        print(f"warning: cleanup {what} failed: {exc!r}", file=sys.stderr)


def _postgres_admin(sql: str) -> None:
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(sql))
    finally:
        admin.dispose()


@contextlib.contextmanager
def sandbox(database: str) -> Iterator[Sandbox]:
    """Create everything the run needs; remove it all on the way out, even on error."""
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="wr-bench-"))
        stack.callback(_quietly, "temp dir", shutil.rmtree, tmp)
        suffix = uuid.uuid4().hex[:10]
        vhost = f"wr-bench-{suffix}"
        rabbitmqctl("add_vhost", vhost)
        stack.callback(_quietly, "vhost", rabbitmqctl, "delete_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        if database == "postgres":
            name = f"wr_bench_{suffix}"
            _postgres_admin(f'CREATE DATABASE "{name}"')
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            stack.callback(_quietly, "database", _postgres_admin, drop)
            database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        else:
            database_url = f"sqlite:///{tmp / 'router.db'}"
        metrics_dir = tmp / "metrics"
        metrics_dir.mkdir()
        amqp_url = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
        env = {
            **os.environ,
            "ROUTER_AMQP_URL": amqp_url,
            "ROUTER_DATABASE_URL": database_url,
            "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
            "ROUTER_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        yield Sandbox(tmp, vhost, amqp_url, database_url, env)


# --- processes ----------------------------------------------------------------------------


def run_cli(box: Sandbox, *args: str) -> str:
    """Run ``python -m router.cli ARGS`` to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        env=box.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"router.cli {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(stack: contextlib.ExitStack, argv: list[str], env: dict[str, str], log: Path) -> Any:
    """Start a process in its own session (so its children can be found and reaped)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.callback(stop, process, 40.0)
    return process


@dataclass
class Stopped:
    """How a process ended: seconds after SIGTERM, exit code, session members left behind."""

    seconds: float
    returncode: int | None
    leftovers: list[int]


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> Stopped:
    """SIGTERM, wait up to ``timeout_s``; then end whatever is left of its session.

    Leftovers (e.g. children orphaned by their parent) get SIGTERM, 10 s, then SIGKILL.
    """
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"warning: pid {process.pid} ignored SIGTERM for {timeout_s:g} s; killing it")
    elapsed = time.monotonic() - started
    leftovers = _session_members(process.pid)
    for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not _session_members(process.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace_s
        while _session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    return Stopped(elapsed, process.returncode, leftovers)


def _session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session."""
    members = []
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields and int(fields[3]) == session and fields[0] != "Z":
            members.append(pid)
    return members


def wait_http(url: str, timeout_s: float, process: Any = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s:g} s")


# --- CPU accounting from /proc ------------------------------------------------------------


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(root: int) -> float:
    """user+sys CPU of ``root`` and its live descendants, plus its reaped children."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / CLK_TCK


def find_pid(command_name: str) -> int | None:
    """The oldest process with this command name (e.g. the broker's ``beam.smp``)."""
    for pid in sorted(_all_pids()):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == command_name:
                return pid
    return None


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over every CPU of the machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    """CPU seconds of the processes we watch, at one moment."""

    serve: float
    receiver: float
    broker: float
    machine: float


def cpu_snapshot(serve_pid: int, receiver_pid: int, broker_pid: int | None) -> CpuSnapshot:
    return CpuSnapshot(
        serve=cpu_seconds(serve_pid),
        receiver=cpu_seconds(receiver_pid),
        broker=cpu_seconds(broker_pid) if broker_pid else 0.0,
        machine=machine_busy_seconds(),
    )


# --- webhooks and events ------------------------------------------------------------------


def create_webhooks(api: httpx.Client, receiver_url: str, count: int) -> list[str]:
    """M webhooks on delivery.done, all sites, each POSTing to its own receiver path."""
    ids = []
    for index in range(count):
        response = api.post(
            "/v1/webhooks",
            json={
                "name": f"bench {index}",
                "url": f"{receiver_url}/hooks/{index}",
                "events": [EVENT_TYPE],
                "sites": [],
                "auth": {"mode": "none"},
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"creating a webhook: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


def work_order(index: int) -> dict[str, Any]:
    """A realistic work order, about 1 KB of JSON."""
    return {
        "id": f"ord_{index:08d}",
        "reference": f"WO-2026-{index:06d}",
        "status": "done",
        "site_id": "site-1",
        "route_id": f"rte_{index // 40:05d}",
        "planned_date": "2026-11-27",
        "time_window": {"start": "2026-11-27T08:00:00Z", "end": "2026-11-27T12:00:00Z"},
        "done_at": "2026-11-27T10:42:17Z",
        "customer": {
            "id": f"cus_{index % 997:05d}",
            "name": "Boulangerie Martin & Fils",
            "phone": "+33 1 42 68 53 00",
            "email": "commandes@boulangerie-martin.example",
        },
        "address": {
            "line1": "18 rue du Faubourg Saint-Antoine",
            "line2": "Bâtiment B, 2e étage",
            "postcode": "75012",
            "city": "Paris",
            "country": "FR",
            "location": {"lat": 48.85312, "lng": 2.37154},
        },
        "items": [
            {"sku": "FLR-T65-25", "label": "Farine T65 25 kg", "quantity": 4, "weight_kg": 100},
            {"sku": "SGR-W-10", "label": "Sucre blanc 10 kg", "quantity": 2, "weight_kg": 20},
            {"sku": "BTR-82-5", "label": "Beurre AOP 82% 5 kg", "quantity": 3, "weight_kg": 15},
        ],
        "driver": {"id": "drv_0042", "name": "Karim B.", "vehicle": "AB-123-CD"},
        "instructions": "Livrer par l'entrée de service, sonner deux fois. Ne pas bloquer.",
        "custom_fields": {"po_number": f"PO-{index:07d}", "cold_chain": False, "pallets": 1},
        "proof": {"signed_by": "M. Martin", "photos": 2},
    }


@dataclass
class PublishResult:
    """When publishing started and ended (monotonic), and the envelope size."""

    started: float
    finished: float
    envelope_bytes: int


def publish_events(amqp_url: str, exchange: str, count: int, rate: float | None) -> PublishResult:
    """Publish ``count`` events: paced at ``rate``/s and confirmed one by one when given,
    else as fast as pipelined confirms allow (``Publisher.publish_many``)."""

    def event(index: int) -> Event:
        data = {"order": work_order(index), "published_at_ns": time.time_ns()}
        return new_event(EVENT_TYPE, ACCOUNT, "site-1", data)

    envelope_bytes = len(event(0).to_json())
    with Publisher(amqp_url, exchange) as publisher:
        started = time.monotonic()
        if rate is None:
            publisher.publish_many(event(index) for index in range(count))
        else:
            for index in range(count):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(event(index))
        finished = time.monotonic()
    return PublishResult(started, finished, envelope_bytes)


# --- waiting for the outcome --------------------------------------------------------------


@dataclass
class RowPoller:
    """Counts attempt rows every 50 ms on a thread, until ``target`` or the deadline."""

    database_url: str
    target: int
    deadline: float
    count: int = 0
    reached_at: float | None = None
    samples: int = 0
    error: str | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="row-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, alive: Callable[[], bool]) -> None:
        """Wait for the poller to finish; give up early once ``alive()`` turns false."""
        while self._thread.is_alive() and time.monotonic() < self.deadline + 5:
            if not alive():
                self.error = "serve exited before every row was logged"
                return
            self._thread.join(0.5)

    def _run(self) -> None:
        engine = make_engine(self.database_url)
        query = select(func.count()).select_from(DeliveryAttempt)
        try:
            while time.monotonic() < self.deadline:
                with engine.connect() as connection:
                    self.count = int(connection.scalar(query) or 0)
                self.samples += 1
                if self.count >= self.target:
                    self.reached_at = time.monotonic()
                    return
                time.sleep(POLL_S)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            self.error = repr(exc)
        finally:
            engine.dispose()


def wait_receiver(url: str, target: int, timeout_s: float) -> dict[str, Any]:
    """Poll the receiver's /stats until it counted ``target`` requests (or time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats: dict[str, Any] = httpx.get(f"{url}/stats", timeout=10).json()
        if stats["count"] >= target or time.monotonic() >= deadline:
            return stats
        time.sleep(0.2)


def rows_by_status(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    query = select(DeliveryAttempt.outcome, func.count()).group_by(DeliveryAttempt.outcome)
    try:
        with engine.connect() as connection:
            return {str(outcome): int(n) for outcome, n in connection.execute(query)}
    finally:
        engine.dispose()


_METRIC = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")


def read_metrics(api: httpx.Client) -> dict[str, Any]:
    """Deliveries by outcome and queues consumed, from one scrape of /metrics."""
    outcomes: dict[str, float] = {}
    consumed = 0.0
    for line in api.get("/metrics").text.splitlines():
        match = _METRIC.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        if name == "webhook_router_deliveries_total":
            outcome = re.search(r'outcome="([^"]*)"', labels or "")
            key = outcome.group(1) if outcome else "?"
            outcomes[key] = outcomes.get(key, 0.0) + float(value)
        elif name == "webhook_router_webhook_queues_consumed":
            consumed += float(value)
    return {"deliveries_total": outcomes, "queues_consumed": consumed}


def wait_consuming(api: httpx.Client, queues: int, timeout_s: float) -> float:
    """Wait until the workers consume every webhook queue; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if read_metrics(api)["queues_consumed"] >= queues:
            break
        time.sleep(0.1)
    else:
        print(f"warning: workers not consuming {queues} queue(s) after {timeout_s:g} s")
    return time.monotonic() - started


# --- the run ------------------------------------------------------------------------------


@dataclass
class Running:
    """The processes of one run and how to reach them."""

    serve: Any
    receiver: Any
    api: httpx.Client
    receiver_url: str
    log: Path


def start_services(stack: contextlib.ExitStack, box: Sandbox, workers: int) -> Running:
    """Migrate, sync, make a key, start serve and the receiver, and wait for both."""
    run_cli(box, "db", "upgrade")
    run_cli(box, "topology", "sync")
    key = run_cli(box, "keys", "create", "--account", ACCOUNT, "--role", "admin")
    key = key.strip().splitlines()[-1]
    port, receiver_port = free_port(), free_port()
    log = box.tmp / "serve.log"
    command = f"-m router.cli serve --port {port} --workers {workers}".split()
    serve = start(stack, [sys.executable, *command], box.env, log)
    receiver = start(
        stack,
        [sys.executable, str(RECEIVER), "--port", str(receiver_port)],
        dict(os.environ),
        box.tmp / "receiver.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz", 60, serve)
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    wait_http(f"{receiver_url}/stats", 20, receiver)
    api = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)
    stack.callback(api.close)
    return Running(serve, receiver, api, receiver_url, log)


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
    published = publish_events(box.amqp_url, exchange, args.events, args.rate)
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


def log_problems(log: Path, limit: int = 8) -> list[str]:
    """Warning and error lines serve and its workers wrote (log level is WARNING)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    flagged = [line for line in lines if re.search(r"WARNING|ERROR|CRITICAL|Traceback", line)]
    return flagged[:limit] + ([f"... {len(flagged) - limit} more"] if len(flagged) > limit else [])


def machine_info() -> dict[str, Any]:
    """nproc, memory and CPU model of this machine, for the record."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu": model.group(1).strip() if model else "?",
        "memory_gib": round(int(memory.group(1)) / 1024**2, 1) if memory else None,
        "python": platform.python_version(),
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
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
    # A SIGTERM to the benchmark unwinds like Ctrl-C, so the cleanup still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine = machine_info()  # load average before the run: other work skews the figures
    with sandbox(args.database) as box, contextlib.ExitStack() as stack:
        run = start_services(stack, box, args.workers)
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
