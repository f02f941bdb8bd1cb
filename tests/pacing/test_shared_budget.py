"""The shared rate budget against the machine's real Redis: the Lua script's slot arithmetic,
SharedBudget's fairness, pauses, losses and redaction, and the account's place in Redis (key
prefix, live processes; the URL's redaction is ``tests/net/test_urls.py``); and what a process
saw of it (``BudgetStats``: counts, rates, percentiles, bounded samples)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ometria_sync.errors import RateBudgetError
from ometria_sync.net.http import Backoff
from ometria_sync.pacing.budget_stats import BudgetStats
from ometria_sync.pacing.redis_budget import SCRIPT, account_prefix, live_processes
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.clock import max_in_window
from tests.redis_server import REDIS_URL, private_redis, require_redis, shared_redis

__all__ = ["shared_redis"]  # the fixture, imported for pytest

Redis = tuple[aioredis.Redis, str]
CANARY = "canary-pw-5e1b0c77d3"


class Script:
    """The script, called as a process would, with one test's own keys."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._script = client.register_script(SCRIPT)
        self.keys = [prefix + name for name in
                     ("state", "departures", "processes", "pending", "distances")]
        self._n = 0

    async def __call__(self, mode: str = "reserve", *, limit: float = 4.0, cap: float | None = None,
                       margin: float = 0.0, proc: str = "p1", successes: int = 0,
                       pause_until: int = 0, cut: bool = False, member: str | None = None,
                       slack: float | None = None, n: int | None = None) -> list[int]:
        """``slack``: as the in-process pacer gives it with no jitter floor (half the margin)
        unless set. A first call finds no state and holds the account a window: ``fresh``
        gets past it."""
        self._n += 1
        slack = margin / 2 if slack is None else slack
        args = [mode, repr(cap if cap is not None else limit), repr(limit), repr(margin),
                member or f"m{self._n}", proc, successes, pause_until, int(cut), "srv", 10_000,
                repr(slack), "", 0, 0]
        reply = await self._script(keys=self.keys, args=args)
        return [int(x) for x in reply[:-1]]  # (the last: the server that wrote the state)

    async def fresh(self, client: aioredis.Redis, limit: float = 4.0) -> None:
        """A state without the hold of a new account (as after its first window)."""
        await self("update", limit=limit)
        await client.hset(self.keys[0], "paused", 0)
        self._n = 0


async def test_slots_are_evenly_spaced_and_no_window_holds_more_than_the_limit(
    shared_redis: Redis,
) -> None:
    """Twelve reservations at once at 4/s with a 1% margin: due every 0.2525 s, the first now,
    and no 1-second window (span 1.005 s) holds more than 4."""
    script = Script(*shared_redis)
    await script.fresh(shared_redis[0])
    replies = [await script(margin=0.01, proc=f"p{i % 3}") for i in range(12)]
    slots = [r[0] for r in replies]
    assert abs(slots[0] - replies[0][1]) <= 1  # the first leaves at once
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(g - 252_500) <= 1 for g in gaps), gaps
    assert max_in_window([s / 1e6 for s in slots], 1.0) <= 4
    assert replies[-1][2] == 3  # three processes heard of


async def test_a_late_departure_pushes_the_next_reservations(shared_redis: Redis) -> None:
    """Four slots at 4/s; the first really left 0.9 s late (ZADD XX GT, as Slot.sent reports
    it): the fifth may not leave before it + 1 s, though the grid had it due at +1 s."""
    client, prefix = shared_redis
    script = Script(client, prefix)
    await script.fresh(client)
    slots = [(await script())[0] for _ in range(4)]
    moved = slots[0] + 900_000
    assert await client.zadd(script.keys[1], {"m1": moved}, xx=True, gt=True) == 0
    assert await client.zadd(script.keys[1], {"m1": slots[0]}, xx=True, gt=True) == 0  # never back
    assert await client.zscore(script.keys[1], "m1") == moved
    fifth = (await script())[0]
    # the 4 most recent departures are m2..m4 and the moved m1: the 4th most recent is m2
    assert fifth >= slots[1] + 1_000_000
    assert fifth >= slots[3] + 250_000


