"""``webhook-router`` command line: serve, api, worker, publish, db, topology, keys, secrets,
logs.

Heavy modules are imported inside each command: ``serve`` must set up Prometheus'
multi-process directory before prometheus_client is first imported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from router.errors import RouterError
from router.logging_config import configure_logging
from router.settings import Settings, load_settings

log = logging.getLogger("webhook-router")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``webhook-router`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        args.handler(settings, args)
    except RouterError as exc:
        print(f"webhook-router: {exc}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webhook-router", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")

    serve = commands.add_parser("serve", help="API and workers in one (one machine)")
    _add_listen(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(handler=_serve)

    api = commands.add_parser("api", help="the config API alone")
    _add_listen(api)
    api.set_defaults(handler=_api)

    worker = commands.add_parser("worker", help="one delivery worker")
    worker.set_defaults(handler=_worker)

    publish = commands.add_parser("publish", help="publish an event from the shell")
    publish.add_argument("--type", required=True, dest="event_type")
    publish.add_argument("--account", required=True)
    publish.add_argument("--site", required=True)
    publish.add_argument("--data", default="{}", help="JSON, or @file, or @- for stdin")
    publish.add_argument("--id", dest="event_id", help="event id (default: generated)")
    publish.set_defaults(handler=_publish)

    db = commands.add_parser("db", help="database schema").add_subparsers(required=True)
    db.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=_db_upgrade)

    topology = commands.add_parser("topology", help="RabbitMQ topology").add_subparsers(
        required=True
    )
    topology.add_parser(
        "sync", help="declare exchanges, tiers and every webhook's queue and bindings"
    ).set_defaults(handler=_topology_sync)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--account", required=True)
    create.add_argument("--role", required=True, choices=["admin", "viewer"])
    create.set_defaults(handler=_keys_create)

    secrets = commands.add_parser("secrets", help="secrets encrypted at rest").add_subparsers(
        required=True
    )
    secrets.add_parser(
        "reencrypt", help="re-encrypt every stored secret with the first encryption key"
    ).set_defaults(handler=_secrets_reencrypt)

    logs = commands.add_parser("logs", help="delivery logs").add_subparsers(required=True)
    purge = logs.add_parser("purge", help="delete attempts older than the retention, now")
    purge.add_argument(
        "--older-than-days",
        type=_days,
        help="instead of ROUTER_LOG_RETENTION_DAYS (0: keep forever)",
    )
    purge.set_defaults(handler=_logs_purge)
    return parser


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not 0 <= days <= 36_500:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days from 0 to 36500")
    return days


def _add_listen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="webhook-router-metrics-")
    from router.supervisor import WorkerSupervisor

    # Workers get their grace period to finish deliveries, and a little more to close.
    supervisor = WorkerSupervisor(
        max(1, args.workers), dict(os.environ), stop_timeout_s=settings.shutdown_grace_s + 5
    )
    supervisor.start()
    base = f"http://{args.host}:{args.port}"
    print(
        f"webhook-router serving the API at {base}/v1 (docs {base}/docs), "
        f"the web pages at {base}/ui/, metrics at {base}/metrics, "
        f"with {args.workers} worker process(es).\n"
        "Create an admin key: webhook-router keys create --account ACCOUNT --role admin",
        flush=True,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; a handler of
    # our own turns that into a normal return so the workers get stopped too.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: None)
    try:
        _api(settings, args)
    finally:
        supervisor.stop()


def _api(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from config.app import create_app
    from router.broker import BrokerAdmin
    from router.db import engine_from_settings
    from router.retention import PurgeLoop

    engine = engine_from_settings(settings)
    app = create_app(settings, engine, BrokerAdmin(settings.amqp_url.get_secret_value()))
    # Log retention runs beside the API: every deployment has one, and replicas take
    # turns through an advisory lock (router/retention.py).
    purge = PurgeLoop(
        engine,
        settings.log_retention_days,
        settings.log_purge_batch_size,
        settings.log_purge_interval_s,
    )
    purge.start()
    try:
        # log_config=None: uvicorn's loggers (access lines too) propagate to our root
        # handler instead of getting handlers and text formats of their own.
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=settings.log_level.lower(),
            log_config=None,
        )
    finally:
        purge.stop()


def _worker(settings: Settings, _args: argparse.Namespace) -> None:
    from consumers.hooks import MetricsHooks
    from consumers.probes import WorkerProbes
    from consumers.worker import Worker
    from router.db import engine_from_settings

    engine = engine_from_settings(settings)

    async def run() -> None:
        # Start-up objects (modules, settings, pools) never die: freezing them keeps the
        # collector from rescanning them, and a larger first generation lets the short-
        # lived garbage of each delivery die young without a collection per 700 objects.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(settings, engine, MetricsHooks())
        # Workers under ``serve`` share the API's /metrics (multi-process) and its probes.
        probes = None
        if settings.metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            probes = WorkerProbes(worker, engine, settings.metrics_host, settings.metrics_port)
            await probes.start()
        try:
            await worker.run(stop)
        finally:
            if probes is not None:
                await probes.stop()

    asyncio.run(run())
    engine.dispose()


def _publish(settings: Settings, args: argparse.Namespace) -> None:
    from router.publisher import Publisher, new_event

    data = _read_json(args.data)
    if not isinstance(data, dict):
        raise RouterError("--data must be a JSON object")
    event = new_event(args.event_type, args.account, args.site, data, event_id=args.event_id)
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        publisher.publish(event)
    print(event.id)


def _read_json(value: str) -> Any:
    try:
        if value == "@-":
            return orjson.loads(sys.stdin.buffer.read())
        if value.startswith("@"):
            return orjson.loads(Path(value[1:]).read_bytes())
        return orjson.loads(value)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RouterError(f"--data: {exc}") from None


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> None:
    from router.db import engine_from_settings
    from router.schema import upgrade_database

    engine = engine_from_settings(settings)
    upgrade_database(engine)
    engine.dispose()
    print("database schema is up to date")


def _topology_sync(settings: Settings, _args: argparse.Namespace) -> None:
    from router.broker import BrokerAdmin
    from router.db import engine_from_settings
    from router.sync import sync_topology

    engine = engine_from_settings(settings)
    started = time.perf_counter()
    count = sync_topology(settings, engine, BrokerAdmin(settings.amqp_url.get_secret_value()))
    engine.dispose()
    print(
        f"topology synced: shared exchanges and tiers, {count} webhook(s) "
        f"in {time.perf_counter() - started:.2f} s"
    )


def _keys_create(settings: Settings, args: argparse.Namespace) -> None:
    from config.auth import create_api_key
    from router.db import engine_from_settings, make_sessionmaker

    engine = engine_from_settings(settings)
    try:
        key = create_api_key(make_sessionmaker(engine), args.account, args.role)
    except ValueError as exc:
        raise RouterError(str(exc)) from None
    finally:
        engine.dispose()
    print(f"Created a {args.role} key for account {args.account}. It is shown only once:")
    print(key)


def _secrets_reencrypt(settings: Settings, _args: argparse.Namespace) -> None:
    from router.db import make_engine
    from router.encryption_keys import load_cipher
    from router.reencrypt import reencrypt_webhooks

    cipher = load_cipher(settings)
    engine = make_engine(settings.database_url.get_secret_value(), cipher)
    try:
        result = reencrypt_webhooks(engine, cipher)
    finally:
        engine.dispose()
    print(
        f"re-encrypted {result.rewritten} of {result.webhooks} webhook(s) with the first key"
        f" of {cipher.source}; the others already used it"
    )


def _logs_purge(settings: Settings, args: argparse.Namespace) -> None:
    from router.db import engine_from_settings
    from router.retention import purge_attempts, retention_cutoff

    days = settings.log_retention_days if args.older_than_days is None else args.older_than_days
    cutoff = retention_cutoff(days)
    if cutoff is None:
        print("log retention is 0 days (keep forever): nothing purged")
        return
    engine = engine_from_settings(settings)
    try:
        result = purge_attempts(engine, cutoff, settings.log_purge_batch_size)
    finally:
        engine.dispose()
    if result is None:
        print("another process is purging the logs right now: nothing done")
        return
    print(
        f"purged {result.rows} attempt(s) older than {days:g} days"
        f" in {result.batches} batch(es), {result.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
