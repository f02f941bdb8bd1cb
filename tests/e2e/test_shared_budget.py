"""Many `ometria-sync run` processes on one account, sharing its rate budget through the
machine's real Redis (never mocked, never skipped), against one emulator."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ometria_sync.emulator.push as emulator_push
from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import CONTACTS, CliResult, Workspace, jsonl
from tests.redis_server import REDIS_URL, private_redis, require_redis

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
CANARY = "canary-redis-pw-7f3a9e"


def _contacts(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"@collection": "shop", "id": f"{prefix}{i}", "email": f"{prefix}{i}@example.com"}
            for i in range(n)]


def _workspaces(root: Path, records: list[int], **ometria: Any) -> list[Workspace]:
    """One job folder per process (own job file, own state), ``records[i]`` contacts each."""
    require_redis()
    spaces = []
    for i, n in enumerate(records):
        ws = Workspace(root / f"p{i}")
        ws.root.mkdir()
        jsonl(ws.root / "data/contacts.jsonl", _contacts(f"p{i}-", n))
        settings: dict[str, Any] = {"rate_limit_url": REDIS_URL, "batch_size": 10}
        settings.update(ometria)
        ws.job(CONTACTS, **settings)
        spaces.append(ws)
    return spaces


def _aggregate_rate(stats: dict[str, Any]) -> float:
    return (stats["requests"] - 1) / (stats["last_request_at"] - stats["first_request_at"])


def _report(ws: Workspace) -> dict[str, Any]:
    (path,) = (ws.root / "state" / "reports").glob("*.json")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def _checkpoint_line(ws: Workspace) -> int | None:
    db = sqlite3.connect(ws.root / "state" / "checkpoints.db")
    try:
        row = db.execute("SELECT position FROM checkpoints WHERE stream='contacts'").fetchone()
    finally:
        db.close()
    return json.loads(row[0])[1] if row else None


@pytest.mark.parametrize("processes", [1, 2, 3])
async def test_processes_share_the_limit(
    tmp_path: Path, emulator: Emulator, processes: int
) -> None:
    """N processes at 10 requests/s on one account: no second over 10 at the server, no 429,
    together at least 97% of 10/s alone and 95% shared, and each report says how many shared
    the budget. (Shared, every window is widened by the spread of the processes' measured
    distances to Ometria, issue 27 item 6: while their lowest round trips still hold the
    server's varying answer time, 50-300 ms here, the spread is tens of ms, and a process with
    fewer than 3 answers counts as 100 ms away.)"""
    total = 100  # requests, 10 s at the limit
    spaces = _workspaces(tmp_path, [total * 10 // processes] * processes,
                         rate_limit_per_second=10)
    async with emulator(rate=10, latency=(0.05, 0.3)) as emu:
        results = await asyncio.gather(*(ws.run("run", "job.toml", url=emu.url)
                                         for ws in spaces))
        stats = emu.stats()
    for result in results:
        assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == total * 10 // processes * processes
    assert stats["max_requests_in_any_second"] <= 10
    assert set(stats["requests_by_status"]) == {"202"}
    rate = _aggregate_rate(stats)
    print(f"\n{processes} process(es): {rate:.2f} requests/s together ({rate / 10:.1%})")
    assert rate >= (0.97 if processes == 1 else 0.95) * 10, rate
    for ws in spaces:
        shared = _report(ws)["shared_budget"]
        assert shared["max_processes"] == processes
        assert shared["url"] == REDIS_URL and shared["requests"] >= 1


async def test_three_cronjobs_one_killed_and_restarted(tmp_path: Path, emulator: Emulator) -> None:
    """Issue 19's trial: three processes, one stream each, answers in 300-800 ms, one
    SIGKILLed 4 s in and restarted at once: every run exits 0, every record arrives, no
    second holds more than 4 requests, and together they reach 85% of 4/s. The ceiling is
    4 / (1 s + 20 ms jitter floor + margin) = 97.8% (issue 18, item 13); the killed
    process's reserved slot is lost (0.26 s: 1.3% of this 20 s trial) and its pending
    departure holds one place for its 2 s lease; and every window is widened by the spread of
    the processes' distances (issue 27 item 6), 100 ms while a process has fewer than 3
    answers (twice here: at the start and after the restart, about 2 s each at 1.3 requests/s
    a process) and then the noise of the lowest of a few round trips holding 300-800 ms of
    answer time. Measured 90.1% on the 2-core machine (96.6% before issue 27)."""
    spaces = _workspaces(tmp_path, [260, 260, 260], rate_limit_per_second=4)
    async with emulator(rate=4, latency=(0.3, 0.8)) as emu:
        victim = spaces[0]

        async def killed_and_restarted() -> CliResult:
            proc = await victim.start("run", "job.toml", url=emu.url)
            await asyncio.sleep(4)
            proc.kill()
            await proc.wait()
            return await victim.run("run", "job.toml", url=emu.url)

        results = await asyncio.gather(
            killed_and_restarted(), *(ws.run("run", "job.toml", url=emu.url)
                                      for ws in spaces[1:]))
        stats = emu.stats()
    for result in results:
        assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 780
    assert stats["max_requests_in_any_second"] <= 4
    assert set(stats["requests_by_status"]) == {"202"}
    rate = _aggregate_rate(stats)
    print(f"\n3 processes, one killed and restarted: {rate:.3f} requests/s together "
          f"({rate / 4:.1%}), {stats['requests']} requests")
    assert rate >= 0.85 * 4, rate


async def test_a_429_in_one_process_pauses_the_others(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full import queue answers 429 with Retry-After 1: after the first one, no request of
    either process arrives for most of the next second; everything arrives in the end."""
    spaces = _workspaces(tmp_path, [300, 300], rate_limit_per_second=8, batch_size=50)
    refusals: list[float] = []
    arrivals: list[float] = []
    too_many = emulator_push.too_many

    def recorded(app: Any) -> Any:
        refusals.append(asyncio.get_running_loop().time())
        return too_many(app)

    monkeypatch.setattr(emulator_push, "too_many", recorded)
    async with emulator(rate=8, queue_capacity=200, drain_per_second=100,
                        retry_after=True) as emu:
        window = emu.app[STORE].stats.arrivals
        add = window.add

        def arrived(now: float) -> int:
            arrivals.append(now)
            return int(add(now))

        monkeypatch.setattr(window, "add", arrived)
        results = await asyncio.gather(*(ws.run("run", "job.toml", url=emu.url)
                                         for ws in spaces))
        stats = emu.stats()
    for result in results:
        assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 600
    assert refusals, "the import queue never filled"
    first = refusals[0]
    during = [t for t in arrivals if first + 0.1 < t < first + 0.9]
    assert during == [], f"{len(during)} requests arrived during the pause"


