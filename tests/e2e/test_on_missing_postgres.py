"""``on_missing = "deactivate"`` on a PostgreSQL source read by cursor, through the real CLI
against the emulator (with another integration's products in it): a ``deleted_query`` over a
soft-delete column deactivates exactly the rows deleted since the last run, and a weekly
``keys_query`` sweep deactivates exactly the rows gone since (only once a week has passed); an
empty table deactivates nothing and exits 1; rows that come back are sent active."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace
from tests.e2e.test_on_missing import changed, settled
from tests.pg import DSN, connect

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
Emulator = Callable[..., Any]
FOREIGN = [{"@type": "product", "id": f"p{i}", "title": "Theirs", "is_active": True}
           for i in range(500, 505)]  # ids the table never held when the job delivered


def job(workspace: Workspace, table: str, how: str) -> None:
    workspace.job(f"""
[[streams]]
name = "products"
record_type = "product"
on_missing = "deactivate"
[streams.source]
kind = "postgres"
dsn_env = "SOURCE_DSN"
query = "SELECT id, title, updated_at FROM {table} WHERE deleted_at IS NULL"
cursor = ["updated_at", "id"]
drop = ["updated_at"]
lookback_seconds = 0
{how}
""")


DELETED = ('deleted_query = "SELECT id, deleted_at FROM {t} WHERE deleted_at IS NOT NULL"\n'
           'deleted_cursor = ["deleted_at", "id"]')
KEYS = 'keys_query = "SELECT id FROM {t} WHERE deleted_at IS NULL"\nsweep_every = "7d"'


@pytest.fixture
async def products() -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A products table of 500 rows p0..p499 and one row already deleted (p500) before the
    job ever ran: the foreign p500 in Ometria must stay untouched."""
    conn = await connect()
    table = f"products_{uuid.uuid4().hex[:10]}"
    await conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, title text NOT NULL, "
                       "updated_at timestamptz NOT NULL, deleted_at timestamptz)")
    await conn.execute(
        f"INSERT INTO {table} SELECT 'p' || n, 'Product ' || n, "
        "timestamptz '2026-01-01 00:00+00' + n * interval '1 second', NULL "
        "FROM generate_series(0, 499) AS n")
    await conn.execute(f"INSERT INTO {table} VALUES ('p500', 'gone', now(), now())")
    try:
        yield conn, table
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DSN", DSN)


async def delete(conn: asyncpg.Connection, table: str, ids: range) -> None:
    await conn.execute(f"UPDATE {table} SET deleted_at = now() WHERE id = ANY($1::text[])",
                       [f"p{i}" for i in ids])


async def restore(conn: asyncpg.Connection, table: str, ids: range) -> None:
    await conn.execute(f"UPDATE {table} SET deleted_at = NULL, updated_at = now() "
                       "WHERE id = ANY($1::text[])", [f"p{i}" for i in ids])


def age_the_last_sweep(workspace: Workspace, days: float) -> None:
    db = sqlite3.connect(workspace.root / "state" / "checkpoints.db")
    try:
        with db:
            db.execute("UPDATE checkpoints SET position = ? WHERE part = 'keys_sweep'",
                       (json.dumps(time.time() - days * 86400),))
    finally:
        db.close()


@pytest.mark.parametrize("how", ["deleted", "keys"])
async def test_deleted_rows_leave_ometria_and_come_back(
        how: str, tmp_path: Path, emulator: Emulator,
        products: tuple[asyncpg.Connection, str]) -> None:
    conn, table = products
    workspace = Workspace(tmp_path)
    job(workspace, table, (DELETED if how == "deleted" else KEYS).format(t=table))
    async with emulator(rate=50) as emu:
        store = emu.app[STORE]
        store.accept(FOREIGN)
        store.drain(len(FOREIGN))
        night1 = await workspace.run("run", "job.toml", url=emu.url)
        assert night1.code == 0, night1.stdout + night1.stderr
        first = await settled(emu)
        assert len(first["product"]) == 505

        await delete(conn, table, range(100, 140))
        if how == "keys":  # the sweep is weekly: a day later, nothing is deactivated yet
            assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
            assert changed(first["product"], (await settled(emu))["product"]) == {}
            age_the_last_sweep(workspace, days=7.1)
        night2 = await workspace.run("run", "job.toml", url=emu.url)
        assert night2.code == 0, night2.stdout + night2.stderr
        second = await settled(emu)
        assert changed(first["product"], second["product"]) == {
            f"p{i}": {"is_active": False} for i in range(100, 140)}
        assert "40 id(s) delivered before are missing from the source" in night2.stdout

        if how == "keys":  # an empty table is refused, as an empty file is
            await delete(conn, table, range(0, 500))
            age_the_last_sweep(workspace, days=8)
            empty = await workspace.run("run", "job.toml", url=emu.url)
            assert empty.code == 1
            assert "the source is empty but 460 ids were delivered" in empty.stdout
            assert changed(second["product"], (await settled(emu))["product"]) == {}
            await restore(conn, table, range(0, 100))
            await restore(conn, table, range(140, 500))

        await restore(conn, table, range(100, 105))
        night3 = await workspace.run("run", "job.toml", url=emu.url)
        assert night3.code == 0, night3.stdout + night3.stderr
        assert changed(second["product"], (await settled(emu))["product"]) == {
            f"p{i}": {"is_active": True} for i in range(100, 105)}
