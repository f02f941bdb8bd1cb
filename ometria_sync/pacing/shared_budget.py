"""One account's rate budget shared through Redis by every process that names it.

Each reservation is one atomic Lua script (``shared_budget.lua``) on Redis's own clock
(``TIME``), so clock skew between hosts cannot put two requests in one slot. The script keeps
the rules of the in-process :class:`~ometria_sync.pacing.pacer.Pacer`: departures due every
``(1 + margin) / rate`` seconds on an even grid (lateness up to 0.1 s made up for, more
restarts the grid), and at most ``floor(rate)`` departures in any ``1 + margin / 2`` seconds,
counted from the recent departures of *every* process. The caller sleeps until its slot (Redis
time turned into its loop's time with the offset measured around the call) and reports a late
departure back (``Slot.sent``), which pushes the later reservations.

Guarantees:

* fairness: a process holds at most one reservation at a time (the local lock is held until its
  slot), so processes are served in turn, a big backfill beside a small job included;
* a process that dies holds at most the one slot it reserved; nothing else of it lingers
  (the keys expire a few seconds after the last process stops);
* a 429 in any process pauses all of them (``Retry-After`` as the floor), and the AIMD halving
  (decided here by a local :class:`Pacer` fed this process's answers) lowers the shared rate;
  every success, in any process, wins back 2% of the limit;
* Redis lost: nothing is sent (never a private budget, which would over-send); calls are
  retried for ``retry_for`` seconds, then :class:`RateBudgetError` stops the run with its
  checkpoints intact. Redis back with its state lost: nobody leaves for two seconds (nobody
  knows the last second's departures).

The account is known by ``sha256(base_url NUL api_key)[:16]``: nothing of the key reaches Redis.
The URL's password never appears in a message (:func:`redact_url`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import os
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ometria_sync.errors import RateBudgetError
from ometria_sync.net.backoff import Backoff
from ometria_sync.pacing.pacer import Pacer

log = structlog.get_logger("ometria_sync.shared_budget")

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SCRIPT = resources.files("ometria_sync.pacing").joinpath("shared_budget.lua").read_text()
#: at the slot (ARGV: member, n, span in µs): {1, now}: go, the departure is moved to now (a
#: late wake-up pushes the next ones); {0, now}: the account is paused or its state was lost,
#: the slot is given up; {2, now, at}: n others left in the last span (one left later than it
#: was reserved for, and said so), come back at ``at``
DEPART = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused'))
if paused == nil or paused > now then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0, now, 0}
end
local n = tonumber(ARGV[2])
local recent = redis.call('ZREVRANGEBYSCORE', KEYS[2], now, '(' .. (now - tonumber(ARGV[3])),
                          'WITHSCORES', 'LIMIT', 0, n + 1)
local seen = 0
for i = 1, #recent, 2 do
  if recent[i] ~= ARGV[1] then
    seen = seen + 1
    if seen == n then return {2, now, math.ceil(tonumber(recent[i + 1]) + tonumber(ARGV[3]))} end
  end
end
redis.call('ZADD', KEYS[2], 'XX', 'GT', now, ARGV[1])
return {1, now, 0}
"""
_GO, _VOID, _WAIT = 1, 0, 2
#: keys live this long (ms) after the last call; a paused account's longer
_TTL_MS = 10_000
#: the margin to start from, as the in-process pacer's: the jitter slack (20 ms floor, sent
#: with every reservation) covers the round trip between a confirmation and the socket write,
#: which at 1% margin and no slack had drawn 1-8 rate 429s in 25 s at 50/s (BENCHMARKS.md)
_MARGIN = 0.005
#: waits kept for the percentiles in the report
_SAMPLES = 5000
#: a departure later than its slot by more than this (s) is reported to Redis
_LATE = 0.001


