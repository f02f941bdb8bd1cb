"""Kill it, starve it, break its server: nothing valid is lost and every run ends in bounded time.

The short versions run in CI. The full ones are marked ``slow``: run them with
``.venv/bin/pytest -m slow tests/reliability`` (20 crash trials, a queue full for a minute).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.e2e.crash_trials import (
    after_random,
    assert_crash_trials_lost_nothing,
    crash_trials,
    sqlite_position,
)

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
DISPATCHERS = 4
BATCH = 100


def _checkpoint(root: Path) -> int | None:
    saved = sqlite_position(root)
    return saved[1] if saved else None


async def _crash_trials(workspace: Workspace, emulator: Emulator, trials: int) -> None:
    """Run, SIGKILL at a random moment, repeat; then run to the end. Every record arrives, and
    each crash costs at most the batches that can be in flight."""
    total = 4000 + trials * 6000  # more than the trials can deliver before the last run
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(total))
    workspace.job(CONTACTS, rate_limit_per_second=40, concurrency=DISPATCHERS)

    async def position() -> int | None:
        return _checkpoint(workspace.root)

    async with emulator(rate=40, latency=(0.02, 0.2)) as emu:
        result = await crash_trials([workspace], emu.url, trials,
                                    after_random(random.Random(7), 0.5, 1.2), position)
        stats = emu.stats()
    assert_crash_trials_lost_nothing("crash trials", result, stats, total, trials,
                                     in_flight=(DISPATCHERS + 1) * BATCH)


async def test_crash_trials_short(workspace: Workspace, emulator: Emulator) -> None:
    await _crash_trials(workspace, emulator, trials=3)


@pytest.mark.slow
async def test_crash_trials_full(workspace: Workspace, emulator: Emulator) -> None:
    await _crash_trials(workspace, emulator, trials=20)


@pytest.mark.parametrize(
    ("faults", "expect_statuses"),
    [({"fail_rate": 0.3}, {"500", "503"}), ({"drop_rate": 0.2}, {"dropped"})],
    ids=["30pct-5xx", "20pct-dropped"],
)
async def test_server_faults_lose_nothing(
    workspace: Workspace, emulator: Emulator, faults: dict[str, float], expect_statuses: set[str]
) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(1500))
    workspace.job(CONTACTS, rate_limit_per_second=50, max_retries=30)
    async with emulator(rate=50, **faults) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url, timeout=90)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 1500
    assert expect_statuses & set(stats["requests_by_status"])


async def test_answers_slower_than_the_timeout_end_in_bounded_time(
    workspace: Workspace, emulator: Emulator
) -> None:
    """Every answer takes 1.5 s, the timeout is 0.5 s: retries are capped, the run exits 1 with
    its checkpoint intact, and a rerun against a healthy server loses nothing."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(500))
    workspace.job(CONTACTS, rate_limit_per_second=50, request_timeout=0.5, max_retries=2,
                  backoff_cap=0.2)
    async with emulator(rate=50, latency=(1.5, 1.5)) as slow:
        result = await workspace.run("run", "job.toml", url=slow.url, timeout=60)
        port = slow.port  # the healthy one takes its place: the same account for the state
    assert result.code == 1 and result.seconds < 20
    assert "no answer within the timeout" in result.stderr + result.stdout
    assert _checkpoint(workspace.root) is None
    async with emulator(rate=50, port=port) as healthy:
        again = await workspace.run("run", "job.toml", url=healthy.url)
        assert again.code == 0 and healthy.stats()["distinct_ids"] == 500


async def test_a_429_storm_slows_down_and_finishes(
    workspace: Workspace, emulator: Emulator
) -> None:
    """The account allows 5 req/s but the job says 20: 429s, a pause for everybody and AIMD
    bring the rate down; everything arrives and the 429s stop being the common answer."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(3000))
    workspace.job(CONTACTS, rate_limit_per_second=20, backoff_base=0.2, backoff_cap=2)
    async with emulator(rate=5) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url, timeout=120)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 3000
    statuses = stats["requests_by_status"]
    assert statuses["429"] < statuses["202"]


async def _queue_full(workspace: Workspace, emulator: Emulator, seconds_full: float) -> None:
    capacity, drain = 1000, 20.0
    records = int(capacity + drain * seconds_full)
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(records))
    workspace.job(CONTACTS, rate_limit_per_second=50)
    async with emulator(rate=50, queue_capacity=capacity, drain_per_second=drain) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url,
                                     timeout=seconds_full * 3 + 60)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == records
    print(f"\nqueue full {seconds_full:.0f} s: {records} records delivered in "
          f"{result.seconds:.1f} s, statuses {stats['requests_by_status']}")
    # no hammering: the engine slows to about the drain rate instead of retrying at 50 req/s
    assert stats["requests_by_status"].get("429", 0) <= max(30, seconds_full)


async def test_import_queue_full_short(workspace: Workspace, emulator: Emulator) -> None:
    await _queue_full(workspace, emulator, seconds_full=8)


@pytest.mark.slow
async def test_import_queue_full_for_a_minute(workspace: Workspace, emulator: Emulator) -> None:
    await _queue_full(workspace, emulator, seconds_full=60)
