"""The account's budget in Redis: its keys, the two scripts that keep it, and their calls.

Every call runs atomically on Redis's own clock (``TIME``), so clock skew between hosts cannot
put two requests in one slot; each call also measures the offset between Redis's clock and
this process's loop (the middle of the round trip, so it errs by half a trip at most), which
turns Redis times into loop times and back. ``shared_budget.lua`` reserves a slot (or only
updates the shared state); ``DEPART`` confirms a departure at its slot. Guarantee: while Redis
is away a call is retried for ``retry_for`` seconds and nothing is granted meanwhile; after
that the budget is lost for good (:class:`RateBudgetError`, here and on every later call).

Where one account's budget lives, and how the Redis URL stays secret. Guarantees: nothing of
the Ometria key reaches Redis (the account is known by
``sha256(normalised base_url NUL api_key)[:16]``: every spelling of the base URL that the
state calls one account, ``.../v2`` and ``.../v2/`` among them, is one budget), and no
secret of the URL (its password, a token user, a ``?password=``) appears in a message
(``net/urls.py``: the one redaction of every URL). Clients fail fast (2 s timeouts, no
retries of their own): the callers decide how long Redis may stay away.

How far this process is from Ometria (:class:`Distance`), published with every call: processes
at different network distances turn evenly spaced departures into bunched arrivals (a farther
one's request arrives later than it left, next to a nearer one's). Each process measures its
own distance as a low round trip, body written to answer read, over its recent requests (the
server's own time is in every sample, alike for every process, so the *difference* between
processes is the difference of their paths); the script widens every window by the spread
between the farthest and the nearest departing process.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar

import msgspec
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import RateBudgetError
from ometria_sync.net import normalise_url, redact_url, safe_message
from ometria_sync.pacing.budget_stats import BudgetStats

log = structlog.get_logger("ometria_sync.shared_budget")

T = TypeVar("T")
SCRIPT = resources.files("ometria_sync.pacing").joinpath("shared_budget.lua").read_text()
#: what ``depart`` says: go (the departure is recorded at Redis's now); void (the account is
#: paused or its state was lost: the slot is given up); wait (n others left in the last span,
#: one of them later than reserved, or one not written yet: come back at ``at``)
GO, VOID, WAIT = 1, 0, 2
#: keys live this long (ms) after the last call, and never less than two windows
_TTL_MS = 10_000
#: Redis's time against this process's monotonic clock may move this much (s) beyond the
#: measuring error, plus 1 ms/s of drift, before it counts as a step
_STEP = 0.005
#: recent round trips kept
_DISTANCE_SAMPLES = 128
#: round trips needed before the lowest counts
_DISTANCE_MIN_SAMPLES = 3


def account_prefix(base_url: str, api_key: str) -> str:
    """The Redis key prefix of one Ometria account: a hash, nothing of the key itself; the
    base URL normalised as the state's account identity does."""
    digest = hashlib.sha256(f"{normalise_url(base_url)}\0{api_key}".encode()).hexdigest()[:16]
    return f"ometria-sync:{digest}:"


def open_client(url: str) -> aioredis.Redis:
    """A client that fails fast: 2 s timeouts, no retries, no health checks."""
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0,
                             retry=Retry(NoBackoff(), 0), health_check_interval=0)


async def live_processes(url: str, *, base_url: str, api_key: str) -> int:
    """How many processes used the account's shared budget in the last 5 seconds (read only:
    the caller does not count itself in). Raises :class:`RateBudgetError`."""
    client = open_client(url)
    try:
        seconds, micros = await client.time()
        now = seconds * 1_000_000 + micros
        key = account_prefix(base_url, api_key) + "processes"
        return int(await client.zcount(key, now - 5_000_000, "+inf"))
    except (RedisError, OSError) as exc:
        raise RateBudgetError(f"cannot reach {redact_url(url)}: "
                              f"{safe_message(exc, url)}") from None
    finally:
        await client.aclose()


class Reply(msgspec.Struct, frozen=True):
    """One script call's answer, times in loop time. ``result``: the slot (reserve, loop
    time) or the status (depart); ``held``: Redis had lost its recent past and nothing leaves
    for a full window."""

    result: float
    now: float
    spread: float
    held: bool
    at: float


