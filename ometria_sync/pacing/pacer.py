"""The in-process pacer: requests spaced evenly so that no second holds more than the limit.

First, what the pipeline asks of any pacer (:class:`RatePacer`) and the run lock's permit
(:class:`SendPermit`); then :class:`Pacer` and its mechanisms, top to bottom.

Why not a leaky bucket (``AsyncLimiter(4, 1)``)? It lets 4 requests go at once and then one
every 0.25 s: 7 inside one second, and a strict server answers 429. Guarantees, for every
departure:

* the window (:class:`_Window`): at most ``n = floor(rate)`` departures in
  any ``1 s + slack``, counted from when requests really left, so a strict server never counts
  more than ``rate`` in a sliding second, fractional rates included (4.5/s allows 4);
* the grid (:class:`_Grid`): departures are due every
  ``(1 s + slack + margin / 2) / n``, late wake-ups made up for but never breaking the window;
* FIFO among callers, and no departure during a pause (:class:`_Pauses`).

The *slack* covers what lies between this pacer's clock and the server's: a busy event loop,
the kernel, and the network's variation of the one-way delay. It is half the margin
(:class:`~ometria_sync.pacing.adaptation.Margin`) plus what is measured
(:class:`~ometria_sync.pacing.adaptation.Jitter`, up to ``jitter_cap``), never under
``jitter_floor`` (20 ms by default, which costs 2% of the rate).

"Really left" means when the request was written to the socket: the HTTP client reports it to
the :class:`Slot` it was given, so a request that waited for a new connection (a TLS handshake)
does not arrive right behind the next one.

One pacer serves every dispatcher of the process (all streams of a job share the account's
budget), so it also carries the process-wide reactions to Ometria's pushback: ``pause`` (a
``Retry-After``), ``throttled`` (a 429: pause everybody, widen the margin, AIMD), and
``observe_queue`` (the import queue's pressure): how the pace reacts is
:mod:`~ometria_sync.pacing.adaptation`; when a request may leave is all in this module.

Time comes from an injected clock and sleep, so tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from typing import Protocol

from ometria_sync.clock import Clock, Sleep
from ometria_sync.net import Backoff
from ometria_sync.pacing.adaptation import Jitter, Margin, RateControl

# -------------------------------------------------------------------------------------------------
# What the pipeline asks of a pacer, whichever one it has, and what the run lock answers.
#
# Two implementations of :class:`RatePacer`: :class:`~ometria_sync.pacing.pacer.Pacer` (one
# process owns the account's budget) and :class:`~ometria_sync.pacing.shared_budget.SharedBudget`
# (processes anywhere share it through Redis). The dispatchers and ``job_run`` see only this
# protocol.
#
# May a request leave now? The run lock's answer (:class:`SendPermit`), asked at every
# departure. A run lock that can be lost without the process noticing (PostgreSQL's, across a
# network) grants departures under a lease it renews on the server; :class:`PermittedPacer` asks
# it before a slot is taken and again just before the request leaves, so no request starts once
# the lease has run out. A lock that cannot be lost unnoticed (SQLite's ``flock``) always says
# yes.
# -------------------------------------------------------------------------------------------------

class Departure(Protocol):
    """One granted departure. ``sent(at)`` moves it to when the request really left (a loop
    time, never earlier than granted), so that later departures count from there."""

    def sent(self, at: float) -> None: ...

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over (answered or failed); ``jitter``: the network's variation of
        delay seen with the answer, if known, for the measured slack."""
        ...


