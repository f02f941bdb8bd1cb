"""The shared budget at its edges (issue 27 items 5-9), against real servers: processes
(SharedBudget instances, each with its own Redis client) push through the real HTTP client to
an emulator on 127.0.0.1 that counts arrivals in every sliding second; Redis is the machine's
(a fresh key prefix per test) or a private redis-server the test kills and restarts. Each
trial is a few seconds and asserts on the count in any 1 s window, never on timing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing import redis_budget
from ometria_sync.pacing.redis_budget import account_prefix
from ometria_sync.pacing.shared_budget import SharedBudget
from tests.pacing.budget_trials import (
    KEY,
    Gate,
    SteppingClock,
    budget,
    closing,
    delaying_proxy,
    push_once,
    saturate,
    strict_emulator,
)
from tests.redis_server import REDIS_URL, PrivateRedis, private_redis, shared_redis

__all__ = ["shared_redis"]  # the fixture, imported for pytest

Redis = tuple[aioredis.Redis, str]
#: every stored time of the account moved back (µs): what Redis's clock stepping forward
#: by that much looks like to the state
SHIFT = """
local d = tonumber(ARGV[1])
for _, field in ipairs({'due', 'paused', 'last', 'cut_at', 'stamp', 'recorded'}) do
  local v = tonumber(redis.call('HGET', KEYS[1], field))
  if v and v > 0 then redis.call('HSET', KEYS[1], field, v - d) end
end
for i = 2, #KEYS do
  local rows = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  for j = 1, #rows, 2 do
    redis.call('ZADD', KEYS[i], tonumber(rows[j + 1]) - d, rows[j])
  end
end
return 1
"""


def _keys(prefix: str) -> list[str]:
    return [prefix + name for name in ("state", "departures", "processes", "pending")]


def _max_per_second(emu: Any) -> int:
    stats: dict[str, Any] = emu.stats()
    print(f"\nemulator: {stats['requests_by_status']}, "
          f"max in any second {stats['max_requests_in_any_second']}")
    return int(stats["max_requests_in_any_second"])


async def test_a_request_stuck_in_connect_holds_the_window_of_every_process(
    shared_redis: Redis,
) -> None:
    """Item 5: process A's first request waits 1.15 s for its connection (a lost SYN), while
    A and B push 8 requests at 4/s: its departure counts as leaving *now* for both processes
    until its body is written, so no second at Ometria holds more than 4."""
    _, prefix = shared_redis
    async with strict_emulator() as emu:
        a, b = budget(REDIS_URL, prefix), budget(REDIS_URL, prefix)
        slow, fast = OmetriaClient(emu.url, KEY), OmetriaClient(emu.url, KEY)
        connector: Any = slow._session.connector
        create = connector._create_connection
        stuck = [True]

        async def connect_late(*args: Any, **kwargs: Any) -> Any:
            if stuck.pop() if stuck else False:
                await asyncio.sleep(1.15)
            return await create(*args, **kwargs)

        connector._create_connection = connect_late
        try:
            first = asyncio.create_task(push_once(a, slow))
            await asyncio.sleep(0.01)  # A's is the first departure
            await asyncio.gather(first, *(push_once(a, slow) for _ in range(3)),
                                 *(push_once(b, fast) for _ in range(4)))
        finally:
            await closing(a, b, slow, fast)
        assert _max_per_second(emu) <= 4


async def test_processes_at_different_distances_keep_the_limit_at_arrival(
    shared_redis: Redis,
) -> None:
    """Item 6: A saturates at 4/s next to Ometria; B, 60 ms farther (a proxy delays its bytes
    to the server), sends one request every 0.9 s. Each measures its distance and the
    window is widened by the spread: no second at Ometria holds more than 4."""
    _, prefix = shared_redis
    async with strict_emulator() as emu, delaying_proxy(emu.port, 0.060) as port:
        a, b = budget(REDIS_URL, prefix), budget(REDIS_URL, prefix)
        near = OmetriaClient(emu.url, KEY)
        far = OmetriaClient(f"http://127.0.0.1:{port}/v2", KEY)
        until = asyncio.get_running_loop().time() + 5.0
        answers: list[str] = []
        try:
            await asyncio.gather(saturate(a, near, 4, until, answers),
                                 saturate(b, far, 1, until, answers, every=0.9))
        finally:
            await closing(a, b, near, far)
        print("spread seen:", getattr(a.stats, "spread", None), getattr(b.stats, "spread", None))
        assert _max_per_second(emu) <= 4


async def _restart_trial(tmp_path: Path, stage: str) -> None:
    """A saturates at 4/s (4 workers) on a private Redis; 1.5 s in, Redis comes back without
    its recent past (``stage``), and a NEW process calls first (A is held back until then),
    then pushes beside A. No second at Ometria may hold more than 4."""
    async with strict_emulator() as emu:
        prefix = account_prefix(emu.url, KEY)
        with private_redis(tmp_path) as server:
            gate = Gate()
            a = budget(server.url, prefix, retry_for=30, sleep=gate.sleep)
            ca, cc = OmetriaClient(emu.url, KEY), OmetriaClient(emu.url, KEY)
            loop = asyncio.get_running_loop()
            until = loop.time() + 4.5
            answers: list[str] = []

            async def newcomer() -> None:
                await asyncio.sleep(1.5)
                if stage == "stale":
                    raw = aioredis.from_url(server.url)
                    await raw.save()  # the replica / the file as it stands now ...
                    await raw.aclose()
                    await asyncio.sleep(0.65)  # ... 0.65 s behind when it takes over
                gate.open.clear()
                _restart(server, keep_file=stage == "stale")
                new = await SharedBudget.connect(server.url, base_url=emu.url, api_key=KEY,
                                                 limit=4)
                gate.open.set()
                try:
                    await saturate(new, cc, 2, until, answers)
                finally:
                    await new.aclose()

            try:
                await asyncio.gather(saturate(a, ca, 4, until, answers), newcomer())
            finally:
                await closing(a, ca, cc)
        assert _max_per_second(emu) <= 4


def _restart(server: PrivateRedis, *, keep_file: bool) -> None:
    server.kill()
    if not keep_file:
        (server.folder / "dump.rdb").unlink(missing_ok=True)
    server.start()


async def test_redis_restarted_empty_and_a_new_process_first(tmp_path: Path) -> None:
    """Item 7: Redis restarted empty, a new process calls first: it holds a full window."""
    await _restart_trial(tmp_path, "empty")


async def test_redis_back_with_a_stale_state(tmp_path: Path) -> None:
    """Item 7: Redis back with its state as it was 0.65 s earlier (a promoted replica, a
    reload from disk): a new server, so nobody departs for a full window."""
    await _restart_trial(tmp_path, "stale")


async def test_redis_clock_stepping_forward_holds_a_window(shared_redis: Redis) -> None:
    """Item 7: two processes saturate at 4/s; 1.5 s in, Redis's clock steps 0.5 s forward
    (every stored time looks 0.5 s older, and each process sees Redis's time jump against
    its monotonic clock): nobody departs for a full window, no second holds more than 4."""
    client, prefix = shared_redis
    clock = SteppingClock()
    shift = client.register_script(SHIFT)
    async with strict_emulator() as emu:
        a, b = budget(REDIS_URL, prefix, clock=clock), budget(REDIS_URL, prefix, clock=clock)
        near, other = OmetriaClient(emu.url, KEY), OmetriaClient(emu.url, KEY)
        until = asyncio.get_running_loop().time() + 4.0
        answers: list[str] = []

        async def step() -> None:
            await asyncio.sleep(1.5)
            await shift(keys=_keys(prefix), args=[500_000])
            clock.delta -= 0.5

        try:
            await asyncio.gather(saturate(a, near, 2, until, answers),
                                 saturate(b, other, 2, until, answers), step())
        finally:
            await closing(a, b, near, other)
        assert _max_per_second(emu) <= 4


async def test_a_departure_after_a_pause_longer_than_the_keys_live_is_recorded(
    shared_redis: Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 8: the keys live 1 s here (10 s in production) and the account pauses 1.6 s
    (a Retry-After longer than that): every departure granted after the pause is in the
    shared record when granted and still a second later."""
    monkeypatch.setattr(redis_budget, "_TTL_MS", 1000)
    client, prefix = shared_redis
    processes = [budget(REDIS_URL, prefix) for _ in range(3)]
    missing: list[str] = []

    async def depart(process: SharedBudget) -> str:
        slot = await process.acquire()
        if await client.zscore(prefix + "departures", slot.member) is None:
            missing.append(f"{slot.member} at grant")
        return slot.member

    try:
        for process in processes:
            await depart(process)
        processes[0].pause(1.6)
        await asyncio.sleep(0.05)  # the pause reaches Redis
        members = await asyncio.gather(*(depart(p) for p in processes))
        await asyncio.sleep(1.0)
        for member in members:
            if await client.zscore(prefix + "departures", member) is None:
                missing.append(f"{member} a second later")
    finally:
        await closing(*processes)
    assert missing == []


