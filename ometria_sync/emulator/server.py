"""Starting and stopping the emulator: in-process for tests, or as a foreground server."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ometria_sync.emulator.app import create_app
from ometria_sync.emulator.behaviour import STORE, EmulatorOptions


class RunningEmulator:
    """A started emulator: where it listens and what it has seen."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://{host}:{port}/v2"

    def stats(self) -> dict[str, Any]:
        store = self.app[STORE]
        return store.stats.snapshot(len(store.queue))


def _bound_port(site: web.TCPSite, asked: int) -> int:
    """The port the site really listens on (``asked`` may be 0)."""
    server: Any = site._server
    if server is None or not getattr(server, "sockets", None):
        return asked
    return int(server.sockets[0].getsockname()[1])


@asynccontextmanager
async def running_emulator(options: EmulatorOptions) -> AsyncIterator[RunningEmulator]:
    """Serve on ``options.host``/``options.port`` (0 picks a free port) until the block ends;
    the store is saved to ``options.store`` on the way out when one is set."""
    app = create_app(options)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    port = _bound_port(site, options.port)
    try:
        yield RunningEmulator(app, options.host, port)
    finally:
        if options.store:
            app[STORE].save(options.store)
        await runner.cleanup()


async def serve(options: EmulatorOptions) -> None:
    """Run until SIGINT/SIGTERM; prints the base URL a job file uses."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_emulator(options) as emu:
        print(f"emulator listening on {emu.url}", flush=True)
        await stop.wait()
        if options.store:
            emu.app[STORE].save(options.store)
    print("emulator stopped", file=sys.stderr)
