"""A PostgreSQL table synced by the real CLI into the emulator: full, incremental, after a kill."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.e2e.conftest import Workspace
from tests.e2e.crash_trials import table_crash_trials
from tests.pg import DSN, QUERY, fill

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

Table = tuple[asyncpg.Connection, str]
BATCH, DISPATCHERS = 100, 4


def _job(workspace: Workspace, table: str, rate: int) -> None:
    query = QUERY.format(t=table).replace('"', '\\"')
    workspace.job(f"""
[[streams]]
name = "orders"
record_type = "order"
mode = "create"
[streams.source]
kind = "postgres"
dsn_env = "SOURCE_DSN"
query = "{query}"
cursor = ["updated_at", "seq"]
drop = ["updated_at", "seq"]
# the crash trials bound resends by what was in flight; a lookback also re-reads rows before
# the checkpoint whose hashes were not written yet when the process died (docs/sources.md)
lookback_seconds = 0
""", rate_limit_per_second=rate, concurrency=DISPATCHERS)


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DSN", DSN)


async def test_a_table_syncs_whole_then_only_the_rows_that_changed(
        workspace: Workspace, emulator: object, pg_table: Table) -> None:
    conn, table = pg_table
    await fill(conn, table, 50_000)
    _job(workspace, table, rate=400)
    async with emulator(rate=400, queue_capacity=1_000_000) as emu:  # type: ignore[operator]
        first = await workspace.run("run", "job.toml", url=emu.url, timeout=110)
        assert first.code == 0, first.stderr
        after_first = emu.stats()
        await conn.execute(f"UPDATE {table} SET total = total + 1, updated_at = now() "
                           "WHERE id % 500 = 7")  # 100 rows
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0, second.stderr
        after_second = emu.stats()
    assert after_first["distinct_ids"] == 50_000
    assert after_first["records_accepted"] == 50_000
    assert after_second["records_accepted"] - after_first["records_accepted"] == 100


async def _kill_and_resume(workspace: Workspace, emulator: object, conn: asyncpg.Connection,
                           table: str, trials: int) -> None:
    total = 3000 + trials * 3000
    await fill(conn, table, total)
    _job(workspace, table, rate=40)
    await table_crash_trials("postgres crash trials", workspace, emulator, total, trials,
                             in_flight=(DISPATCHERS + 1) * BATCH)


async def test_a_run_killed_midway_resumes_without_loss(
        workspace: Workspace, emulator: object, pg_table: Table) -> None:
    conn, table = pg_table
    await _kill_and_resume(workspace, emulator, conn, table, trials=2)


@pytest.mark.slow
async def test_twenty_crash_trials_lose_nothing(
        workspace: Workspace, emulator: object, pg_table: Table) -> None:
    conn, table = pg_table
    await _kill_and_resume(workspace, emulator, conn, table, trials=20)


async def test_verify_last_run_checks_the_rows_the_last_run_read_not_the_table(
        workspace: Workspace, emulator: object, pg_table: Table) -> None:
    """A query's checkpoint is a keyset cursor, which Python cannot order: ``--last-run``
    reads from where the run started up to its checkpoint, as the run did, instead of checking
    every row of the table (it did: 2,000 look-ups after a night that changed 30)."""
    conn, table = pg_table
    await fill(conn, table, 2000)
    _job(workspace, table, rate=400)
    async with emulator(rate=400) as emu:  # type: ignore[operator]
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await conn.execute(f"UPDATE {table} SET total = total + 1, updated_at = now() "
                           "WHERE id % 100 = 7")  # 20 rows
        await conn.execute(f"UPDATE {table} SET total = total + 2, updated_at = now() "
                           "WHERE id % 100 = 9")  # 20 more, the last of them the checkpoint
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await asyncio.sleep(0.5)  # the emulator imports asynchronously
        # a row changed after the second run is not what it sent: outside the window
        await conn.execute(f"UPDATE {table} SET total = total + 3, updated_at = now() "
                           "WHERE id = 1")
        result = await workspace.run("verify", "job.toml", "--last-run", "--method", "single",
                                     "--json", "-q", url=emu.url)
    assert result.code == 0, result.stderr
    (stream,) = json.loads(result.stdout)["streams"]
    assert (stream["checked"], stream["verified"], stream["different"]) == (40, 40, 0)
