"""The shared pacer: requests spaced evenly so that no 1-second window holds more than the limit.

Why not a leaky bucket (``AsyncLimiter(4, 1)``)? It lets 4 requests go at once and then one
every 0.25 s: 7 inside one second, and a strict server answers 429. Here two rules hold for every
departure:

* the window: at most ``n = floor(rate)`` departures in any ``1 s + slack``, counted from when
  requests really left. The *slack* covers what lies between this pacer's clock and the
  server's: a busy event loop, the kernel, and the network's variation of the one-way delay
  (commonly tens of milliseconds). It is never under ``jitter_floor`` (20 ms by default, which
  costs 2% of the rate) and follows what is measured (:class:`~ometria_sync.pacing.jitter.Jitter`),
  up to ``jitter_cap``.
  So a strict server never counts more than ``rate`` in a sliding second, fractional rates
  included (4.5/s allows 4).
* the grid: departures are due every ``(1 s + slack + margin / 2) / n``, each one interval after
  the previous one was *due*, not after it really left, so that a late wake-up or a busy event
  loop is made up for by the next few instead of lost. Catch-up never breaks the window rule,
  which is checked for every departure, and never spaces two closer than half an interval. A
  departure more than 0.1 s late (nothing to send, a pause) restarts the grid: no burst follows
  an idle spell.

"Really left" means when the request was written to the socket: the HTTP client reports it to
the :class:`Slot` it was given, so a request that waited for a new connection (a TLS handshake)
does not arrive right behind the next one. Until a slot granted with ``until_sent=True`` is
confirmed sent, it counts as leaving *now* (a request stuck in connect, such as a SYN
retransmitted after 1 s, keeps pushing the window forward instead of letting a fifth request in).

One pacer serves every dispatcher of the process (all streams of a job share the account's
budget). It also carries the process-wide reactions to Ometria's pushback:

* ``pause(seconds)``: a server's ``Retry-After`` holds every dispatcher;
* ``throttled()``: after a 429 every dispatcher waits, not only the one that got it; the pause
  grows exponentially while 429s keep coming (a full import queue), counting one step per
  pause, so that the answers of requests already in flight do not escalate it. A 429 while the
  import queue has room is the rate: the server's clock saw more than the limit in some second,
  by jitter this pacer could not see. It costs one interval, and the margin doubles (up to 4%)
  when 429s come often enough to cost more than the wider margin would, and halves again after
  a quiet spell (see ``_widen_margin`` and ``_narrow_margin``);
* AIMD: repeated 429s for a full (or unknown) import queue halve the rate, and so do rate 429s
  that go on with the margin at its widest (the account's limit is lower than configured);
  each success wins back a little of it, never above the configured limit;
* ``observe_queue(remaining, limit)``: Ometria's ``X-QueueSize-Remaining`` header; the rate is
  scaled down as the import queue fills, before the 429 comes.

Time comes from an injected clock and sleep, so tests move a fake clock instead of sleeping.
What each choice cost or won, measured, is in BENCHMARKS.md ("The pacer's design").
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Awaitable, Callable

from ometria_sync.net.backoff import Backoff
from ometria_sync.pacing.jitter import Jitter
from ometria_sync.pacing.slot import Slot

__all__ = ["Clock", "Pacer", "Sleep", "Slot"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: 429s closer together than this (seconds) count as "repeated" and cut the rate
_REPEAT_WINDOW = 10.0
#: fraction of the import queue under which pushes slow down
_QUEUE_LOW_WATER = 0.2
#: lateness made up for by closer departures (seconds); a departure later than that (nothing to
#: send, a pause) restarts the grid instead, so that no burst follows
_CATCH_UP = 0.1
#: the most the margin grows to after 429s
_MAX_MARGIN = 0.04
#: closest spacing while catching up, as a fraction of the even interval
_MIN_SPACING = 0.5
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
        self.limit = rate
        self._margin = margin
        self._base_margin = margin
        self._margin_set_at = -float("inf")  # when the margin last changed
        self._throttles = 0  # 429s since then
        self._started: float | None = None  # the first departure
        self._min_rate = rate * min_rate_fraction
        self._aimd_rate = rate
        self._queue_factor = 1.0
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._lock = asyncio.Lock()
        # departures that may still share a window with the next one, in grant order
        self._recent: list[Slot] = []
        self._jitter_floor = jitter_floor
        self._jitter = Jitter(jitter_cap, catch_up=_CATCH_UP)
        self.largest_slack = 0.0  # the widest slack in force so far (seconds)
        self._due = -float("inf")  # when the next departure is due on the even grid
        self._last = -float("inf")  # when the last one left
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
    def margin(self) -> float:
        """The fraction of each interval kept free for jitter now (see ``_widen_margin`` and
        ``_narrow_margin``)."""
        return self._margin

    @property
    def slack(self) -> float:
        """Seconds kept free over any window of ``n`` departures (beyond one second) now."""
        rate = self.rate
        return self._slack(max(1.0, max(1, math.floor(rate)) / rate))

    def _slack(self, second: float) -> float:
        return max(self._jitter_floor, second * self._margin / 2 + self._jitter.measured)

    def _window(self) -> tuple[int, float, float]:
        """``(n, span, even)``: at most ``n`` departures in any ``span`` seconds, due every
        ``even`` seconds. ``span`` keeps the slack, ``even`` spreads the slack and another
        half margin, so the window binds only for a request that really left late."""
        rate = self.rate
        n = max(1, math.floor(rate))
        second = max(1.0, n / rate)  # longer than a second only below one request per second
        slack = self._slack(second)
        self.largest_slack = max(self.largest_slack, slack)
        return n, second + slack, (second + slack + second * self._margin / 2) / n

    def _ready_at(self, now: float) -> float:
        n, span, even = self._window()
        ready = max(self._paused_until, self._due, self._last + _MIN_SPACING * even)
        if len(self._recent) >= n:
            # an unconfirmed slot leaves no earlier than now
            times = [s.at if s.confirmed else max(s.at, now) for s in self._recent]
            ready = max(ready, heapq.nlargest(n, times)[-1] + span)
        return ready

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
            # this departure's place on the grid: lateness up to _CATCH_UP is made up for by
            # the next departures; after more (idle, first request) the grid starts again here
            place = max(self._due, self._paused_until)
            if now - place > _CATCH_UP:
                place = now
            self._due = place + self._window()[2]
            self._last = now
            if self._started is None:
                self._started = now
            slot = Slot(now, self, confirmed=not until_sent)
            # forget departures too old to share a window with any later one (but never an
            # unconfirmed one: it may leave any time)
            oldest = now - self._window()[1] - _CATCH_UP
            self._recent = [s for s in self._recent if s.at > oldest or not s.confirmed]
            self._recent.append(slot)
            return slot

    def observe_network(self, seconds: float) -> None:
        """The network's variation of delay seen with an answer (seconds)."""
        self._jitter.observe_network(seconds)

    def pause(self, seconds: float) -> None:
        """No request leaves for ``seconds`` from now (extends, never shortens, a pause)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429 arrived: pause everybody and return the pause. ``retry_after`` is a floor.

        A 429 for a request that left during the current pause (it was in flight) reuses the
        current step; one for a request sent after the pause escalates it. A 429 while the
        import queue has room (``queue_remaining > 0``) is the rate: this pacer kept the window
        by its own clock, so the server's count differed by jitter. The first of a streak
        pauses one interval, not a backoff step (at 200 requests/s a half-second step cost 100
        requests), and does not cut the rate (see ``on_throttled``)."""
        now = self._clock()
        if now >= self._paused_until:
            self._streak += 1
        rate_only = bool(queue_remaining)
        self.on_throttled(rate_only=rate_only)
        if rate_only and self._streak <= 1 and retry_after is None:
            delay = self._window()[2]
        else:
            delay = backoff.delay(max(0, self._streak - 1), retry_after)
        self.pause(delay)
        return delay

    def on_throttled(self, *, rate_only: bool = False) -> None:
        """A 429 arrived; ``rate_only`` when the import queue had room (the rate, not the queue).

        The 429s of one burst of in-flight requests (within a second) are one episode. Each
        episode may widen the margin (``_widen_margin``). Another one within
        ``_REPEAT_WINDOW`` s halves the rate (AIMD), at most once a second, unless it was the
        rate and the margin can still widen: jitter is answered with margin, and only rate
        429s that go on at the widest margin say the account's limit is lower than configured."""
        now = self._clock()
        last = self._last_throttle
        jitter = rate_only and self._margin < _MAX_MARGIN  # the margin can still answer it
        self._throttles += 1
        if last is None or now - last >= 1.0:
            self._widen_margin(now)
        repeated = last is not None and now - last < _REPEAT_WINDOW
        if repeated and not jitter and now - self._last_cut >= 1.0:
            self._aimd_rate = max(self._min_rate, self._aimd_rate / 2)
            self._last_cut = now
        self._last_throttle = now

    def _widen_margin(self, now: float) -> None:
        """Trade margin against 429s, whichever costs fewer departures (widening side).

        A 429 costs about two departures (the refused request sent again, and the pause), and
        margin ``m`` costs ``m * rate`` departures a second. When the 429s since the margin was
        set (or since the first departure) cost more than the margin did over that time, it
        doubles (up to ``_MAX_MARGIN``): at 4 requests/s a 429 within 100 s of the start does,
        at 200/s only 429s more often than one a second do."""
        spent = self._margin * self.rate * (now - max(self._margin_set_at, self._first(now)))
        if 2.0 * self._throttles > spent and self._margin < _MAX_MARGIN:
            self._set_margin(now, min(_MAX_MARGIN, self._margin * 2))

    def _narrow_margin(self, now: float) -> None:
        """The other side of ``_widen_margin``: after a spell without a 429 as long as would
        pay for two of them at half the margin (``4 / (m * rate)`` seconds: 100 s at 1% and
        4/s, 2 s at 1% and 200/s), the margin halves, down to the configured one."""
        quiet = now - max(self._margin_set_at, self._last_throttle or -float("inf"))
        if quiet * self.rate * self._margin >= 4.0:
            self._set_margin(now, max(self._base_margin, self._margin / 2))

    def _set_margin(self, now: float, margin: float) -> None:
        self._margin = margin
        self._margin_set_at = now
        self._throttles = 0

    def _first(self, now: float) -> float:
        return self._started if self._started is not None else now

    def on_success(self) -> None:
        """A request was accepted: the 429 streak ends; win back 2% of the limit; after a
        quiet spell the margin narrows again."""
        self._streak = 0
        if self._margin > self._base_margin:
            self._narrow_margin(self._clock())
        if self._aimd_rate < self.limit:
            self._aimd_rate = min(self.limit, self._aimd_rate + self.limit * 0.02)

    @property
    def queue_factor(self) -> float:
        """The share of the limit the import queue's fill leaves (1.0 with room to spare)."""
        return self._queue_factor

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Scale the rate down while Ometria's import queue is nearly full. ``limit`` may be
        None (a 429 carries only the remaining count): the last limit seen is used."""
        limit = limit or self._queue_limit
        if remaining is None or not limit or limit <= 0:
            return
        self._queue_limit = limit
        low_water = limit * _QUEUE_LOW_WATER
        self._queue_factor = 1.0 if remaining >= low_water else max(0.0, remaining / low_water)
