"""An HTTP endpoint that misbehaves in a different way on each path, for the fault tests.

Paths: ``/silent`` reads the request and never answers; ``/trickle`` answers 200 then sends
its body a byte every 100 ms; ``/huge`` sends a 20 MB body; ``/redirect`` answers 302 to
``/elsewhere``; ``/reset`` resets the connection; ``/garbage`` answers bytes that are not
HTTP. It runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from types import TracebackType

PATHS = ("silent", "trickle", "huge", "redirect", "reset", "garbage")
HUGE_BYTES = 20 * 1024 * 1024


class HostileServer:
    """Listens on 127.0.0.1:<free port>; ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode().strip("/")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.hits[path] += 1
                if not await self._answer(path, reader, writer):
                    break
        with contextlib.suppress(OSError):
            writer.close()
        self._writers.discard(writer)

    async def _answer(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Misbehave as ``path`` says; True to keep the connection for another request."""
        if path == "silent":
            await reader.read()  # until the client gives up
            return False
        if path == "trickle":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            for _ in range(100_000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
            return False
        if path == "huge":
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\n")
            writer.write(b"content-length: %d\r\n\r\n" % HUGE_BYTES)
            chunk = b"y" * 65536
            for _ in range(HUGE_BYTES // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            return True
        if path == "redirect":
            writer.write(b"HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            return True
        if path == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        # garbage
        writer.write(b"SURPRISE! \x00\x01\x02 this is not HTTP\r\n\r\n")
        await writer.drain()
        return False

    def __enter__(self) -> HostileServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        async def stop() -> None:
            # Every connection closed and every handler finished before the loop closes:
            # a transport outliving its loop warns when it is collected.
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
