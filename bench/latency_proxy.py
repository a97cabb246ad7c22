"""A TCP proxy on loopback that holds each HTTP request for a fixed delay before passing
it on: DynamoDB Local behind it answers as late as DynamoDB does (a few milliseconds a
request), which DynamoDB Local alone hides, so that concurrency and batching are
measured as they pay on AWS.

HTTP/1.1 on one connection is request, response, request: the first bytes a client sends
after a response (or on a new connection) start a request, and only those wait. The
proxy runs an event loop on a thread of its own; the bench's processes reach it over
loopback like the engine itself.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class LatencyProxy:
    def __init__(self, target: str, delay_s: float = 0.005) -> None:
        host_port = target.removeprefix("http://").rstrip("/")
        host, _, port = host_port.rpartition(":")
        self._target = (host or "127.0.0.1", int(port))
        self.delay_s = delay_s
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self.endpoint = ""

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=256), self._loop
        ).result(timeout=10)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._shut(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shut(self) -> None:
        """Stop listening and end every connection's task before the loop stops."""
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        answered = asyncio.Event()
        answered.set()  # a new connection: its first bytes start a request

        async def requests() -> None:
            while data := await client_reader.read(65536):
                if answered.is_set():
                    answered.clear()
                    self.requests += 1
                    await asyncio.sleep(self.delay_s)
                upstream_writer.write(data)
                await upstream_writer.drain()
            upstream_writer.close()

        async def responses() -> None:
            while data := await upstream_reader.read(65536):
                answered.set()
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        try:
            await asyncio.gather(requests(), responses())
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()