async def test_two_spellings_of_one_base_url_share_one_budget() -> None:
    """Item 9: ``.../v2`` and ``.../v2/`` (and the default port, upper-case host) are one
    account to the state, so one budget: the processes see each other."""
    api_key = uuid.uuid4().hex
    spellings = ["http://127.0.0.1:8/v2", "http://127.0.0.1:8/v2/", "HTTP://127.0.0.1:8/v2//"]
    assert len({account_prefix(url, api_key) for url in spellings}) == 1
    assert account_prefix("https://API.ometria.com:443/v2/", api_key) == account_prefix(
        "https://api.ometria.com/v2", api_key)
    budgets = [await SharedBudget.connect(REDIS_URL, base_url=url, api_key=api_key, limit=4)
               for url in spellings]
    try:
        await budgets[0].acquire()
        assert budgets[0].stats.processes == 3
    finally:
        await closing(*budgets)


async def test_redis_clock_stepping_back_holds_a_window_and_no_longer(
    shared_redis: Redis,
) -> None:
    """Item 7, the other way: Redis's clock steps 3 s back (every stored time lies 3 s in the
    future), seen by a new process that calls first: it holds a full window, not the 3 s the
    stored times would make it wait (nor nothing)."""
    client, prefix = shared_redis
    old = budget(REDIS_URL, prefix)
    new = budget(REDIS_URL, prefix)
    try:
        for _ in range(6):
            await old.acquire()
        await client.register_script(SHIFT)(keys=_keys(prefix), args=[-3_000_000])
        asked = asyncio.get_running_loop().time()
        slot = await new.acquire()
    finally:
        await closing(old, new)
    assert 1.0 <= slot.at - asked < 2.5