async def test_at_the_slot_a_window_filled_by_late_departures_holds_the_request(
    shared_redis: Redis,
) -> None:
    """The check at the slot: when four others left (by their reports) within the last span,
    the request waits until the oldest of them is a span old; with three, it goes, and its
    departure is recorded at Redis's now."""
    client, prefix = shared_redis
    script = Script(client, prefix)
    await script.fresh(client)
    now = (await script("update"))[1]
    await client.zadd(script.keys[1], {"x1": now - 500_000, "x2": now - 400_000,
                                       "x3": now - 300_000, "x4": now - 200_000, "me": now})
    status, _, *_, until = await script("depart", member="me", slack=0.0)
    assert status == 2 and until == now - 500_000 + 1_000_000
    await client.zrem(script.keys[1], "x1")
    status, at_now, *_ = await script("depart", member="me", slack=0.0)
    assert status == 1
    assert await client.zscore(script.keys[1], "me") == at_now >= now
    await script("update", pause_until=at_now + 5_000_000)
    status, *_ = await script("depart", member="me")
    assert status == 0 and await client.zscore(script.keys[1], "me") is None


async def test_a_pending_departure_counts_as_leaving_now_until_confirmed(
    shared_redis: Redis,
) -> None:
    """A departure granted until_sent and not yet written counts, for every caller, as
    leaving at each call's now: four of them written long ago but pending hold the window."""
    client, prefix = shared_redis
    script = Script(client, prefix)
    await script.fresh(client)
    now = (await script("update"))[1]
    await client.zadd(script.keys[1], {f"x{i}": now - 5_000_000 for i in range(4)})
    await client.zadd(script.keys[3], {f"x{i}": now + 5_000_000 for i in range(4)})
    status, at_now, *_, until = await script("depart", member="me", slack=0.0, proc="other")
    assert status == 2 and until >= at_now + 1_000_000
    await client.zrem(script.keys[3], "x0")
    status, *_ = await script("depart", member="me", slack=0.0, proc="other")
    assert status == 1


async def test_a_dead_processs_pending_departure_lapses_with_its_lease(
    shared_redis: Redis,
) -> None:
    """A process died with four departures pending: their leases, no longer renewed, ended
    1.5 s ago; they count as leaving when the leases ended, so the window is free again."""
    client, prefix = shared_redis
    script = Script(client, prefix)
    await script.fresh(client)
    now = (await script("update"))[1]
    await client.zadd(script.keys[1], {f"x{i}": now - 5_000_000 for i in range(4)})
    await client.zadd(script.keys[3], {f"x{i}": now - 1_500_000 for i in range(4)})
    status, *_ = await script("depart", member="me", slack=0.0, proc="other")
    assert status == 1


async def test_a_pause_holds_every_caller(shared_redis: Redis) -> None:
    """A 429 in one process (pause_until) holds the next reservation of another."""
    script = Script(*shared_redis)
    await script.fresh(shared_redis[0])
    first = await script(proc="a")
    until = first[1] + 2_000_000
    await script("update", proc="a", pause_until=until)
    other = await script(proc="b")
    assert other[0] >= until
    assert other[4] == until


async def test_cuts_halve_the_shared_rate_and_successes_win_it_back(shared_redis: Redis) -> None:
    """AIMD on the shared rate: a cut halves it (once a second at most), each success reported
    adds 2% of the limit, never above it; reservations are spaced by the lowered rate."""
    script = Script(*shared_redis)
    await script.fresh(shared_redis[0], limit=10)
    assert (await script("update", limit=10))[3] == 10_000
    assert (await script("update", limit=10, cut=True))[3] == 5_000
    assert (await script("update", limit=10, cut=True))[3] == 5_000  # same second: one cut
    assert (await script("update", limit=10, successes=10))[3] == 7_000
    a = (await script(limit=10))[0]
    b = (await script(limit=10))[0]
    assert abs((b - a) - round(1e6 / 7)) <= 2
    assert (await script("update", limit=10, successes=1000))[3] == 10_000


