"""What a process tells the shared budget after a grant, off the request's path: when a
departure really left (``confirm``), and that its pending departures are still pending
(``renew``, twice a second while any is: a lease lapses 2 s after the last renewal, so a
process that dies holds a place that long at most).

Guarantee: confirmations and renewals reach Redis in the order they were made (one lock,
taken in FIFO order), so a renewal never brings back a departure already confirmed; each is
retried while Redis is away (a connection Redis dropped fails once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ometria_sync.clock import Sleep
from ometria_sync.errors import RateBudgetError

log = structlog.get_logger("ometria_sync.shared_budget")

#: a pending departure's lease is renewed this often (s)
_RENEW = 0.5
#: how long closing waits for reports still under way (s)
_CLOSE_WAIT = 2.0

#: ``call(mode, member, flag, extra)``: one script call, retried while Redis is away
Call = Callable[[str, str, int, tuple[str, ...]], Awaitable[Any]]


class BudgetReports:
    """The departures this process was granted ``until_sent`` and has not confirmed yet, and
    the background calls that tell Redis about them."""

    def __init__(self, call: Call, sleep: Sleep) -> None:
        self._call = call
        self._sleep = sleep
        self._pending: set[str] = set()
        self._lock = asyncio.Lock()
        self._leases: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self, member: str) -> None:
        """``member`` was granted ``until_sent``: keep its lease until it is confirmed."""
        self._pending.add(member)
        if self._leases is None or self._leases.done():
            self._leases = asyncio.get_running_loop().create_task(self._renew())

    def confirm(self, member: str, at_us: int) -> None:
        """``member`` left at ``at_us`` (Redis µs; 0: now, it was given up)."""
        self._pending.discard(member)
        self.spawn(self._report("confirm", member, at_us))

    def spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._leases is not None:
            self._leases.cancel()
        if self._tasks:  # reports still under way; a Redis gone does not hold us long
            _, late = await asyncio.wait(self._tasks, timeout=_CLOSE_WAIT)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _renew(self) -> None:
        while self._pending:
            await self._sleep(_RENEW)
            if self._pending:
                await self._report("renew", "", 0, tuple(sorted(self._pending)))

    async def _report(self, mode: str, member: str, flag: int,
                      extra: tuple[str, ...] = ()) -> None:
        async with self._lock:
            try:
                await self._call(mode, member, flag, extra)
            except RateBudgetError as exc:  # a lease left behind lapses by itself
                log.debug("departure_not_recorded", error=str(exc))