class BudgetScripts:
    """The script of the account under ``prefix``, called for the process ``process``.
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
        self._keys = [prefix + name
                      for name in ("state", "departures", "processes", "pending", "distances")]
        self._process = process
        self._stats = stats
        self._url = url  # for messages: its secrets are scrubbed from every error
        self._retry_for = retry_for
        self._clock = clock
        self._sleep = sleep
        self._server: str | None = None  # the run_id of the Redis last answering
        self._ask_server = True  # False once INFO is refused (a proxy): no run_id then
        self._check_server = True  # ask which Redis answers: first call, after a failure
        self._offset = 0.0  # Redis time minus loop time (s)
        self._bounds: tuple[float, float, float] | None = None  # offset low, high, at
        #: set once Redis stayed away for ``retry_for`` seconds
        self.lost: RateBudgetError | None = None

    async def aclose(self) -> None:
        await self._client.aclose()

    def to_redis(self, at: float) -> int:
        """A loop time in Redis's µs."""
        return math.ceil((at + self._offset) * 1e6)

    async def call(
        self, mode: str, member: str, *, cap: float, limit: float, margin: float, slack: float,
        successes: int, cut: bool, pause_until: float | None, distance: str, flag: int = 0,
        extra: tuple[str, ...] = (),
    ) -> Reply:
        """Run ``shared_budget.lua`` (times in loop time). A call that finds Redis's time
        stepped against this process's clock, or the state written by another Redis than the
        one answering, is made again saying so (what it granted is given up: the script
        holds the account a window); one that knew the wrong Redis is made again with the
        right one."""
        lost = False
        for _ in range(4):
            pause_us = 0 if pause_until is None else self.to_redis(pause_until)
            args: list[str | int | float] = [
                mode, repr(cap), repr(limit), repr(margin), member, self._process, successes,
                pause_us, int(cut), self._server or "", _TTL_MS, repr(slack), distance, flag,
                int(lost), *extra]
            reply, stored, current, before, after = await self._run(args)
            stepped = self._stepped(reply[1], before, after)
            self._offset = reply[1] / 1e6 - (before + after) / 2
            known, self._server = self._server or "", current
            new_server = stored not in ("", current)
            if new_server:  # which idea is stale, the state's or ours? ask Redis again
                self._check_server = True
            if (stepped or new_server) and not lost:
                log.warning("rate_budget_discontinuity", url=self._stats.url,
                            clock_step=stepped, new_server=new_server)
                lost = True
                continue
            if stored in ("", known) or reply[6]:  # else it skipped: it knew another Redis
                return self._reply(reply)
        raise RateBudgetError(f"the shared rate budget at {self._stats.url} kept changing "
                              "under every call (Redis's clock or server)")

    async def _run(
        self, args: list[str | int | float],
    ) -> tuple[list[int], str, str, float, float]:
        """The script and, in the same round trip, which Redis ran it (INFO's run_id), asked
        on the first call and after any failure (another Redis is reached only through a new
        connection, after the old one failed; "-" where INFO is refused, a proxy: no server
        check then). Returns the reply's numbers, the state's server before the call, the
        Redis that answered, and the loop times around the round trip."""
        ask = self._ask_server and self._check_server
        while True:
            pipe = self._client.pipeline(transaction=False)
            if ask:
                pipe.info("server")
            pipe.evalsha(self._script.sha, len(self._keys), *self._keys, *args)
            self._check_server = True  # until this call is through
            results, before, after = await self._timed(pipe.execute(raise_on_error=False))
            reply = results[-1]
            if not isinstance(reply, NoScriptError):
                break
            await self._client.script_load(SCRIPT)  # a new Redis: teach it the script
            ask = self._ask_server  # and learn which one it is
        if isinstance(reply, BaseException):
            raise reply
        self._check_server = False
        current = self._server or "-"
        if ask:
            info = results[0]
            if isinstance(info, dict):
                current = str(info.get("run_id", "-"))
            else:
                self._ask_server = False
                log.warning("rate_budget_server_unknown", url=self._stats.url,
                            error=safe_message(info, self._url))
        stored = reply[-1]
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        return [int(x) for x in reply[:-1]], stored, current, before, after

    def _stepped(self, now_us: int, before: float, after: float) -> bool:
        """Redis read its clock somewhere in [before, after]: the offset lies in a band as
        wide as the round trip. A band that misses the last one by more than drift and
        ``_STEP`` is a step of Redis's clock (or a new Redis)."""
        low, high = now_us / 1e6 - after, now_us / 1e6 - before
        last, self._bounds = self._bounds, (low, high, after)
        if last is None:
            return False
        drift = _STEP + 1e-3 * max(0.0, after - last[2])
        return low > last[1] + drift or high < last[0] - drift

    def _reply(self, reply: list[int]) -> Reply:
        result, now_us, processes, rate_milli, _paused, spread_us, held, at_us = reply[:8]
        stats = self._stats
        stats.processes = processes
        stats.max_processes = max(stats.max_processes, processes)
        stats.rate = rate_milli / 1000
        stats.spread = max(stats.spread, spread_us / 1e6)
        stats.holds += held
        slot = result / 1e6 - self._offset if result > 2 else float(result)
        return Reply(slot, now_us / 1e6 - self._offset, spread_us / 1e6, bool(held),
                     at_us / 1e6 - self._offset)

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


class Distance:
    """``value``: the lowest recent round trip (s), or None before ``_DISTANCE_MIN_SAMPLES`` of them
    (one answer's round trip holds the server's time of that one answer: a near process would
    look far, and the spread too small; meanwhile the script counts the process as unmeasured,
    which widens every window by a fixed allowance)."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_DISTANCE_SAMPLES)

    def observe(self, seconds: float) -> None:
        self._samples.append(max(seconds, 0.0))

    @property
    def value(self) -> float | None:
        if len(self._samples) < _DISTANCE_MIN_SAMPLES:
            return None
        return min(self._samples)
