"""Real trials of the shared budget: processes (SharedBudget instances) pushing through the
real HTTP client to an emulator on 127.0.0.1 that counts arrivals, with what a trial needs
around them: a TCP proxy that delays one direction, a clock that can step, a gate that holds
a process back while the test stages Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from ometria_sync.emulator import EmulatorOptions, RunningEmulator, running_emulator
from ometria_sync.errors import ThrottledError
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.shared_budget import SharedBudget

KEY = "budget-trial-key"
BODY = (b'[{"@type": "contact", "@collection": "shop", "id": "c1", '
        b'"email": "c1@example.com"}]')


@contextlib.asynccontextmanager
async def strict_emulator(rate: float = 4.0) -> AsyncIterator[RunningEmulator]:
    """Ometria's strict sliding second at ``rate``, answering at once."""
    options = EmulatorOptions(api_key=KEY, rate=rate, port=0, seed=1, drain_per_second=0.0)
    async with running_emulator(options) as emu:
        yield emu


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read (order
    kept: a constant one-way delay, not a throttle)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            due, chunk = await queue.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    task = asyncio.create_task(pump())
    try:
        while True:
            chunk = await reader.read(65536)
            await queue.put((loop.time() + delay, chunk))
            if not chunk:
                break
        await task
    except (ConnectionError, asyncio.CancelledError):
        task.cancel()
        writer.close()


@contextlib.asynccontextmanager
async def delaying_proxy(target_port: int, delay: float) -> AsyncIterator[int]:
    """A TCP proxy on a free loopback port to ``target_port``: bytes from the client reach
    the server ``delay`` seconds late (a host that far farther away), answers come back at
    once. Yields the proxy's port."""
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", target_port)
        both = [asyncio.create_task(_relay(c_reader, s_writer, delay)),
                asyncio.create_task(_relay(s_reader, c_writer, 0.0))]
        tasks.update(both)
        await asyncio.gather(*both, return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class SteppingClock:
    """A process's monotonic clock that the test can step (to stand for Redis's clock
    stepping the other way)."""

    def __init__(self) -> None:
        self.delta = 0.0

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() + self.delta


class Gate:
    """A sleep that also waits for the gate to be open: holds a process back."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.open.wait()


def budget(url: str, prefix: str, limit: float = 4.0, **kwargs: Any) -> SharedBudget:
    return SharedBudget(aioredis.from_url(url), prefix, limit, url=url, **kwargs)


async def push_once(budget: SharedBudget, client: OmetriaClient) -> str:
    """One paced request, as the dispatcher makes it: the slot counts as leaving now until
    the client reports the body written. Returns the answer's status (or the error's name)."""
    slot = await budget.acquire(until_sent=True)
    try:
        result = await client.push(BODY, 1, slot.sent)
    except ThrottledError:
        slot.done()  # counted, not reacted to: the trial asserts on arrivals
        return "429"
    except BaseException:
        slot.done()
        raise
    slot.done(jitter=result.network_jitter)
    return str(result.status)


async def saturate(budget: SharedBudget, client: OmetriaClient, workers: int, until: float,
                   answers: list[str], *, every: float = 0.0) -> None:
    """``workers`` loops pushing until loop time ``until`` (each waits ``every`` between its
    requests)."""
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        while loop.time() < until:
            answers.append(await push_once(budget, client))
            if every:
                await asyncio.sleep(every)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def closing(*things: SharedBudget | OmetriaClient) -> None:
    for thing in things:
        await thing.aclose()


async def at(delay: float, action: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(delay)
    await action()
