"""What every benchmark shares: a private vhost, database and temp dir; starting and
stopping ``serve`` and the receiver; waiting for rows, requests and consumers; webhooks
created through the API. CPU, memory and the machine's description are in procstats.py.

Scripts in bench/ import it as ``harness`` (the script's directory is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
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
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from procstats import all_pids, stat_fields
from sqlalchemy import func, select

from router.crypto import SecretCipher, generate_key, parse_keys
from router.db import make_engine
from router.models import DeliveryAttempt

ROOT = Path(__file__).resolve().parent.parent
RECEIVER = Path(__file__).resolve().parent / "receiver.py"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AMQP_HOST = "127.0.0.1:5672"
POLL_S = 0.05
# A fresh key per benchmark run, handed to every router process through the sandbox's
# environment, so the rows the benchmark writes itself decrypt in the workers.
ENCRYPTION_KEY = generate_key()
CIPHER = SecretCipher(parse_keys(ENCRYPTION_KEY), source="ROUTER_ENCRYPTION_KEYS")

# --- the isolated environment -------------------------------------------------------------


@dataclass
class Sandbox:
    """A private vhost, database and temp dir, and the environment pointing at them."""

    tmp: Path
    vhost: str
    amqp_url: str
    database_url: str
    env: dict[str, str]


def rabbitmqctl(*args: str, timeout_s: float = 300.0) -> str:
    """Run ``rabbitmqctl -q ARGS``; its stdout."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=timeout_s
    )
    return done.stdout


def quietly(what: str, fn: Callable[..., Any], *args: Any) -> None:
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


# The broker tuning the README's "Operating" section recommends: classic queues with the
# v2 index (RabbitMQ 3.10+), set by policy because declaration arguments cannot change on
# existing queues. Every benchmark vhost gets it, so figures match a tuned deployment.
QUEUE_POLICY = ("classic-queue-v2", "^(webhook|router|events)\\.", '{"queue-version": 2}')


def apply_queue_policy(vhost: str) -> None:
    """Set QUEUE_POLICY on ``vhost``."""
    name, pattern, definition = QUEUE_POLICY
    rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", name, pattern, definition)


