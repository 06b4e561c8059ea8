"""Worker processes for ``serve``: started, restarted when they die, stopped with the API."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Keeps ``count`` ``webhook-router worker`` processes alive until stopped."""

    def __init__(self, count: int, env: dict[str, str], stop_timeout_s: float) -> None:
        self._count = count
        self._env = env
        self._stop_timeout_s = stop_timeout_s
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start the workers and the thread that restarts them."""
        self._processes = [self._spawn() for _ in range(self._count)]
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, "-m", "router.cli", "worker"], env=self._env)
        log.info("started worker pid %d", process.pid)
        return process

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self._processes):
                code = process.poll()
                if code is None or self._stopping.is_set():
                    continue
                log.warning("worker pid %d exited with %s; restarting", process.pid, code)
                _mark_dead(process.pid)
                self._processes[index] = self._spawn()

    def stop(self) -> None:
        """SIGTERM every worker (they finish in-flight work), then wait; kill stragglers."""
        self._stopping.set()
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout_s
        for process in self._processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
            _mark_dead(process.pid)


def _mark_dead(pid: int) -> None:
    # Live gauges of a dead worker must leave the merged /metrics output.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
