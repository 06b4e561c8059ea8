"""Private RabbitMQ vhosts for tests, made and deleted ahead of time by a background thread.

Through the management plugin's HTTP API when it is enabled (`.ci/run` enables it: about
30 ms a call), else with ``rabbitmqctl``, which starts an Erlang VM per call (about 0.5 s
and as much CPU): three calls per test were most of the suite's time. The pool keeps a few
vhosts ready and deletes used ones behind the tests' backs; at the end of the session it
waits until every deletion is done.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue
from urllib.parse import quote

import httpx

MANAGEMENT_URL = os.environ.get("TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
_ATTEMPTS = 30  # a test may be restarting the broker: retry for about a minute
_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}


def _retrying(action: Callable[[], None]) -> None:
    for attempt in range(_ATTEMPTS):
        try:
            action()
            return
        except (subprocess.CalledProcessError, httpx.HTTPError):
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(2)


class _Rabbitmqctl:
    """The slow way, always available where the broker runs."""

    def create(self, vhost: str) -> None:
        self._run("add_vhost", vhost)
        self._run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def delete(self, vhost: str) -> None:
        self._run("delete_vhost", vhost)

    def close(self) -> None:
        """Nothing held."""

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class _ManagementApi:
    """The management plugin's HTTP API, as guest."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def create(self, vhost: str) -> None:
        name = quote(vhost, safe="")
        self._client.put(f"/api/vhosts/{name}").raise_for_status()
        self._client.put(f"/api/permissions/{name}/guest", json=_PERMISSIONS).raise_for_status()

    def delete(self, vhost: str) -> None:
        self._client.delete(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self._client.close()


def _backend() -> _Rabbitmqctl | _ManagementApi:
    client = httpx.Client(base_url=MANAGEMENT_URL, auth=("guest", "guest"), timeout=30)
    try:
        client.get("/api/overview").raise_for_status()
    except httpx.HTTPError:
        client.close()
        return _Rabbitmqctl()
    return _ManagementApi(client)


class VhostPool:
    """Hands out fresh vhosts; ``release`` deletes one later, in the background."""

    def __init__(self, ahead: int = 2) -> None:
        self._backend = _backend()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhosts")
        self._ready: SimpleQueue[Future[str]] = SimpleQueue()
        for _ in range(ahead):
            self._ready.put(self._executor.submit(self._create))

    def _create(self) -> str:
        vhost = f"wr-test-{uuid.uuid4().hex[:12]}"
        _retrying(lambda: self._backend.create(vhost))
        return vhost

    def _delete(self, vhost: str) -> None:
        _retrying(lambda: self._backend.delete(vhost))

    def take(self) -> str:
        """A vhost nobody used, guest allowed everything on it."""
        vhost = self._ready.get().result()
        self._ready.put(self._executor.submit(self._create))
        return vhost

    def release(self, vhost: str) -> None:
        """Delete ``vhost`` and everything in it, without waiting."""
        self._executor.submit(self._delete, vhost)

    def close(self) -> None:
        """Delete what was made ahead, and wait for every deletion."""
        while not self._ready.empty():
            future = self._ready.get()
            self._executor.submit(lambda f=future: self._delete(f.result()))
        self._executor.shutdown(wait=True)
        self._backend.close()
