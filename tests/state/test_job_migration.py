"""A store written before state was keyed by the job (schema version 2, both stores) keeps its
state: the first job that opens it adopts the rows of the streams it lists (with the account
they were written for); another job listing a stream of the same name sees none of them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ometria_sync.state import open_state, sqlite_sql
from ometria_sync.state import pg_schema as pg_tables
from ometria_sync.state.store import AccountIdentity, AccountMismatch, StateStore
from tests.pg import DSN, connect

LIVE = AccountIdentity.of("https://api.ometria.com/v2", "live-key-9a8b")
OTHER = AccountIdentity.of("https://api.ometria.com/v2", "other-key-0c0c")

#: the SQLite store exactly as ometria-sync wrote it at schema version 2 (eda9392)
SQLITE_V2 = """
CREATE TABLE checkpoints (stream TEXT NOT NULL, part TEXT NOT NULL, position TEXT NOT NULL,
    fingerprint TEXT, delivered INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
    PRIMARY KEY (stream, part));
CREATE TABLE stream_runs (stream TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
    outcome TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), base_url TEXT NOT NULL,
    key_sha256 TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, stream TEXT NOT NULL,
    time TEXT NOT NULL, entry TEXT NOT NULL);
CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE record_hashes (stream INTEGER NOT NULL, id_hash INTEGER NOT NULL,
    content_hash INTEGER NOT NULL, PRIMARY KEY (stream, id_hash)) WITHOUT ROWID;
PRAGMA user_version = 2;
"""
ROWS = [
    "INSERT INTO checkpoints VALUES ('contacts', '', '[42,3]', 'fp', 3, '2026-01-01')",
    "INSERT INTO checkpoints VALUES ('orders', '', '[99,9]', 'fp', 9, '2026-01-01')",
    "INSERT INTO stream_runs VALUES ('contacts', '2026-01-01', '2026-01-01', 'ok', 3)",
    "INSERT INTO streams (id, name) VALUES (1, 'contacts')",
    "INSERT INTO streams (id, name) VALUES (2, 'orders')",
    "INSERT INTO record_hashes VALUES (1, 5, 55)",
    "INSERT INTO record_hashes VALUES (2, 6, 66)",
    "INSERT INTO dead_letters (run_id, stream, time, entry) VALUES ('r', 'contacts', 't', '{}')",
    f"INSERT INTO account VALUES (1, '{LIVE.base_url}', '{LIVE.key_sha256}', '2026-01-01')",
]


def _sqlite_v2(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SQLITE_V2 + ";\n".join(ROWS) + ";")
    db.close()
    return f"sqlite:///{path}"


async def _pg_v2(schema: str) -> None:
    conn = await connect()
    try:
        await pg_tables.migrate(conn, schema, "test", target=2)  # today's schema, unchanged
        for row in ROWS:
            await conn.execute(row.replace("INTO ", f"INTO {schema}."))
    finally:
        await conn.close()


async def _opened(url: str, schema: str, job: str, streams: tuple[str, ...]) -> StateStore:
    return await open_state(url, schema, job=job, streams=streams)


async def _adoption(url: str, schema: str) -> None:
    first = await _opened(url, schema, "contacts-job", ("contacts",))
    second = await _opened(url, schema, "other-contacts", ("contacts",))
    third = await _opened(url, schema, "orders-job", ("orders",))
    try:
        saved = await first.load("contacts", "")
        assert saved is not None and (saved.position, saved.delivered) == ([42, 3], 3)
        run = await first.last_run("contacts")
        assert run is not None and run.outcome == "ok"
        assert await first.tracked_ids("contacts") == 1
        assert await first.lookup(await first.stream_id("contacts"), [5]) == {5: 55}
        assert [e async for e in first.dead_letters()] == [b"{}"]
        assert await first.load("orders", "") is None  # not a stream of this job
        with pytest.raises(AccountMismatch):  # the account the adopted rows describe
            await first.claim_account(OTHER)
        # a second job with a stream of the same name sees none of it
        assert await second.load("contacts", "") is None
        assert await second.last_run("contacts") is None
        assert await second.tracked_ids("contacts") == 0
        assert [e async for e in second.dead_letters()] == []
        assert await second.claim_account(OTHER) is True
        # the job that lists orders finds them
        orders = await third.load("orders", "")
        assert orders is not None and orders.position == [99, 9]
        assert await third.tracked_ids("orders") == 1
        assert await third.claim_account(LIVE) is False
    finally:
        for store in (first, second, third):
            await store.aclose()


async def test_a_sqlite_store_of_version_2_is_adopted_by_the_jobs_that_list_its_streams(
        tmp_path: Path) -> None:
    path = tmp_path / "state" / "cp.db"
    url = _sqlite_v2(path)
    await _adoption(url, "ometria_sync")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_sql.SCHEMA_VERSION
    db.close()


async def test_a_postgres_store_of_version_2_is_adopted_by_the_jobs_that_list_its_streams(
        pg_schema: str) -> None:
    await _pg_v2(pg_schema)
    await _adoption(DSN, pg_schema)
    conn = await connect()
    try:
        assert await pg_tables.stored_version(conn, pg_schema) == pg_tables.SCHEMA_VERSION
    finally:
        await conn.close()
