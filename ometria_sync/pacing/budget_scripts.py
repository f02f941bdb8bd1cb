"""The account's budget in Redis: its keys, the two scripts that keep it, and their calls.

Every call runs atomically on Redis's own clock (``TIME``), so clock skew between hosts cannot
put two requests in one slot; each call also measures the offset between Redis's clock and
this process's loop (the middle of the round trip, so it errs by half a trip at most), which
turns Redis times into loop times and back. ``shared_budget.lua`` reserves a slot (or only
updates the shared state); ``DEPART`` confirms a departure at its slot. Guarantee: while Redis
is away a call is retried for ``retry_for`` seconds and nothing is granted meanwhile; after
that the budget is lost for good (:class:`RateBudgetError`, here and on every later call).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import RateBudgetError
from ometria_sync.net.urls import safe_message
from ometria_sync.pacing.budget_stats import BudgetStats

log = structlog.get_logger("ometria_sync.shared_budget")

T = TypeVar("T")
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
GO, VOID, WAIT = 1, 0, 2
#: keys live this long (ms) after the last call; a paused account's longer
_TTL_MS = 10_000


class BudgetScripts:
    """The scripts of the account under ``prefix``, called for the process ``process``.
    Round trips and what Redis says of the account go to ``stats``."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        process: str,
        stats: BudgetStats,
        url: str,
        retry_for: float,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._depart_script = client.register_script(DEPART)
        self._keys = [prefix + "state", prefix + "departures", prefix + "processes"]
        self._process = process
        self._stats = stats
        self._url = url  # for messages: its secrets are scrubbed from every error
        self._retry_for = retry_for
        self._clock = clock
        self._sleep = sleep
        self._known = False
        self._offset = 0.0  # Redis time minus loop time (s)
        #: set once Redis stayed away for ``retry_for`` seconds
        self.lost: RateBudgetError | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self, mode: str, member: str, *, cap: float, limit: float, margin: float, slack: float,
        successes: int, cut: bool, pause_until: float | None,
    ) -> float:
        """Run ``shared_budget.lua`` (``mode`` 'reserve' or 'update'; times in loop time) and
        return the reserved slot in loop time."""
        pause_us = 0 if pause_until is None else math.ceil((pause_until + self._offset) * 1e6)
        args: list[str | int | float] = [
            mode, repr(cap), repr(limit), repr(margin), member, self._process, successes,
            pause_us, int(cut), int(self._known), _TTL_MS, repr(slack)]
        reply, before, after = await self._timed(self._script(keys=self._keys, args=args))
        slot_us, now_us, processes, rate_milli, _paused = (int(x) for x in reply)
        self._known = True
        self._set_offset(now_us, before, after)
        stats = self._stats
        stats.processes = processes
        stats.max_processes = max(stats.max_processes, processes)
        stats.rate = rate_milli / 1000
        return slot_us / 1e6 - self._offset

    async def depart(self, member: str, n: int, span_us: int) -> tuple[int, float]:
        """Confirm ``member``'s departure now (Redis time, so a late wake-up counts as late):
        ``(GO, now)``; ``(VOID, now)`` when the account is paused or Redis lost its state
        meanwhile (the slot is given up); ``(WAIT, at)`` when departures reported late filled
        the last ``span_us`` with ``n``: come back at ``at`` (all loop times)."""
        reply, before, after = await self._timed(
            self._depart_script(keys=self._keys[:2], args=[member, n, span_us]))
        status, now_us, at_us = (int(x) for x in reply)
        self._set_offset(now_us, before, after)
        return status, (at_us if status == WAIT else now_us) / 1e6 - self._offset

    async def move(self, member: str, at: float) -> None:
        """``member`` really left at ``at`` (loop time): move it there, never earlier. A
        failure is only logged: the next reservation will find Redis gone."""
        try:
            await self._timed(self._client.zadd(
                self._keys[1], {member: math.ceil((at + self._offset) * 1e6)}, xx=True, gt=True))
        except (RedisError, OSError) as exc:
            log.debug("departure_not_recorded", error=safe_message(exc, self._url))

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried while Redis is away; after ``retry_for`` seconds the budget is
        lost for good (``lost`` is set and raised)."""
        failed_at: float | None = None
        attempt = 0
        while True:
            try:
                return await call()
            except (RedisError, OSError) as exc:
                now = self._clock()
                failed_at = now if failed_at is None else failed_at
                if now - failed_at >= self._retry_for:
                    self.lost = RateBudgetError(
                        f"the shared rate budget at {self._stats.url} was unreachable for "
                        f"{now - failed_at:.0f} s ({safe_message(exc, self._url)}); "
                        "stopped sending, the checkpoints stay where they are"
                    )
                    raise self.lost from None
                if attempt == 0:
                    log.warning("rate_budget_unreachable", url=self._stats.url,
                                error=safe_message(exc, self._url),
                                retrying_for=self._retry_for)
                await self._sleep(min(1.0, 0.05 * 2**attempt))
                attempt += 1

    async def _timed(self, call: Awaitable[T]) -> tuple[T, float, float]:
        """``call``'s result and the loop times before and after it; every round trip, failed
        or not, is counted in the stats."""
        before = self._clock()
        try:
            result = await call
        finally:
            after = self._clock()
            self._stats.round_trip(after - before)
        return result, before, after

    def _set_offset(self, now_us: int, before: float, after: float) -> None:
        # Redis read its clock somewhere in [before, after]: the middle errs by half the trip
        self._offset = now_us / 1e6 - (before + after) / 2