def redact_url(url: str) -> str:
    """``url`` with its password (and a bare token user) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = parts.username if parts.password is not None else "***"
        auth = f"{user}:***" if parts.password is not None and user else "***"
        return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, ""))
    except ValueError:
        return "<unparsable redis URL>"


def account_prefix(base_url: str, api_key: str) -> str:
    """The Redis key prefix of one Ometria account: a hash, nothing of the key itself."""
    digest = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()[:16]
    return f"ometria-sync:{digest}:"


class BudgetStats(msgspec.Struct, kw_only=True):
    """What this process saw of the shared budget (for progress, the report and ``plan``)."""

    url: str
    #: processes that shared the budget: now, and the most at once during the run
    processes: int = 0
    max_processes: int = 0
    #: departures this process was granted, and when the first and the latest were
    requests: int = 0
    first_at: float | None = None
    last_at: float | None = None
    #: script calls and other Redis commands (``round_trips / requests`` per request)
    round_trips: int = 0
    #: seconds spent in Redis calls, summed
    redis_seconds: float = 0.0
    #: the shared rate last seen (requests/s)
    rate: float = 0.0
    #: seconds from asking Redis to the slot granted (waiting for this process's turn), and
    #: from the slot to the departure Redis confirmed (sleep overshoot + one round trip), for
    #: the last few thousand departures
    waits: list[float] = msgspec.field(default_factory=list)
    lateness: list[float] = msgspec.field(default_factory=list)

    def sample(self, wait: float, late: float) -> None:
        for values, value in ((self.waits, wait), (self.lateness, late)):
            values.append(value)
            if len(values) > 2 * _SAMPLES:
                del values[:_SAMPLES]

    def percentile_ms(self, name: Literal["waits", "lateness"], q: float) -> float | None:
        """The ``q`` quantile (0-1) of ``waits`` or ``lateness``, in milliseconds."""
        values: list[float] = sorted(self.waits if name == "waits" else self.lateness)
        if not values:
            return None
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)

    @property
    def requests_per_second(self) -> float | None:
        """What this process got: departures per second between its first and latest."""
        if self.requests < 2 or self.first_at is None or self.last_at is None:
            return None
        span = self.last_at - self.first_at
        return (self.requests - 1) / span if span > 0 else None


class SharedSlot:
    """A departure granted by :meth:`SharedBudget.acquire` (loop time ``at``)."""

    __slots__ = ("_budget", "at", "member")

    def __init__(self, budget: SharedBudget, member: str, at: float) -> None:
        self._budget = budget
        self.member = member
        self.at = at

    def sent(self, at: float) -> None:
        if at > self.at + _LATE:
            self.at = at
            self._budget.report_sent(self.member, at)

    def done(self, *, jitter: float | None = None) -> None:
        """The request is over; the network's variation of delay widens the slack that every
        process's reservations keep (it is sent with this process's next reservation)."""
        if jitter is not None:
            self._budget.observe_network(jitter)


class SharedBudget:
    """The :class:`~ometria_sync.pacing.protocol.RatePacer` of a budget shared through Redis."""

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
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._depart_script = client.register_script(DEPART)
        self._keys = [prefix + "state", prefix + "departures", prefix + "processes"]
        self._retry_for = retry_for
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        # decides pauses, margin and AIMD cuts from this process's answers; never paces
        self._advisor = Pacer(limit, margin=margin, clock=self._clock, sleep=self._sleep)
        self._lock = asyncio.Lock()
        self._process = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._known = False
        self._offset = 0.0  # Redis time minus loop time (s)
        self._successes = 0
        self._cuts = 0
        self._pause_until = 0.0  # loop time; this process's own 429 pauses
        self._lost: RateBudgetError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BudgetStats(url=redact_url(url), rate=limit)
        self._password = _password(url)

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
            client = aioredis.from_url(
                url, socket_timeout=2.0, socket_connect_timeout=2.0,
                retry=Retry(NoBackoff(), 0), health_check_interval=0,
            )
        except (ValueError, RedisError) as exc:
            raise RateBudgetError(
                f"ometria.rate_limit_url {safe}: {_safe(exc, _password(url))}") from None
        budget = cls(client, account_prefix(base_url, api_key), limit, url=url,
                     retry_for=retry_for, **kwargs)
        try:
            await budget._call("update")
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise RateBudgetError(
                f"the shared rate budget cannot be reached at {safe}: "
                f"{_safe(exc, budget._password)}; "
                "nothing was sent (start Redis, or remove ometria.rate_limit_url to pace "
                "this process alone)"
            ) from None
        return budget

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

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
        self._spawn(self._update())

    async def acquire(self, *, until_sent: bool = False) -> SharedSlot:
        """Reserve the account's next departure, sleep until it (first come, first served
        among processes), and confirm it with Redis: a slot that a 429 in any process paused
        meanwhile is given up and another reserved. Raises :class:`RateBudgetError` once Redis
        stayed unreachable for ``retry_for`` seconds. ``until_sent`` is accepted for the
        protocol: across processes a departure counts from its slot, and from when it really
        left once ``sent`` reports it later (a third round trip per request would be needed to
        hold other processes back while a request is still connecting)."""
        async with self._lock:
            while True:
                if self._lost is not None:
                    raise self._lost
                self._seq += 1
                member = f"{self._process}:{self._seq}"
                started = self._clock()
                slot = await self._retrying(functools.partial(self._call, "reserve", member))
                wait = max(0.0, slot - started)
                now = self._clock()
                if slot > now:
                    await self._sleep(slot - now)
                if self._pause_until > self._clock():
                    continue  # a 429 of ours came meanwhile; the slot counts, unused
                while True:
                    status, left = await self._retrying(functools.partial(self._depart, member))
                    if status != _WAIT:
                        break
                    await self._sleep(max(0.0, left - self._clock()))
                if status == _GO:
                    break
            self.stats.sample(wait, max(0.0, left - slot))
            self._granted(left)
            return SharedSlot(self, member, left)

    def throttled(
        self, backoff: Backoff, retry_after: float | None, queue_remaining: int | None = None
    ) -> float:
        """A 429: pause every process (the pause the local pacer's rules give), and halve the
        shared rate when those rules cut it."""
        before = self._advisor.rate
        delay = self._advisor.throttled(backoff, retry_after, queue_remaining)
        if self._advisor.rate < before:
            self._cuts += 1
        self._pause_until = max(self._pause_until, self._clock() + delay)
        self._spawn(self._update())
        return delay

    def on_success(self) -> None:
        self._advisor.on_success()
        self._successes += 1

    def observe_queue(self, remaining: int | None, limit: int | None) -> None:
        """The advisor keeps the queue's pressure; the shared rate is capped by it."""
        self._advisor.observe_queue(remaining, limit)

    # -- talking to Redis ---------------------------------------------------------------------

    def report_sent(self, member: str, at: float) -> None:
        """A departure left late: move it in Redis (never earlier) so later ones count from
        there."""
        self._spawn(self._moved(member, at))

    async def _moved(self, member: str, at: float) -> None:
        started = self._clock()
        try:
            await self._client.zadd(self._keys[1], {member: math.ceil((at + self._offset) * 1e6)},
                                    xx=True, gt=True)
        except (RedisError, OSError) as exc:  # the next reservation will find out
            log.debug("departure_not_recorded", error=_safe(exc, self._password))
        finally:
            self.stats.round_trips += 1
            self.stats.redis_seconds += self._clock() - started

    async def _update(self) -> None:
        try:
            await self._call("update")
        except (RedisError, OSError) as exc:
            log.debug("pause_not_shared_yet", error=_safe(exc, self._password))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried while Redis is away; after ``retry_for`` seconds the budget is
        lost for good (every later acquire raises at once)."""
        failed_at: float | None = None
        attempt = 0
        while True:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                now = self._clock()
                failed_at = now if failed_at is None else failed_at
                if now - failed_at >= self._retry_for:
                    self._lost = RateBudgetError(
                        f"the shared rate budget at {self.stats.url} was unreachable for "
                        f"{now - failed_at:.0f} s ({_safe(exc, self._password)}); stopped "
                        "sending, the checkpoints stay where they are"
                    )
                    raise self._lost from None
                if attempt == 0:
                    log.warning("rate_budget_unreachable", url=self.stats.url,
                                error=_safe(exc, self._password), retrying_for=self._retry_for)
                await self._sleep(min(1.0, 0.05 * 2**attempt))
                attempt += 1

    async def _depart(self, member: str) -> tuple[int, float]:
        """Confirm ``member``'s departure now (Redis time, so a late wake-up counts as late):
        ``(_GO, now)``; ``(_VOID, now)`` when the account is paused or Redis lost its state
        meanwhile (the slot is given up); ``(_WAIT, at)`` when a departure reported late
        filled the window: come back at ``at`` (all loop times)."""
        rate = self.rate
        n = max(1, math.floor(rate))
        span = (max(1.0, n / rate) + self.slack) * 1e6
        before = self._clock()
        try:
            reply = await self._depart_script(keys=self._keys[:2],
                                              args=[member, n, math.ceil(span)])
        finally:
            after = self._clock()
            self.stats.round_trips += 1
            self.stats.redis_seconds += after - before
        status, now_us, at_us = (int(x) for x in reply)
        self._offset = now_us / 1e6 - (before + after) / 2
        return status, (at_us if status == _WAIT else now_us) / 1e6 - self._offset

    async def _call(self, mode: str, member: str = "") -> float:
        pause_until = 0
        if self._pause_until > self._clock():
            pause_until = math.ceil((self._pause_until + self._offset) * 1e6)
        successes, cuts = self._successes, self._cuts
        cap = self.limit * self._advisor.queue_factor
        args: list[str | int | float] = [
            mode, repr(cap), repr(self.limit), repr(self._advisor.margin), member, self._process,
            successes, pause_until, int(cuts > 0), int(self._known), _TTL_MS,
            repr(self._advisor.slack)]
        before = self._clock()
        try:
            reply = await self._script(keys=self._keys, args=args)
        finally:
            after = self._clock()
            self.stats.round_trips += 1
            self.stats.redis_seconds += after - before
        slot_us, now_us, processes, rate_milli, _paused = (int(x) for x in reply)
        self._known = True
        self._successes -= successes
        self._cuts -= cuts
        # Redis read its clock somewhere in [before, after]: the middle errs by half the trip
        self._offset = now_us / 1e6 - (before + after) / 2
        self.stats.processes = processes
        self.stats.max_processes = max(self.stats.max_processes, processes)
        self.stats.rate = rate_milli / 1000
        return slot_us / 1e6 - self._offset

    def _granted(self, at: float) -> None:
        stats = self.stats
        stats.requests += 1
        if stats.first_at is None:
            stats.first_at = at
        stats.last_at = at

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def live_processes(url: str, *, base_url: str, api_key: str) -> int:
    """How many processes used the account's shared budget in the last 5 seconds (read only:
    the caller does not count itself in). Raises :class:`RateBudgetError`."""
    client = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                               retry=Retry(NoBackoff(), 0))
    try:
        seconds, micros = await client.time()
        now = seconds * 1_000_000 + micros
        key = account_prefix(base_url, api_key) + "processes"
        return int(await client.zcount(key, now - 5_000_000, "+inf"))
    except (RedisError, OSError) as exc:
        raise RateBudgetError(f"cannot reach {redact_url(url)}: "
                              f"{_safe(exc, _password(url))}") from None
    finally:
        await client.aclose()


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password or urlsplit(url).username
    except ValueError:
        return None


def _safe(exc: BaseException, password: str | None) -> str:
    """An exception's message without the URL's password (redis-py does not put it there, but
    every message is checked anyway)."""
    text = str(exc) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return text
