"""The in-process pacer: requests spaced evenly so that no second holds more than the limit.

Why not a leaky bucket (``AsyncLimiter(4, 1)``)? It lets 4 requests go at once and then one
every 0.25 s: 7 inside one second, and a strict server answers 429. Guarantees, for every
departure:

* the window (:mod:`~ometria_sync.pacing.window`): at most ``n = floor(rate)`` departures in
  any ``1 s + slack``, counted from when requests really left, so a strict server never counts
  more than ``rate`` in a sliding second, fractional rates included (4.5/s allows 4);
* the grid (:mod:`~ometria_sync.pacing.grid`): departures are due every
  ``(1 s + slack + margin / 2) / n``, late wake-ups made up for but never breaking the window;
* FIFO among callers, and no departure during a pause (:mod:`~ometria_sync.pacing.pauses`).

The *slack* covers what lies between this pacer's clock and the server's: a busy event loop,
the kernel, and the network's variation of the one-way delay. It is half the margin
(:mod:`~ometria_sync.pacing.margin`) plus what is measured
(:class:`~ometria_sync.pacing.jitter.Jitter`, up to ``jitter_cap``), never under
``jitter_floor`` (20 ms by default, which costs 2% of the rate).

"Really left" means when the request was written to the socket: the HTTP client reports it to
the :class:`Slot` it was given, so a request that waited for a new connection (a TLS handshake)
does not arrive right behind the next one.

One pacer serves every dispatcher of the process (all streams of a job share the account's
budget), so it also carries the process-wide reactions to Ometria's pushback: ``pause`` (a
``Retry-After``), ``throttled`` (a 429: pause everybody, widen the margin, AIMD), and
``observe_queue`` (the import queue's pressure, :mod:`~ometria_sync.pacing.rate`).

Time comes from an injected clock and sleep, so tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import math

from ometria_sync.clock import Clock, Sleep
from ometria_sync.net.backoff import Backoff
from ometria_sync.pacing.grid import CATCH_UP, Grid
from ometria_sync.pacing.jitter import Jitter
from ometria_sync.pacing.margin import Margin
from ometria_sync.pacing.pauses import Pauses
from ometria_sync.pacing.rate import RateControl
from ometria_sync.pacing.slot import Slot
from ometria_sync.pacing.window import Window

__all__ = ["Pacer", "Slot"]

#: the least slack (seconds) over any window of n departures: ordinary internet jitter
_JITTER_FLOOR = 0.020
#: the most the measured part of the slack grows to (seconds)
_JITTER_CAP = 0.06


class Pacer:
    """Evenly spaced departures at no more than ``rate`` per second, shared by all dispatchers."""

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.005,
        jitter_floor: float = _JITTER_FLOOR,
        jitter_cap: float = _JITTER_CAP,
        min_rate_fraction: float = 1 / 64,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._rate = RateControl(rate, min_rate_fraction)
        self._margin = Margin(margin)
        self._pauses = Pauses()
        self._grid = Grid()
        self._window = Window()
        self._jitter_floor = jitter_floor
        self._jitter = Jitter(jitter_cap, catch_up=CATCH_UP)
        self.largest_slack = 0.0  # the widest slack in force so far (seconds)
        self._started: float | None = None  # the first departure
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._lock = asyncio.Lock()

    def now(self) -> float:
        """The time on the clock departures are counted on."""
        return self._clock()

    @property
    def limit(self) -> float:
        """The configured rate (requests/s): the rate in force never exceeds it."""
        return self._rate.limit

    @property
    def rate(self) -> float:
        """The rate in force now (requests/s): the limit, lowered by AIMD and queue pressure."""
        return self._rate.current

    @property
    def margin(self) -> float:
        """The fraction of each interval kept free for jitter now (see ``pacing.margin``)."""
        return self._margin.value

    @property
    def queue_factor(self) -> float:
        """The share of the limit the import queue's fill leaves (1.0 with room to spare)."""
        return self._rate.queue_factor

    @property
    def slack(self) -> float:
        """Seconds kept free over any window of ``n`` departures (beyond one second) now."""
        rate = self.rate
        return self._slack(max(1.0, max(1, math.floor(rate)) / rate))

    def _slack(self, second: float) -> float:
        return max(self._jitter_floor, second * self._margin.value / 2 + self._jitter.measured)

    def _spacing(self) -> tuple[int, float, float]:
        """``(n, span, even)``: at most ``n`` departures in any ``span`` seconds, due every
        ``even`` seconds. ``span`` keeps the slack, ``even`` spreads the slack and another
        half margin, so the window binds only for a request that really left late."""
        rate = self.rate
        n = max(1, math.floor(rate))
        second = max(1.0, n / rate)  # longer than a second only below one request per second
        slack = self._slack(second)
        self.largest_slack = max(self.largest_slack, slack)
        return n, second + slack, (second + slack + second * self._margin.value / 2) / n

    def _ready_at(self, now: float) -> float:
        n, span, even = self._spacing()
        ready = max(self._pauses.until, self._grid.ready_at(even))
        return max(ready, self._window.ready_at(now, n, span))

    async def acquire(self, *, until_sent: bool = False) -> Slot:
        """Wait for a departure slot (FIFO among callers) and return it; give the request's
        real send time to ``Slot.sent`` if it may leave noticeably later than now.
        ``until_sent``: the slot counts as leaving now until ``Slot.sent`` or ``Slot.done``."""
        async with self._lock:
            slept_for: float | None = None
            while True:
                now = self._clock()
                ready = self._ready_at(now)
                if now >= ready:
                    break
                slept_for = ready
                await self._sleep(ready - now)
            if slept_for is not None:
                self._jitter.observe_lateness(now - slept_for)
            _, span, even = self._spacing()  # after the lateness: it may widen the slack
            self._grid.depart(now, self._pauses.until, even)
            if self._started is None:
                self._started = now
            slot = Slot(now, self, confirmed=not until_sent)
            self._window.add(slot, now, span)
            return slot

    def observe_network(self, seconds: float) -> None:
        """The network's variation of delay seen with an answer (seconds)."""
        self._jitter.observe_network(seconds)

    def pause(self, seconds: float) -> None:
        """No request leaves for ``seconds`` from now (extends, never shortens, a pause)."""
        self._pauses.hold(self._clock() + seconds)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429 arrived: the one entry point for it. Pause everybody and return the pause
        (``retry_after`` is a floor); widen the margin or cut the rate where the 429s ask.

        ``queue_remaining`` (``X-QueueSize-Remaining`` with the 429) over 0 says the import
        queue had room, so the 429 was the rate: this pacer kept the window by its own clock
        and the server's count differed by jitter. The first of such a streak pauses one
        interval, not a backoff step (at 200 requests/s a half-second step cost 100
        requests), and it is answered with margin, not with a cut, until the margin can widen
        no further (then the account's limit is lower than configured). A 429 for a request
        that left during the current pause reuses the current backoff step."""
        now = self._clock()
        streak = self._pauses.count_429(now)
        rate_only = bool(queue_remaining)
        jitter = rate_only and self._margin.can_widen  # the margin can still answer it
        self._margin.on_429(now, self.rate, self._started if self._started is not None else now)
        self._rate.on_429(now, jitter=jitter)
        if rate_only and streak <= 1 and retry_after is None:
            delay = self._spacing()[2]
        else:
            delay = backoff.delay(max(0, streak - 1), retry_after)
        self.pause(delay)
        return delay

    def on_success(self) -> None:
        """A request was accepted: the 429 streak ends; win back 2% of the limit; after a
        quiet spell the margin narrows again."""
        self._pauses.end_streak()
        if self._margin.widened:
            self._margin.narrow(self._clock(), self.rate)
        self._rate.on_success()

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Ometria's import queue headers: the rate is scaled down while it is nearly full."""
        self._rate.observe_queue(remaining, limit)