async def test_fair_between_a_big_and_a_small_job(tmp_path: Path, emulator: Emulator) -> None:
    """A backfill with 16 dispatchers and a small job with 2, side by side at 8/s: the small
    one gets half the budget while both have work (not 2/18 of it)."""
    spaces = _workspaces(tmp_path, [1200, 240], rate_limit_per_second=8)
    big, small = spaces
    big.job(CONTACTS, rate_limit_url=REDIS_URL, batch_size=10, rate_limit_per_second=8,
            concurrency=16)
    small.job(CONTACTS, rate_limit_url=REDIS_URL, batch_size=10, rate_limit_per_second=8,
              concurrency=2)
    async with emulator(rate=8, latency=(0.0, 0.05)) as emu:
        backfill = await big.start("run", "job.toml", url=emu.url)
        try:
            await asyncio.sleep(1.5)
            result = await small.run("run", "job.toml", url=emu.url)
            assert backfill.returncode is None  # the backfill still had work throughout
        finally:
            backfill.kill()
            await backfill.communicate()
    assert result.code == 0, result.stderr
    share = _report(small)["shared_budget"]
    print(f"\nsmall job beside a backfill: {share['requests_per_second']} requests/s")
    assert share["requests_per_second"] >= 0.45 * 8
    assert share["max_processes"] == 2