@contextlib.contextmanager
def sandbox(database: str) -> Iterator[Sandbox]:
    """Create everything the run needs; remove it all on the way out, even on error."""
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="wr-bench-"))
        stack.callback(quietly, "temp dir", shutil.rmtree, tmp)
        suffix = uuid.uuid4().hex[:10]
        vhost = f"wr-bench-{suffix}"
        rabbitmqctl("add_vhost", vhost)
        stack.callback(quietly, "vhost", rabbitmqctl, "delete_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        apply_queue_policy(vhost)
        if database == "postgres":
            name = f"wr_bench_{suffix}"
            _postgres_admin(f'CREATE DATABASE "{name}"')
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            stack.callback(quietly, "database", _postgres_admin, drop)
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
            "ROUTER_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
            "ROUTER_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        yield Sandbox(tmp, vhost, amqp_url, database_url, env)


def on_sigterm_exit() -> None:
    """Make a SIGTERM to the benchmark unwind like Ctrl-C, so the cleanup still runs."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# --- processes ----------------------------------------------------------------------------


def run_cli(box: Sandbox, *args: str, timeout_s: float = 120.0) -> str:
    """Run ``python -m router.cli ARGS`` to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        env=box.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"router.cli {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    """A TCP port nobody listens on right now."""
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
    for pid in all_pids():
        fields = stat_fields(pid)
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


def start_receiver(
    stack: contextlib.ExitStack, box: Sandbox, hosts: tuple[str, ...] = ()
) -> tuple[Any, str]:
    """Start bench/receiver.py on a free port (on 127.0.0.1, or on ``hosts``); it and its URL."""
    port = free_port()
    argv = [sys.executable, str(RECEIVER), "--port", str(port)]
    for host in hosts:
        argv += ["--host", host]
    receiver = start(stack, argv, dict(os.environ), box.tmp / "receiver.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/stats", 20, receiver)
    return receiver, url


def log_problems(log: Path, limit: int = 8) -> list[str]:
    """Warning and error lines a process wrote (the sandbox's log level is WARNING)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    # A failed delivery is the receiver's doing (the isolation bench hangs one on purpose),
    # not a problem of the router: its per-attempt WARNING records are not counted.
    flagged = [
        line
        for line in lines
        if re.search(r"WARNING|ERROR|CRITICAL|Traceback", line)
        and '"message": "delivery failed"' not in line
    ]
    return flagged[:limit] + ([f"... {len(flagged) - limit} more"] if len(flagged) > limit else [])


# --- waiting for outcomes -----------------------------------------------------------------


@dataclass
class RowPoller:
    """Counts attempt rows (of ``webhook_ids`` only, when given) every 50 ms on a thread,
    until ``target`` or the deadline."""

    database_url: str
    target: int
    deadline: float
    webhook_ids: Collection[str] | None = None
    count: int = 0
    reached_at: float | None = None
    samples: int = 0
    error: str | None = None
    _thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="row-poller", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def join(self, alive: Callable[[], bool]) -> None:
        """Wait for the poller to finish; give up early once ``alive()`` turns false."""
        while self._thread.is_alive() and time.monotonic() < self.deadline + 5:
            if not alive():
                self.error = "serve exited before every row was logged"
                return
            self._thread.join(0.5)

    def _run(self) -> None:
        engine = make_engine(self.database_url, CIPHER)
        query = select(func.count()).select_from(DeliveryAttempt)
        if self.webhook_ids is not None:
            query = query.where(DeliveryAttempt.webhook_id.in_(list(self.webhook_ids)))
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


def rows_by_status(database_url: str, webhook_ids: Collection[str] | None = None) -> dict[str, int]:
    """Attempt rows by outcome (of ``webhook_ids`` only, when given)."""
    engine = make_engine(database_url, CIPHER)
    query = select(DeliveryAttempt.outcome, func.count()).group_by(DeliveryAttempt.outcome)
    if webhook_ids is not None:
        query = query.where(DeliveryAttempt.webhook_id.in_(list(webhook_ids)))
    try:
        with engine.connect() as connection:
            return {str(outcome): int(n) for outcome, n in connection.execute(query)}
    finally:
        engine.dispose()


_METRIC = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")


def metric_totals(text: str, name: str, label: str | None = None) -> dict[str, float]:
    """Samples of metric ``name`` in exposition ``text``, summed by ``label`` ('' if None)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match is None or match.group(1) != name:
            continue
        key = ""
        if label is not None:
            found = re.search(rf'{label}="([^"]*)"', match.group(2) or "")
            key = found.group(1) if found else "?"
        totals[key] = totals.get(key, 0.0) + float(match.group(3))
    return totals


def read_metrics(api: httpx.Client) -> dict[str, Any]:
    """Deliveries by outcome and queues consumed, from one scrape of /metrics."""
    text = api.get("/metrics").text
    consumed = metric_totals(text, "webhook_router_webhook_queues_consumed")
    return {
        "deliveries_total": metric_totals(text, "webhook_router_deliveries_total", "outcome"),
        "queues_consumed": consumed.get("", 0.0),
        "text": text,
    }


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


# --- serve, its API, and webhooks ---------------------------------------------------------


@dataclass
class Running:
    """The processes of one run and how to reach them."""

    serve: Any
    receiver: Any
    api: httpx.Client
    receiver_url: str
    log: Path


def start_services(
    stack: contextlib.ExitStack,
    box: Sandbox,
    workers: int,
    account: str,
    receiver_hosts: tuple[str, ...] = (),
) -> Running:
    """Migrate, sync, make an admin key of ``account``, start serve and the receiver."""
    run_cli(box, "db", "upgrade")
    run_cli(box, "topology", "sync")
    key = run_cli(box, "keys", "create", "--account", account, "--role", "admin")
    key = key.strip().splitlines()[-1]
    port = free_port()
    log = box.tmp / "serve.log"
    command = f"-m router.cli serve --port {port} --workers {workers}".split()
    serve = start(stack, [sys.executable, *command], box.env, log)
    receiver, receiver_url = start_receiver(stack, box, receiver_hosts)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz", 60, serve)
    api = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=30)
    stack.callback(api.close)
    return Running(serve, receiver, api, receiver_url, log)


def create_webhook(
    api: httpx.Client, name: str, url: str, events: list[str], sites: list[str]
) -> str:
    """One webhook through ``POST /v1/webhooks`` (``auth.mode`` none); its id."""
    response = api.post(
        "/v1/webhooks",
        json={"name": name, "url": url, "events": events, "sites": sites, "auth": {"mode": "none"}},
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating a webhook: {response.status_code} {response.text}")
    return str(response.json()["id"])
