"""Batched, durable writes of attempt rows: many rows per transaction, each caller told
when its row is committed so it can ack its message only then."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, insert

from consumers.hooks import WorkerHooks
from router.models import DeliveryAttempt

log = logging.getLogger(__name__)
_RETRY_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class OutcomeWriter:
    """Collects attempt rows and commits them in batches on one writer thread.

    A batch closes when it holds ``batch_size`` rows or ``batch_wait_ms`` after its first
    row. A failed commit is retried with backoff, holding its callers (and so their
    unacked messages) until the database is back: rows are never dropped.
    """

    def __init__(
        self, engine: Engine, batch_size: int, batch_wait_ms: float, hooks: WorkerHooks
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_ms / 1000
        self._hooks = hooks
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-writer")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="log-writer")

    async def write(self, row: dict[str, Any]) -> None:
        """Queue a row and wait until it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((row, future))
        await future

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None and not self._task.done():
            await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self._batch_wait_s
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            await self._commit(loop, batch)

    async def _commit(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[dict[str, Any], asyncio.Future[None]]],
    ) -> None:
        rows = [row for row, _ in batch]
        attempt = 0
        while True:
            try:
                await loop.run_in_executor(self._executor, self._insert, rows)
                break
            except Exception:
                self._hooks.on_log_error()
                delay = _RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S) - 1)]
                log.exception("writing %d log rows failed; retrying in %.1f s", len(rows), delay)
                attempt += 1
                await asyncio.sleep(delay)
        self._hooks.on_log_batch(len(rows))
        for _, future in batch:
            if not future.done():
                future.set_result(None)
            self._queue.task_done()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(DeliveryAttempt), rows)