async def test_the_queue_cap_of_one_caller_spaces_its_reservation(shared_redis: Redis) -> None:
    """A caller whose import queue is nearly full (cap 1/s) is given a slot one second after
    the previous one, not a quarter; a caller without it, a quarter."""
    script = Script(*shared_redis)
    await script.fresh(shared_redis[0])
    a = (await script(limit=4, cap=4))[0]
    b = (await script(limit=4, cap=4))[0]
    c = (await script(limit=4, cap=1))[0]
    assert abs((b - a) - 250_000) <= 1
    assert abs((c - b) - 1_000_000) <= 1


async def test_state_lost_holds_a_window_whoever_calls_first(shared_redis: Redis) -> None:
    """No state (Redis restarted empty, or a new account): nobody knows the last second's
    departures, so the first slot, of whichever caller, is a full window away."""
    script = Script(*shared_redis)
    first = await script(proc="new")
    assert first[0] >= first[1] + 1_000_000
    client, _ = shared_redis
    await client.delete(*script.keys)
    after = await script(proc="old")
    assert after[0] >= after[1] + 1_000_000


async def test_keys_expire_and_hold_nothing_of_the_key(shared_redis: Redis) -> None:
    """Every key has a TTL of a few seconds; the prefix is a hash of base URL and key."""
    client, prefix = shared_redis
    script = Script(client, prefix)
    await script.fresh(client)
    await script()
    for key in script.keys[:3]:  # (no departure pending, no distance measured: no such keys)
        ttl = await client.pttl(key)
        assert 0 < ttl <= 10_000, key
    api_key = "canary-api-key-0a1b"
    account = account_prefix("https://api.ometria.com/v2", api_key)
    assert api_key not in account and len(account) == len("ometria-sync::") + 16
    assert account != account_prefix("https://api.ometria.com/v2", api_key + "x")


async def _budget(prefix: str, limit: float, **kwargs: Any) -> SharedBudget:
    client = aioredis.from_url(REDIS_URL)
    return SharedBudget(client, prefix, limit, url=REDIS_URL, **kwargs)


async def _drive(budget: SharedBudget, workers: int, until: float, log: list[tuple[str, float]],
                 name: str) -> None:
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        while loop.time() < until:
            slot = await budget.acquire()
            log.append((name, slot.at))

    await asyncio.gather(*(worker() for _ in range(workers)))


async def test_processes_are_served_in_turn(shared_redis: Redis) -> None:
    """Two budgets on one account (two processes), one with 16 dispatchers, one with 1, both
    always waiting: each gets half of 20/s, and together no second holds more than 20."""
    _, prefix = shared_redis
    big = await _budget(prefix, 20)
    small = await _budget(prefix, 20)
    for budget in (big, small):  # past the new account's hold, at one distance
        for _ in range(3):
            budget.observe_distance(0.0)
        await budget.acquire()
    log: list[tuple[str, float]] = []
    until = asyncio.get_running_loop().time() + 2.0
    try:
        await asyncio.gather(_drive(big, 16, until, log, "big"),
                             _drive(small, 1, until, log, "small"))
    finally:
        await big.aclose()
        await small.aclose()
    # (the big one's other 15 dispatchers each finish one last acquire after ``until``)
    counts = {name: sum(1 for n, t in log if n == name and t < until)
              for name in ("big", "small")}
    assert abs(counts["big"] - counts["small"]) <= 2, counts
    assert max_in_window([t for _, t in log], 1.0) <= 20
    assert sum(counts.values()) >= 38
    assert big.stats.max_processes == 2


