"""The shared pacer: requests spaced evenly so that no 1-second window holds more than the limit.

Why not a leaky bucket (``AsyncLimiter(4, 1)``)? It lets 4 requests go at once and then one
every 0.25 s: 7 inside one second, and a strict server answers 429. Here the capacity is one:
a request may leave ``interval = (1 + margin) / rate`` after the previous one *really* left, so any
window of one second holds at most ``rate`` departures (the margin, 1% by default, absorbs
scheduling jitter between departure and arrival).

One pacer serves every dispatcher of the process (all streams of a job share the account's
budget). It also carries the process-wide reactions to Ometria's pushback:

* ``throttled()``: after a 429 every dispatcher waits, not only the one that got it; the pause
  grows exponentially while 429s keep coming (a full import queue), counting one step per
  pause, so that the answers of requests already in flight do not escalate it;
* AIMD: repeated 429s halve the rate, each success wins back a little of it, never above the
  configured limit;
* ``observe_queue(remaining, limit)``: Ometria's ``X-QueueSize-Remaining`` header; the rate is
  scaled down as the import queue fills, before the 429 comes.

Time comes from an injected clock and sleep, so tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ometria_sync.pipeline.backoff import Backoff

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: 429s closer together than this (seconds) count as "repeated" and cut the rate
_REPEAT_WINDOW = 10.0
#: fraction of the import queue under which pushes slow down
_QUEUE_LOW_WATER = 0.2


class Pacer:
    """Evenly spaced departures at no more than ``rate`` per second, shared by all dispatchers."""

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.01,
        min_rate_fraction: float = 1 / 64,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.limit = rate
        self._margin = margin
        self._min_rate = rate * min_rate_fraction
        self._aimd_rate = rate
        self._queue_factor = 1.0
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._lock = asyncio.Lock()
        self._last_departure: float | None = None
        self._paused_until = 0.0
        self._last_throttle: float | None = None
        self._last_cut = -float("inf")
        self._queue_limit: int | None = None
        self._streak = 0  # 429 steps since the last success

    @property
    def rate(self) -> float:
        """The rate in force now (requests/s): the limit, lowered by AIMD and queue pressure."""
        return max(self._min_rate, min(self._aimd_rate, self.limit * self._queue_factor))

    @property
    def interval(self) -> float:
        return (1.0 + self._margin) / self.rate

    def _ready_at(self) -> float:
        spaced = -float("inf") if self._last_departure is None else (
            self._last_departure + self.interval
        )
        return max(spaced, self._paused_until)

    async def acquire(self) -> None:
        """Wait for this request's slot; return the moment it may leave (FIFO among callers)."""
        async with self._lock:
            while True:
                wait = self._ready_at() - self._clock()
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._last_departure = self._clock()

    def pause(self, seconds: float) -> None:
        """No request leaves for ``seconds`` from now (extends, never shortens, a pause)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(self, backoff: Backoff, retry_after: float | None) -> float:
        """A 429 arrived: pause everybody and return the pause. ``retry_after`` is a floor.

        A 429 for a request that left during the current pause (it was in flight) reuses the
        current step; one for a request sent after the pause escalates it."""
        now = self._clock()
        if now >= self._paused_until:
            self._streak += 1
        delay = backoff.delay(max(0, self._streak - 1), retry_after)
        self.pause(delay)
        self.on_throttled()
        return delay

    def on_throttled(self) -> None:
        """A 429 arrived. Another one within ``_REPEAT_WINDOW`` s halves the rate (AIMD), at
        most once a second, so that the answers of one burst of in-flight requests count once."""
        now = self._clock()
        repeated = self._last_throttle is not None and now - self._last_throttle < _REPEAT_WINDOW
        if repeated and now - self._last_cut >= 1.0:
            self._aimd_rate = max(self._min_rate, self._aimd_rate / 2)
            self._last_cut = now
        self._last_throttle = now

    def on_success(self) -> None:
        """A request was accepted: the 429 streak ends; win back 2% of the limit."""
        self._streak = 0
        if self._aimd_rate < self.limit:
            self._aimd_rate = min(self.limit, self._aimd_rate + self.limit * 0.02)

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Scale the rate down while Ometria's import queue is nearly full. ``limit`` may be
        None (a 429 carries only the remaining count): the last limit seen is used."""
        limit = limit or self._queue_limit
        if remaining is None or not limit or limit <= 0:
            return
        self._queue_limit = limit
        low_water = limit * _QUEUE_LOW_WATER
        self._queue_factor = 1.0 if remaining >= low_water else max(0.0, remaining / low_water)
