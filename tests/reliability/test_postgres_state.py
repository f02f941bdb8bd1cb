"""kill -9 with the state in PostgreSQL, each rerun from another folder (as a new pod would be):
nothing is lost, each crash resends at most what was in flight; and a run whose state
connections are cut mid-run reconnects and finishes.

``.venv/bin/pytest -m slow tests/reliability/test_postgres_state.py`` runs 20 trials."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.e2e.crash_trials import after_random, assert_crash_trials_lost_nothing, crash_trials
from tests.pg import DSN, connect, terminate_backends

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
DISPATCHERS = 4
BATCH = 100
STATE = '\n[state]\ncheckpoint_url = "{url}"\nschema = "{schema}"\n'


def _folders(root: Path, schema: str, total: int, **ometria: Any) -> list[Workspace]:
    """Two job folders sharing one PostgreSQL state (and nothing else)."""
    folders = []
    for name in ("a", "b"):
        workspace = Workspace(root / name)
        workspace.root.mkdir()
        jsonl(workspace.root / "data/contacts.jsonl", contact_records(total))
        workspace.job(STATE.format(url=DSN, schema=schema) + CONTACTS, **ometria)
        folders.append(workspace)
    return folders


async def _checkpoint(schema: str) -> int | None:
    conn = await connect()
    try:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.checkpoints"):
            return None
        row = await conn.fetchval(
            f"SELECT position FROM {schema}.checkpoints WHERE stream = 'contacts'")
    finally:
        await conn.close()
    return json.loads(row)[1] if row else None


async def _crash_trials(root: Path, emulator: Emulator, schema: str, trials: int) -> None:
    total = 4000 + trials * 6000
    folders = _folders(root, schema, total, rate_limit_per_second=40, concurrency=DISPATCHERS)
    async with emulator(rate=40, latency=(0.02, 0.2)) as emu:
        result = await crash_trials(folders, emu.url, trials,
                                    after_random(random.Random(11), 0.8, 1.5),
                                    lambda: _checkpoint(schema))
        stats = emu.stats()
    assert not (folders[0].root / "state" / "checkpoints.db").exists()
    # in flight at a kill: the dispatchers' batches and one more, as with SQLite, plus the
    # batch whose checkpoint save was on its way to the server: a PostgreSQL commit is a round
    # trip and an fsync (5-15 ms here, against 25 ms between batches at 40/s), where SQLite's
    # WAL commit on the state thread is not, so a kill often lands inside one
    assert_crash_trials_lost_nothing("crash trials, PostgreSQL state", result, stats, total,
                                     trials, in_flight=(DISPATCHERS + 2) * BATCH)


async def test_crash_trials_with_postgres_state_short(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    await _crash_trials(tmp_path, emulator, pg_schema, trials=3)


@pytest.mark.slow
async def test_crash_trials_with_postgres_state_full(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    await _crash_trials(tmp_path, emulator, pg_schema, trials=20)


async def test_state_connections_cut_mid_run_are_reconnected_and_nothing_is_lost(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    folder, _ = _folders(tmp_path, pg_schema, 10000, rate_limit_per_second=50)
    async with emulator(rate=50) as emu:
        proc = await folder.start("run", "job.toml", url=emu.url)
        while emu.stats()["requests"] == 0:
            await asyncio.sleep(0.05)
        cut = 0
        for _ in range(3):
            await asyncio.sleep(0.4)
            cut += await terminate_backends(pg_schema)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        stats = emu.stats()
    assert cut >= 3
    assert proc.returncode == 0, err.decode()[-3000:]
    assert stats["distinct_ids"] == 10000