async def test_redis_unreachable_at_start_sends_nothing(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Redis down (its URL, with a password, from the environment): exit 1 before anything is
    sent, and the password appears nowhere."""
    require_redis()
    with private_redis(tmp_path) as server:
        port = server.port
    (ws,) = _workspaces(tmp_path, [50])
    ws.job(CONTACTS, rate_limit_url_env="TEST_REDIS_URL")
    os.environ["TEST_REDIS_URL"] = f"redis://:{CANARY}@127.0.0.1:{port}/0"
    try:
        async with emulator(rate=50) as emu:
            result = await ws.run("run", "job.toml", url=emu.url)
            stats = emu.stats()
    finally:
        del os.environ["TEST_REDIS_URL"]
    assert result.code == 1
    assert stats["requests"] == 0
    assert "shared rate budget cannot be reached" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert "redis://***@127.0.0.1" in result.stderr


async def test_redis_restarted_mid_run(tmp_path: Path, emulator: Emulator) -> None:
    """Redis killed 3 s in and started again (empty) 1 s later: both processes wait, go on,
    exit 0 with every record, and no second ever holds more than the limit."""
    require_redis()
    with private_redis(tmp_path, password=CANARY) as server:
        spaces = _workspaces(tmp_path, [400, 400], rate_limit_per_second=10,
                             rate_limit_url=server.url)
        async with emulator(rate=10, latency=(0.05, 0.2)) as emu:

            async def outage() -> None:
                await asyncio.sleep(3)
                server.kill()
                await asyncio.sleep(1)
                server.start()

            *results, _ = await asyncio.gather(
                *(ws.run("run", "job.toml", url=emu.url) for ws in spaces), outage())
            stats = emu.stats()
    for ws, result in zip(spaces, results, strict=True):
        assert result.code == 0, result.stderr
        assert CANARY not in result.stdout + result.stderr
        assert CANARY not in json.dumps(_report(ws))
        assert _report(ws)["shared_budget"]["url"].startswith("redis://***@127.0.0.1:")
    assert stats["distinct_ids"] == 800
    assert stats["max_requests_in_any_second"] <= 10


async def test_redis_lost_for_good_stops_with_the_checkpoint_intact(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Redis killed once sending has begun and not back within rate_limit_retry_for (2 s):
    the run stops sending, exits 1 naming the shared budget (no password), the checkpoint kept
    what was delivered; with Redis back, the next run delivers the rest."""
    require_redis()
    with private_redis(tmp_path, password=CANARY) as server:
        (ws,) = _workspaces(tmp_path, [400], rate_limit_per_second=10,
                            rate_limit_url=server.url, rate_limit_retry_for=2)
        async with emulator(rate=10) as emu:
            proc = await ws.start("run", "job.toml", url=emu.url)
            # kill Redis once sending has begun (not after a fixed time: a loaded machine can
            # take seconds to start the process, and a Redis lost before the first send is
            # another message, tested elsewhere)
            for _ in range(600):
                if emu.stats()["requests"] >= 3:
                    break
                await asyncio.sleep(0.025)
            server.kill()
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            sent_before = emu.stats()["requests"]
            await asyncio.sleep(0.5)
            assert emu.stats()["requests"] == sent_before  # nothing sent since
            line = _checkpoint_line(ws)
            server.start()
            again = await ws.run("run", "job.toml", url=emu.url)
            stats = emu.stats()
    text = out.decode() + err.decode()
    assert proc.returncode == 1, text
    assert "shared rate budget" in text and "unreachable" in text
    assert CANARY not in text + again.stdout + again.stderr
    assert line is not None and 0 < line < 400
    assert again.code == 0, again.stderr
    assert stats["distinct_ids"] == 400


async def test_plan_shows_this_jobs_share(tmp_path: Path, emulator: Emulator) -> None:
    """``plan`` beside a running job on the same account: one other process, half the limit,
    and the duration estimated at that share; the password appears nowhere."""
    require_redis()
    with private_redis(tmp_path, password=CANARY) as server:
        running, planned = _workspaces(tmp_path, [2000, 100], rate_limit_per_second=10,
                                       rate_limit_url=server.url)
        async with emulator(rate=10) as emu:
            proc = await running.start("run", "job.toml", url=emu.url)
            try:
                await asyncio.sleep(2.5)
                plan = await planned.run("plan", "job.toml", url=emu.url)
            finally:
                proc.kill()
                await proc.communicate()
    assert plan.code == 0, plan.stderr
    assert "1 other process(es) on this account now" in plan.stdout
    assert "this job's share: 5 of 10 requests/s" in plan.stdout
    assert "at 5 req/s" in plan.stdout and "0m02s" in plan.stdout  # 10 requests at 5/s
    assert CANARY not in plan.stdout + plan.stderr and "***" in plan.stdout
