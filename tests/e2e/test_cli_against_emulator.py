"""The real `ometria-sync` process against the emulator on 127.0.0.1: delivery, pacing,
faults, crashes, signals, bad keys and bad records."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, KEY, Workspace, contact_records, jsonl
from tests.e2e.crash_trials import kill_mid_run, once

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


def _checkpoint_line(root: Path) -> int | None:
    db = sqlite3.connect(root / "state" / "checkpoints.db")
    try:
        row = db.execute("SELECT position FROM checkpoints WHERE stream='contacts'").fetchone()
    finally:
        db.close()
    return json.loads(row[0])[1] if row else None


async def test_full_delivery(workspace: Workspace, emulator: Emulator) -> None:
    """3,000 contacts arrive, each once, in 30 requests; exit 0; status shows the checkpoint."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(3000))
    workspace.job(CONTACTS, rate_limit_per_second=50)
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
        status = await workspace.run("status", "job.toml", "--json", url=emu.url)
    assert result.code == 0, result.stderr
    assert stats["records_accepted"] == 3000 and stats["distinct_ids"] == 3000
    assert stats["requests_by_status"] == {"202": 30}
    (row,) = json.loads(status.stdout)
    assert row["delivered"] == 3000 and row["outcome"] == "ok"


async def test_pacing_holds_the_window_and_reaches_97_percent(
    workspace: Workspace, emulator: Emulator
) -> None:
    """At 8 req/s with answers taking 0.3-2 s, no second holds more than 8 requests and the
    achieved rate is at least 97% of the limit, with no 429."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(960))
    workspace.job(CONTACTS, rate_limit_per_second=8, batch_size=10)
    async with emulator(rate=8, latency=(0.3, 2.0)) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["requests_by_status"] == {"202": 96}
    assert stats["max_requests_in_any_second"] <= 8
    first, last = stats["first_request_at"], stats["last_request_at"]
    achieved = (96 - 1) / (last - first)
    assert achieved >= 0.97 * 8, achieved


async def test_server_faults_lose_nothing(workspace: Workspace, emulator: Emulator) -> None:
    """20% 500/503 answers and 10% dropped connections: every record still arrives."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(2000))
    workspace.job(CONTACTS, rate_limit_per_second=50, max_retries=20)
    async with emulator(rate=50, fail_rate=0.2, drop_rate=0.1) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 2000
    assert set(stats["requests_by_status"]) - {"202", "500", "503", "dropped"} == set()


async def test_a_full_import_queue_backs_off_and_finishes(
    workspace: Workspace, emulator: Emulator
) -> None:
    """A queue of 500 records draining 400/s: the engine slows down, finishes, loses nothing,
    and does not hammer (429s stay a small fraction of requests)."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(2000))
    workspace.job(CONTACTS, rate_limit_per_second=50)
    async with emulator(rate=50, queue_capacity=500, drain_per_second=400) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 2000
    assert stats["requests_by_status"].get("429", 0) <= 20


async def test_kill_9_then_rerun_loses_nothing(workspace: Workspace, emulator: Emulator) -> None:
    """SIGKILL mid-run, then rerun: every record arrives; duplicates stay within what can be in
    flight (dispatchers x batch size)."""
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(3000))
    workspace.job(CONTACTS, rate_limit_per_second=20, concurrency=4)
    async with emulator(rate=20, latency=(0.05, 0.3)) as emu:
        await kill_mid_run(workspace, emu.url,
                           once(lambda: emu.stats()["records_accepted"] >= 800, seconds=100))
        killed_at = emu.stats()["records_accepted"]
        assert killed_at < 3000
        status = await workspace.run("status", "job.toml", "--json", url=emu.url)
        (row,) = json.loads(status.stdout)
        assert row["outcome"] == "killed (no end recorded; the next run resumes)"
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == 3000
    assert stats["records_accepted"] - 3000 <= 4 * 100 + 100


async def test_sigterm_exits_130_in_the_grace_period_and_resumes(
    workspace: Workspace, emulator: Emulator
) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(3000))
    workspace.job(CONTACTS, rate_limit_per_second=10)
    async with emulator(rate=10, latency=(0.2, 0.5)) as emu:
        proc = await workspace.start("run", "job.toml", url=emu.url)
        while emu.stats()["records_accepted"] < 300:
            assert proc.returncode is None, "the run ended before it could be signalled"
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        took = loop.time() - signalled
        checkpoint = _checkpoint_line(workspace.root)
        accepted = emu.stats()["records_accepted"]
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert proc.returncode == 130 and took < 5.0 + 1.0
    assert checkpoint is not None and checkpoint >= 300
    assert checkpoint == accepted  # everything that arrived was checkpointed before exit
    assert result.code == 0 and stats["distinct_ids"] == 3000


async def test_a_wrong_key_exits_1_within_seconds_and_is_never_printed(
    workspace: Workspace, emulator: Emulator
) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(500))
    workspace.job(CONTACTS)
    wrong = "wrong-key-3e8a1c"
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url, key=wrong)
        stats = emu.stats()
    assert result.code == 1 and result.seconds < 10
    assert "refused the API key" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert stats["records_accepted"] == 0


async def test_invalid_records_exit_3_fill_the_dead_letter_and_never_arrive(
    workspace: Workspace, emulator: Emulator
) -> None:
    records: list[Any] = contact_records(200)
    records[10] = {"id": "has space", "email": "x@example.com"}
    records[20] = "{not json"
    records[30] = {"id": 42, "email": "y@example.com"}
    records[40] = {"id": "o1", "@type": "order"}
    jsonl(workspace.root / "data/contacts.jsonl", records)
    workspace.job(CONTACTS)
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 3, result.stderr
    assert stats["records_accepted"] == 196
    dead = workspace.dead_letters()
    assert sorted(d["line"] for d in dead) == [11, 21, 31, 41]
    assert all(d["reasons"] and d["stream"] == "contacts" for d in dead)
    assert "dead-lettered" in result.stdout


async def test_the_api_key_is_never_written_anywhere(
    workspace: Workspace, emulator: Emulator
) -> None:
    """A canary key never appears in output, logs, state, the dead letter or dry-run files."""
    records: list[Any] = contact_records(300)
    records[5] = "{broken"
    jsonl(workspace.root / "data/contacts.jsonl", records)
    workspace.job(CONTACTS)
    async with emulator(rate=50, fail_rate=0.2) as emu:
        runs = [await workspace.run("run", "job.toml", "-v", url=emu.url),
                await workspace.run("run", "job.toml", "--dry-run", "-v", url=emu.url),
                await workspace.run("status", "job.toml", url=emu.url)]
    for result in runs:
        assert KEY not in result.stdout and KEY not in result.stderr
    files = [p for p in (workspace.root / "state").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