class RatePacer(Protocol):
    """Evenly spaced departures within the account's rate limit, shared by all dispatchers."""

    @property
    def rate(self) -> float:
        """The rate in force now (requests/s)."""
        ...

    @property
    def slack(self) -> float:
        """Seconds kept free over any window of the limit's departures, beyond one second."""
        ...

    @property
    def largest_slack(self) -> float:
        """The widest slack in force so far (for the run report)."""
        ...

    async def acquire(self, *, until_sent: bool = False) -> Departure:
        """Wait for a departure slot and return it; with ``until_sent`` it counts as leaving
        no earlier than now until ``sent`` or ``done`` is called."""
        ...

    def pause(self, seconds: float) -> None:
        """No request leaves for ``seconds`` from now, in any dispatcher (a Retry-After)."""
        ...

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429 arrived (the one entry point for it): pause everybody and return the pause.
        ``retry_after`` is a floor; ``queue_remaining`` over 0 says the import queue had room,
        so it was the rate, not a full queue."""
        ...

    def on_success(self) -> None:
        """A request was accepted."""
        ...

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """Ometria's import queue headers: slow down while it is nearly full."""
        ...


class SendPermit(Protocol):
    """The one hook the run lock implements for sending."""

    async def may_send(self) -> None:
        """Return when a request may leave now; wait while that is being checked; raise (a
        StateError: the run stops) when no request may leave any more."""
        ...


class PermittedPacer:
    """A :class:`RatePacer` whose departures also wait for ``permit``."""

    def __init__(self, pacer: RatePacer, permit: SendPermit) -> None:
        self._pacer = pacer
        self._permit = permit

    @property
    def rate(self) -> float:
        return self._pacer.rate

    @property
    def slack(self) -> float:
        return self._pacer.slack

    @property
    def largest_slack(self) -> float:
        return self._pacer.largest_slack

    async def acquire(self, *, until_sent: bool = False) -> Departure:
        await self._permit.may_send()  # a long wait (a fresh lock's) holds no slot
        slot = await self._pacer.acquire(until_sent=until_sent)
        try:
            await self._permit.may_send()  # the pacer may have waited past the lease
        except BaseException:
            slot.done()
            raise
        return slot

    def pause(self, seconds: float) -> None:
        self._pacer.pause(seconds)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        return self._pacer.throttled(backoff, retry_after, queue_remaining)

    def on_success(self) -> None:
        self._pacer.on_success()

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        self._pacer.observe_queue(remaining, limit)


__all__ = ["Pacer", "Slot"]

#: the least slack (seconds) over any window of n departures: ordinary internet jitter
_JITTER_FLOOR = 0.020
#: the most the measured part of the slack grows to (seconds)
_JITTER_CAP = 0.06
#: lateness made up for by closer departures (seconds); a departure later than that (nothing to
#: send, a pause) restarts the grid instead, so that no burst follows
CATCH_UP = 0.1
#: closest spacing while catching up, as a fraction of the even interval
MIN_SPACING = 0.5


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
        self._pauses = _Pauses()
        self._grid = _Grid()
        self._window = _Window()
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
        """The fraction of each interval kept free for jitter now (see ``adaptation.Margin``)."""
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


