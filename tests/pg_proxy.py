"""A TCP proxy in front of the test PostgreSQL that can cut the network the way a partition or a
load balancer's idle timeout does: one connection *frozen* (nothing forwarded either way, the
client's socket left open: half-open, the client notices nothing), new connections refused, or
the whole database *cut* (every connection dies and the port stops listening) and restored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from tests.pg import DSN


class _Pair:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = False


class PgProxy:
    """``async with PgProxy.running() as proxy``: ``proxy.dsn`` reaches the test server."""

    def __init__(self) -> None:
        target = urlsplit(DSN)
        self._host = target.hostname or "127.0.0.1"
        self._port = target.port or 5432
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.pairs: list[_Pair] = []
        #: new connections are closed at once (a partition)
        self.refuse_new = False
        self.port = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[PgProxy]:
        proxy = cls()
        await proxy._listen()
        try:
            yield proxy
        finally:
            if proxy._server is not None:
                proxy._server.close()
            for task in proxy._tasks:
                task.cancel()
            await asyncio.gather(*proxy._tasks, return_exceptions=True)
            for writer in proxy._writers:
                writer.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """The database is gone: open connections die, new ones are refused (the port stops
        listening) until :meth:`restore`."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        """The database is back, on the same port."""
        await self._listen()

    @property
    def dsn(self) -> str:
        parts = urlsplit(DSN)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    @property
    def upstream_ports(self) -> set[int]:
        """The local ports of every upstream connection (the server's ``client_port``)."""
        return {pair.upstream_port for pair in self.pairs}

    def freeze(self, upstream_port: int) -> None:
        """Stop forwarding on the connection whose server side has ``client_port``."""
        for pair in self.pairs:
            if pair.upstream_port == upstream_port:
                pair.frozen = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.refuse_new:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        self._writers.append(up_writer)
        pair = _Pair(up_writer.get_extra_info("sockname")[1])
        self.pairs.append(pair)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(pair, source, sink))
            self._tasks.add(task)

    async def _pump(self, pair: _Pair, source: asyncio.StreamReader,
                    sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = await source.read(65536)
                if pair.frozen:  # swallowed; the client's socket stays open
                    await asyncio.Event().wait()
                if not data:
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()
