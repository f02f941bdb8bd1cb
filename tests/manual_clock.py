"""A clock that moves only when a test moves it: sleepers wake as :meth:`advance` passes them.

Unlike :class:`tests.clock.FakeClock`, whose every sleep returns at once, this one lets a test
check what happens *before* a timer runs out (a linger, a flush age, a progress interval).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

#: event-loop turns given to woken tasks after each step of ``advance``
_TURNS = 20


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Return once :meth:`advance` moved the clock ``seconds`` past now."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._count += 1
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), self._count, future))
        await future

    @property
    def started(self) -> int:
        """Sleeps started so far."""
        return self._count

    @property
    def sleeping(self) -> int:
        """Sleeps in progress (a cancelled one no longer counts)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, waking each sleeper at its due time, in order, and
        giving the woken tasks a few turns of the event loop."""
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
                await turns()
        self.now = target
        await turns()


async def turns(n: int = _TURNS) -> None:
    """Let other tasks run ``n`` turns of the event loop."""
    for _ in range(n):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], n: int = 1000) -> None:
    """Let other tasks run until ``condition`` holds (AssertionError after ``n`` turns)."""
    for _ in range(n):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