async def test_a_429_in_one_process_pauses_the_other(shared_redis: Redis) -> None:
    """Process A gets a 429 with Retry-After 0.6 s: B's next departure waits it out."""
    _, prefix = shared_redis
    a = await _budget(prefix, 10)
    b = await _budget(prefix, 10)
    loop = asyncio.get_running_loop()
    try:
        await a.acquire()
        await b.acquire()
        throttled_at = loop.time()
        assert a.throttled(Backoff(0.05, 1.0), 0.6, 5) >= 0.6
        await asyncio.sleep(0.05)  # the pause reaches Redis from a background call
        slot = await b.acquire()
    finally:
        await a.aclose()
        await b.aclose()
    assert slot.at >= throttled_at + 0.6 - 0.01


async def test_a_429_holds_a_slot_another_process_reserved_before_it(
    shared_redis: Redis,
) -> None:
    """B reserved its slot (0.5 s ahead) before A's 429 (Retry-After 1 s): at its slot, B
    finds the account paused, gives the slot up and leaves after the pause."""
    _, prefix = shared_redis
    a = await _budget(prefix, 2)
    b = await _budget(prefix, 2)
    loop = asyncio.get_running_loop()
    try:
        await a.acquire()
        waiting = asyncio.create_task(b.acquire())
        await asyncio.sleep(0.1)  # B holds a reservation for about 0.4 s from now
        throttled_at = loop.time()
        a.throttled(Backoff(0.05, 1.0), 1.0, 5)
        slot = await waiting
    finally:
        await a.aclose()
        await b.aclose()
    assert slot.at >= throttled_at + 1.0 - 0.01


async def test_unreachable_at_start_is_an_error_without_the_password(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        url = f"redis://:{CANARY}@127.0.0.1:{server.port}/0"
    with pytest.raises(RateBudgetError) as caught:  # stopped: nothing listens on its port
        await SharedBudget.connect(url, base_url="http://127.0.0.1:1/v2", api_key="k", limit=4)
    assert CANARY not in str(caught.value)
    assert "***" in str(caught.value) and "nothing was sent" in str(caught.value)


async def test_a_wrong_password_is_an_error_without_the_password(tmp_path: Path) -> None:
    with private_redis(tmp_path, password="the-right-one") as server:
        url = f"redis://:{CANARY}@127.0.0.1:{server.port}/0"
        with pytest.raises(RateBudgetError) as caught:
            await SharedBudget.connect(url, base_url="http://x/v2", api_key="k", limit=4)
        assert CANARY not in str(caught.value)
        good = await SharedBudget.connect(server.url, base_url="http://x/v2", api_key="k",
                                          limit=4)
        await good.acquire()
        await good.aclose()


async def test_redis_lost_mid_run_stops_after_the_retry_time(tmp_path: Path) -> None:
    """Redis killed: acquire retries for ``retry_for`` seconds, then raises RateBudgetError
    (no message with the password), and every later acquire raises at once."""
    with private_redis(tmp_path, password=CANARY) as server:
        budget = await SharedBudget.connect(server.url, base_url="http://x/v2", api_key="k",
                                            limit=50, retry_for=0.5)
        await budget.acquire()
        server.kill()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RateBudgetError) as caught:
            await budget.acquire()
        assert 0.5 <= loop.time() - started < 3.0
        assert CANARY not in str(caught.value) and "***" in str(caught.value)
        started = loop.time()
        with pytest.raises(RateBudgetError):
            await budget.acquire()
        assert loop.time() - started < 0.1
        await budget.aclose()


async def test_redis_restarted_mid_run_goes_on_after_a_window(tmp_path: Path) -> None:
    """Redis killed and started again empty within the retry time: acquire waits, then goes
    on; the first departure after it is at least a window after Redis came back (nobody
    knows the departures of the last second)."""
    with private_redis(tmp_path) as server:
        budget = await SharedBudget.connect(server.url, base_url="http://x/v2", api_key="k",
                                            limit=50, retry_for=10)
        await budget.acquire()
        server.kill()
        loop = asyncio.get_running_loop()

        async def restart() -> float:
            await asyncio.sleep(0.5)
            server.start()
            return loop.time()

        back, slot = await asyncio.gather(restart(), budget.acquire())
        assert slot.at >= back + 1.0 - 0.05
        await budget.aclose()


