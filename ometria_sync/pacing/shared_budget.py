"""One account's rate budget shared through Redis by every process that names it.

The Redis side keeps the rules of the in-process :class:`~ometria_sync.pacing.pacer.Pacer`
across processes (:mod:`~ometria_sync.pacing.redis_budget`): departures due every
``(1 + margin) / rate`` seconds on an even grid (lateness up to 0.1 s made up for, more
restarts the grid), and at most ``floor(rate)`` departures in any second plus the slack plus
the *spread* (below), counted from the recent departures of *every* process. The caller
sleeps until its slot (Redis time turned into its loop's time) and confirms it there.

Guarantees (at most N *arrivals* at Ometria in any sliding second):

* a departure granted ``until_sent`` counts as leaving no earlier than now, for every process,
  until its body is written (``SharedSlot.sent``) or it is given up (``done``): a request
  stuck in connect holds the window; its lease is renewed, and lapses 2 s after a death;
* each process measures its distance to Ometria
  (:class:`~ometria_sync.pacing.redis_budget.Distance`) and publishes it; every window is
  widened by the spread between the farthest and the nearest live process (100 ms while one
  among several has fewer than 3 answers);
* Redis without its recent past (no state; the state written by another Redis, by INFO's
  run_id: a restart, a promoted replica, a reload; Redis's time behind the state's last
  write; departures gone), whoever calls first, or Redis's clock stepped either way against
  the monotonic clock of a process that called before: nobody departs for a full window;
* every granted departure is in the shared record for two windows at least after it left,
  whatever the pause before it;
* fairness: a process holds at most one reservation at a time, so processes are served in
  turn; a process that dies holds at most that slot and its lease;
* a 429 in any process pauses all of them (``Retry-After`` as the floor), and the AIMD halving
  (decided by a local :class:`Pacer`, the *advisor*) lowers the shared rate; every success,
  in any process, wins back 2% of the limit;
* Redis lost: nothing is sent; calls are retried for ``retry_for`` seconds, then
  :class:`RateBudgetError` stops the run with its checkpoints intact;
* nothing of the key reaches Redis (the account is the hash of the normalised base URL and
  the key), and the URL's password never appears in a message
  (:mod:`~ometria_sync.pacing.redis_budget`);
* confirmations and lease renewals (:class:`BudgetReports`, off the request's path) reach
  Redis in the order they were made.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import RateBudgetError
from ometria_sync.net import Backoff, redact_url, safe_message
from ometria_sync.pacing.budget_stats import BudgetStats
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.pacing.redis_budget import (
    GO,
    WAIT,
    BudgetScripts,
    Distance,
    Reply,
    account_prefix,
    open_client,
)

__all__ = ["SharedBudget", "SharedSlot"]

log = structlog.get_logger("ometria_sync.shared_budget")

#: the margin to start from, as the in-process pacer's: the jitter slack (20 ms floor, sent
#: with every reservation) covers the round trip between a confirmation and the socket write
_MARGIN = 0.005
#: a departure later than its slot by more than this (s) is reported to Redis
_LATE = 0.001
#: a pending departure's lease is renewed this often (s)
_RENEW = 0.5
#: how long closing waits for reports still under way (s)
_CLOSE_WAIT = 2.0

#: ``call(mode, member, flag, extra)``: one script call, retried while Redis is away
Call = Callable[[str, str, int, tuple[str, ...]], Awaitable[Any]]


class SharedBudget:
    """The :class:`~ometria_sync.pacing.pacer.RatePacer` of a budget shared through Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        limit: float,
        *,
        url: str,
        retry_for: float = 30.0,
        margin: float = _MARGIN,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be > 0")
        self.limit = limit
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        # decides pauses, margin and AIMD cuts from this process's answers; never paces
        self._advisor = Pacer(limit, margin=margin, clock=self._clock, sleep=self._sleep)
        self._lock = asyncio.Lock()
        self._process = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._successes = 0
        self._cuts = 0
        self._pause_until = 0.0  # loop time; this process's own 429 pauses
        self._distance = Distance()
        self._departed = False  # has asked to depart: its distance counts from then on
        self._reports = BudgetReports(self._reported, self._sleep)
        self.stats = BudgetStats(url=redact_url(url), rate=limit)
        self._url = url
        self._redis = BudgetScripts(
            client, prefix, process=self._process, stats=self.stats, url=url,
            retry_for=retry_for, clock=self._clock, sleep=self._sleep)

    # -- connecting ---------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, url: str, *, base_url: str, api_key: str, limit: float, retry_for: float = 30.0,
        **kwargs: Any,
    ) -> SharedBudget:
        """Connect and make one call; raises :class:`RateBudgetError` (nothing sent yet) when
        Redis cannot be reached or refuses us."""
        safe = redact_url(url)
        try:
            client = open_client(url)
        except (ValueError, RedisError) as exc:
            raise RateBudgetError(
                f"ometria.rate_limit_url {safe}: {safe_message(exc, url)}"
            ) from None
        budget = cls(client, account_prefix(base_url, api_key), limit, url=url,
                     retry_for=retry_for, **kwargs)
        try:
            await budget._call("update")
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise RateBudgetError(
                f"the shared rate budget cannot be reached at {safe}: "
                f"{safe_message(exc, budget._url)}; "
                "nothing was sent (start Redis, or remove ometria.rate_limit_url to pace "
                "this process alone)"
            ) from None
        return budget

    def now(self) -> float:
        """The clock departures are counted on (loop time)."""
        return self._clock()

    async def aclose(self) -> None:
        await self._reports.aclose()
        await self._redis.aclose()

    # -- the RatePacer protocol ---------------------------------------------------------------

    @property
    def rate(self) -> float:
        return max(self.limit / 64,
                   min(self.stats.rate, self.limit * self._advisor.queue_factor))

    @property
    def margin(self) -> float:
        return self._advisor.margin

    @property
    def slack(self) -> float:
        return self._advisor.slack

    @property
    def largest_slack(self) -> float:
        return max(self._advisor.largest_slack, self._advisor.slack)

    def observe_network(self, seconds: float) -> None:
        self._advisor.observe_network(seconds)

    def pause(self, seconds: float) -> None:
        """Every process waits ``seconds`` from now (a Retry-After on a 5xx)."""
        self._pause_until = max(self._pause_until, self._clock() + seconds)
        self._reports.spawn(self._update())

    async def acquire(self, *, until_sent: bool = False) -> SharedSlot:
        """Reserve the account's next departure, sleep until it (first come, first served
        among processes), and confirm it with Redis: a slot that a 429 in any process paused
        meanwhile is given up and another reserved. Raises :class:`RateBudgetError` once Redis
        stayed unreachable for ``retry_for`` seconds. With ``until_sent`` the departure counts
        as leaving no earlier than now, for every process, until ``sent`` or ``done`` (its
        lease is renewed meanwhile; a process that dies lets it lapse 2 s later)."""
        async with self._lock:
            while True:
                if self._redis.lost is not None:
                    raise self._redis.lost
                self._seq += 1
                member = f"{self._process}:{self._seq}"
                started = self._clock()
                slot = (await self._redis.retrying(
                    functools.partial(self._call, "reserve", member))).result
                wait = max(0.0, slot - started)
                now = self._clock()
                if slot > now:
                    await self._sleep(slot - now)
                if self._pause_until > self._clock():
                    continue  # a 429 of ours came meanwhile; the slot counts, unused
                self._departed = True
                while True:
                    reply = await self._redis.retrying(functools.partial(
                        self._call, "depart", member, flag=int(until_sent)))
                    if reply.result != WAIT:
                        break
                    await self._sleep(max(0.0, reply.at - self._clock()))
                if reply.result == GO:
                    break
            left = reply.now
            self.stats.granted(left, wait, max(0.0, left - slot))
            if until_sent:
                self._reports.pending(member)
            return SharedSlot(self, member, left, pending=until_sent)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429: pause every process (the pause the advisor's rules give), and halve the
        shared rate when those rules cut it."""
        before = self._advisor.rate
        delay = self._advisor.throttled(backoff, retry_after, queue_remaining)
        if self._advisor.rate < before:
            self._cuts += 1
        self._pause_until = max(self._pause_until, self._clock() + delay)
        self._reports.spawn(self._update())
        return delay

    def on_success(self) -> None:
        self._advisor.on_success()
        self._successes += 1

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """The advisor keeps the queue's pressure; the shared rate is capped by it."""
        self._advisor.observe_queue(remaining, limit)

    # -- telling Redis ------------------------------------------------------------------------

    def confirm(self, member: str, at: float | None) -> None:
        """``member`` really left at ``at`` (loop time; None: now, it was given up): record it
        there in Redis (never earlier than granted) and end its lease."""
        self._reports.confirm(member, 0 if at is None else self._redis.to_redis(at))

    def observe_distance(self, seconds: float) -> None:
        """A request's round trip, body written to answer read (seconds)."""
        self._distance.observe(seconds)

    async def _reported(self, mode: str, member: str, flag: int,
                        extra: tuple[str, ...]) -> Reply:
        return await self._redis.retrying(functools.partial(
            self._call, mode, member, flag=flag, extra=extra))

    async def _update(self) -> None:
        try:
            await self._call("update")
        except (RedisError, OSError) as exc:
            log.debug("pause_not_shared_yet", error=safe_message(exc, self._url))

    async def _call(self, mode: str, member: str = "", *, flag: int = 0,
                    extra: tuple[str, ...] = ()) -> Reply:
        """One script call with what this process has to tell: its pause, the queue's cap,
        the advisor's margin and slack, its distance to Ometria, and the successes and cuts
        since the last call."""
        pause_until = self._pause_until if self._pause_until > self._clock() else None
        successes, cuts = self._successes, self._cuts
        distance = self._distance.value
        reply = await self._redis.call(
            mode, member, cap=self.limit * self._advisor.queue_factor, limit=self.limit,
            margin=self._advisor.margin, slack=self._advisor.slack, successes=successes,
            cut=cuts > 0, pause_until=pause_until, flag=flag, extra=extra,
            distance="" if not self._departed else
            "-1" if distance is None else str(math.ceil(distance * 1e6)))
        self._successes -= successes
        self._cuts -= cuts
        return reply


class SharedSlot:
    """A departure granted by :meth:`SharedBudget.acquire` (loop time ``at``).

    Granted with ``until_sent``, it is *pending*: every process counts it as leaving no
    earlier than now until ``sent`` or ``done`` tells Redis when it really left (``sent``: when
    the body was written; ``done`` without ``sent``: now). Otherwise only a departure more
    than a millisecond late is moved in Redis (never earlier). The time from ``sent`` to
    ``done`` is a round trip: it measures this process's distance to Ometria."""

    __slots__ = ("_budget", "_pending", "_sent_at", "at", "member")

    def __init__(self, budget: SharedBudget, member: str, at: float, *,
                 pending: bool = False) -> None:
        self._budget = budget
        self._pending = pending
        self._sent_at: float | None = None
        self.member = member
        self.at = at

    def __deepcopy__(self, memo: dict[int, object]) -> SharedSlot:
        """A handle on the shared budget, never copied (aioresponses deep-copies arguments)."""
        return self

    def sent(self, at: float) -> None:
        if self._sent_at is not None:
            return
        self._sent_at = at
        late = at > self.at + _LATE
        if late:
            self.at = at
        if late or self._pending:
            self._pending = False
            self._budget.confirm(self.member, self.at)

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over; the network's variation of delay widens the slack that every
        process's reservations keep (it is sent with this process's next reservation)."""
        if self._pending:
            self._pending = False
            self._budget.confirm(self.member, None)
        if self._sent_at is not None:
            self._budget.observe_distance(self._budget.now() - self._sent_at)
        if jitter is not None:
            self._budget.observe_network(jitter)


class BudgetReports:
    """The departures this process was granted ``until_sent`` and has not confirmed yet, and
    the background calls that tell Redis about them, off the request's path: when a departure
    really left (``confirm``), and that its pending departures are still pending (``renew``,
    twice a second while any is: a lease lapses 2 s after the last renewal, so a process that
    dies holds a place that long at most).

    Guarantee: confirmations and renewals reach Redis in the order they were made (one lock,
    taken in FIFO order), so a renewal never brings back a departure already confirmed; each
    is retried while Redis is away (a connection Redis dropped fails once)."""

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