class Slot:
    """One departure granted by :meth:`Pacer.acquire`. ``sent(at)`` moves it to when the request
    really left (never earlier than granted), so that later departures count from there.

    A slot granted with ``until_sent=True`` is *unconfirmed* until ``sent`` or ``done`` is
    called, and counts as leaving no earlier than now meanwhile. ``done(jitter=...)`` after an
    answer feeds the network's measured variation of delay to the slack."""

    __slots__ = ("_pacer", "at", "confirmed")

    def __init__(self, at: float, pacer: Pacer | None = None, *, confirmed: bool = True) -> None:
        self.at = at
        self.confirmed = confirmed
        self._pacer = pacer

    def __deepcopy__(self, memo: dict[int, object]) -> Slot:
        """A slot is a handle on the shared pacer, never copied (aioresponses deep-copies the
        request's arguments, ``on_sent`` included)."""
        return self

    def sent(self, at: float) -> None:
        if at > self.at:
            self.at = at
        self.confirmed = True

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over. Never reported sent: it counts as having left now (it may
        have been written as it failed). ``jitter``: the network's variation of delay seen
        with the answer (seconds), if known."""
        pacer = self._pacer
        if pacer is None:
            return
        if not self.confirmed:
            self.sent(pacer.now())
        if jitter is not None:
            pacer.observe_network(jitter)


class _Window:
    """The sliding window: at most ``n`` departures in any ``span`` seconds; it keeps the
    recent departures, in grant order.

    This is the rule that holds the limit in every second a strict server may count, whatever
    the grid does; ``span`` is a second plus the pacer's slack. Departures count from when
    their requests really left (:meth:`Slot.sent`), and a slot not yet confirmed sent counts
    as leaving no earlier than now, so a request stuck in connect pushes the window forward
    instead of letting another one in. Guarantee: a departure is forgotten only once it is too
    old to share a window with any later one, and an unconfirmed one never is."""

    __slots__ = ("_recent",)

    def __init__(self) -> None:
        self._recent: list[Slot] = []

    def ready_at(self, now: float, n: int, span: float) -> float:
        """The earliest the next departure may leave without ``n + 1`` in ``span`` seconds
        (``-inf`` while fewer than ``n`` are remembered)."""
        recent = self._recent
        if len(recent) < n:
            return -float("inf")
        # an unconfirmed slot leaves no earlier than now
        times = [s.at if s.confirmed else max(s.at, now) for s in recent]
        return heapq.nlargest(n, times)[-1] + span

    def add(self, slot: Slot, now: float, span: float) -> None:
        """Remember ``slot`` (granted at ``now``) and forget the departures too old to share a
        ``span`` with any later one (never an unconfirmed one: it may leave any time)."""
        oldest = now - span - CATCH_UP
        self._recent = [s for s in self._recent if s.at > oldest or not s.confirmed]
        self._recent.append(slot)


class _Grid:
    """The even grid: when the next departure is due at ``even``-second intervals (loop
    times), each one interval after the previous one was *due*.

    Why "due" and not "left": a late wake-up (a busy event loop) is then made up for by the
    next few departures instead of lost, so the pacer keeps to the limit. Guarantees: two
    departures are never closer than ``MIN_SPACING`` of an interval, and a departure more than
    ``CATCH_UP`` late (nothing to send, a pause, the very first one) restarts the grid where it
    left, so no burst follows an idle spell. The grid alone does not hold the limit: the
    sliding window (:class:`_Window`) is checked for every departure."""

    __slots__ = ("due", "last")

    def __init__(self) -> None:
        self.due = -float("inf")  # when the next departure is due on the grid
        self.last = -float("inf")  # when the last one left

    def ready_at(self, even: float) -> float:
        """The earliest the next departure may leave by the grid."""
        return max(self.due, self.last + MIN_SPACING * even)

    def depart(self, now: float, paused_until: float, even: float) -> None:
        """A departure left at ``now``: place it on the grid (no earlier than the end of a
        pause) and make the next one due ``even`` seconds after that place."""
        place = max(self.due, paused_until)
        if now - place > CATCH_UP:
            place = now
        self.due = place + even
        self.last = now


class _Pauses:
    """Pauses every dispatcher waits out, and the streak of 429s that makes them grow.
    ``until``: no departure before this loop time. ``streak``: 429 steps since a success.

    One pause holds every caller of the pacer, not only the one that got the 429 or the
    ``Retry-After``: the account's budget is shared. Guarantees: a pause is only ever extended,
    never shortened; a 429 counts one more step of the streak only when its request was sent
    after the current pause began to hold (a 429 for a request already in flight reuses the
    step), so the answers of one burst do not escalate the backoff; a success ends the
    streak."""

    __slots__ = ("streak", "until")

    def __init__(self) -> None:
        self.until = 0.0
        self.streak = 0

    def hold(self, until: float) -> None:
        """No departure before ``until`` (extends, never shortens, a pause)."""
        self.until = max(self.until, until)

    def count_429(self, now: float) -> int:
        """A 429 arrived at ``now``: the streak grows unless a pause still holds (its request
        was in flight). Returns the streak."""
        if now >= self.until:
            self.streak += 1
        return self.streak

    def end_streak(self) -> None:
        self.streak = 0