async def test_the_callers_slack_keeps_every_window_that_much_over_a_second(
    shared_redis: Redis,
) -> None:
    """The jitter slack (25 ms floor, as the in-process pacer keeps, issue 18 item 13) reaches
    the script: reservations 0.25625 s apart at 4/s, never 5 within less than 1.025 s."""
    script = Script(*shared_redis)
    await script.fresh(shared_redis[0])
    slots = [(await script(margin=0.0, slack=0.025))[0] for _ in range(9)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(g - 256_250) <= 1 for g in gaps), gaps
    assert max_in_window([s / 1e6 for s in slots], 1.024) <= 4


async def test_live_processes_counts_the_processes_of_one_account() -> None:
    """Two budgets of one account are two live processes; another account's are not counted."""
    require_redis()
    api_key = uuid.uuid4().hex
    account = {"base_url": "https://api.example/v2", "api_key": api_key}
    budgets = [await SharedBudget.connect(REDIS_URL, limit=4, **account) for _ in range(2)]
    other = await SharedBudget.connect(REDIS_URL, limit=4, base_url="https://api.example/v2",
                                       api_key=api_key + "x")
    try:
        assert await live_processes(REDIS_URL, **account) == 2
    finally:
        for budget in (*budgets, other):
            await budget.aclose()


def test_granted_departures_give_the_rate_this_process_got() -> None:
    stats = BudgetStats(url="redis://h/0")
    stats.granted(10.0, 0.1, 0.002)
    assert stats.requests_per_second is None  # one departure is no rate
    for at in (10.5, 11.0, 12.0):
        stats.granted(at, 0.1, 0.002)
    assert (stats.requests, stats.first_at, stats.last_at) == (4, 10.0, 12.0)
    assert stats.requests_per_second == pytest.approx(1.5)


def test_round_trips_add_up() -> None:
    stats = BudgetStats(url="redis://h/0")
    stats.round_trip(0.002)
    stats.round_trip(0.003)
    assert stats.round_trips == 2 and stats.redis_seconds == pytest.approx(0.005)


def test_percentiles_in_milliseconds_over_bounded_samples() -> None:
    """The samples keep the latest few thousand: memory stays bounded on a long run."""
    stats = BudgetStats(url="redis://h/0")
    assert stats.percentile_ms("waits", 0.5) is None
    for i in range(20_000):
        stats.sample(i / 1000, 0.001)
    assert len(stats.waits) <= 10_000 and stats.waits[-1] == 19.999
    assert stats.percentile_ms("lateness", 0.99) == 1.0
    assert stats.percentile_ms("waits", 0.0) == pytest.approx(stats.waits[0] * 1000)


async def test_a_process_that_knew_an_older_server_learns_the_new_one_and_holds_once(
        shared_redis: Redis) -> None:
    """A process whose idea of the answering Redis is stale (its client reconnected to a
    restarted or promoted server without raising, as redis-py's own retries do) asks again
    which server answers instead of writing its stale one into the state: otherwise it and a
    process that knows the new server overwrite each other's idea on every call, and every
    call holds the account a full window (a run that never sends again)."""
    client, prefix = shared_redis
    run_id = str((await client.info("server"))["run_id"])
    a = SharedBudget(aioredis.from_url(REDIS_URL), prefix, 4.0, url=REDIS_URL)
    b = SharedBudget(aioredis.from_url(REDIS_URL), prefix, 4.0, url=REDIS_URL)
    try:
        for budget in (a, b):
            (await budget.acquire()).done()
        a._redis._server = "0" * 40  # what a silently reconnected client still believes
        (await a.acquire()).done()
        assert (await client.hget(prefix + "state", "server")).decode() == run_id
        holds = b.stats.holds
        for _ in range(2):
            for budget in (b, a):
                (await budget.acquire()).done()
        assert b.stats.holds == holds  # nothing holds again once both know the server
    finally:
        await a.aclose()
        await b.aclose()
