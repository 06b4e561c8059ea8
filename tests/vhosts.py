"""Private RabbitMQ vhosts for tests, made and deleted ahead of time by a background thread.

Each ``rabbitmqctl`` call starts an Erlang VM (about 0.5 s); three per test were most of
the suite's wall time. The pool keeps a few vhosts ready and deletes used ones behind the
tests' backs; at the end of the session it waits until every deletion is done.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue

_ATTEMPTS = 30  # a test may be restarting the broker: retry for about a minute


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl -q ARGS``, retrying while the broker is down."""
    for attempt in range(_ATTEMPTS):
        try:
            subprocess.run(
                ["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60
            )
            return
        except subprocess.CalledProcessError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(2)


def _create() -> str:
    vhost = f"wr-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


class VhostPool:
    """Hands out fresh vhosts; ``release`` deletes one later, in the background."""

    def __init__(self, ahead: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts")
        self._ready: SimpleQueue[Future[str]] = SimpleQueue()
        for _ in range(ahead):
            self._ready.put(self._executor.submit(_create))

    def take(self) -> str:
        """A vhost nobody used, guest allowed everything on it."""
        vhost = self._ready.get().result()
        self._ready.put(self._executor.submit(_create))
        return vhost

    def release(self, vhost: str) -> None:
        """Delete ``vhost`` and everything in it, without waiting."""
        self._executor.submit(rabbitmqctl, "delete_vhost", vhost)

    def close(self) -> None:
        """Delete what was made ahead, and wait for every deletion."""
        while not self._ready.empty():
            future = self._ready.get()
            self._executor.submit(lambda f=future: rabbitmqctl("delete_vhost", f.result()))
        self._executor.shutdown(wait=True)
