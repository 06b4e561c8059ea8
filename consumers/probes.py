"""A worker's own HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for
orchestrators, answered by the worker's event loop (aiohttp, already its HTTP client).

Liveness is the loop answering at all: a worker stuck in a blocking call stops answering
and gets restarted. Readiness is what the worker needs to make progress: a consuming
broker connection and a database that takes its attempt rows.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from router.metrics import render_metrics

_DATABASE_CHECK_TIMEOUT_S = 2.0


class Consuming(Protocol):
    """What readiness asks of the worker: set while it is connected and consuming."""

    ready: asyncio.Event


class WorkerProbes:
    """Serves the probes and metrics on ``host:port`` until stopped."""

    def __init__(self, worker: Consuming, engine: Engine, host: str, port: int) -> None:
        self._worker = worker
        self._engine = engine
        self._host = host
        self._port = port
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(self.app, access_log=None)

    async def start(self) -> None:
        """Bind the port; raises OSError if it is taken."""
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def stop(self) -> None:
        """Close the port."""
        await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        broker = self._worker.ready.is_set()
        database = await self._database_ok()
        body = {
            "status": "ready" if broker and database else "unavailable",
            "database": "ok" if database else "unavailable",
            "broker": "ok" if broker else "unavailable",
        }
        return web.json_response(body, status=200 if broker and database else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = render_metrics()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _database_ok(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._select_one), _DATABASE_CHECK_TIMEOUT_S)
        except (SQLAlchemyError, TimeoutError):
            return False
        return True

    def _select_one(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("SELECT 1"))
