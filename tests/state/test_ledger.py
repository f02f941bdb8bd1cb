"""The ledger of records not (yet) in Ometria, in both stores: rows written whole, in the
order submitted, per job; dropped by key; forgotten by ``reset``; and a store of schema
version 3 migrates to the current version keeping what it held."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from ometria_sync.errors import StateError
from ometria_sync.state import LedgerEntry, open_state, sqlite_sql
from ometria_sync.state import pg_schema as pg_tables
from ometria_sync.state.store import StateStore
from tests.pg import DSN, connect


def entry(key: str, *, stream: str = "contacts", content: int = 1, run: str = "r1",
          attempts: int = 1, payload: str | None = None) -> LedgerEntry:
    return LedgerEntry(stream, key, "email: must be an email address", content, "r1",
                       "2026-11-30T01:00:00+00:00", run, "2026-12-01T01:00:00+00:00", attempts,
                       payload=payload)


async def test_rows_are_written_whole_and_replaced_by_key(store: StateStore) -> None:
    store.put_ledger([entry("c1"), entry("c2", content=-(2**63)), entry("o1", stream="orders")])
    store.put_ledger([entry("c1", content=7, run="r2", attempts=2, payload='{"id":"c1"}')])
    rows = await store.ledger("contacts")
    assert sorted(rows, key=lambda r: r.key) == [
        entry("c1", content=7, run="r2", attempts=2, payload='{"id":"c1"}'),
        entry("c2", content=-(2**63))]
    assert await store.ledger(key="o1") == [entry("o1", stream="orders")]
    assert len(await store.ledger()) == 3


async def test_a_run_reads_rows_by_key_once_their_write_is_done(store: StateStore) -> None:
    """What a run reads of its ledger: the rows of some keys (committed ones: the write's
    future says when), the stream's keys a page at a time, and only the rows it resends."""
    assert await store.ledger_keys("contacts") == []
    undelivered = msgspec.structs.replace(entry("c3", payload='{"id":"c3"}'),
                                          kind="undelivered")
    written = store.put_ledger([entry("c1"), entry("c2"), undelivered,
                                entry("c1", stream="orders")])
    await store.flush()
    assert written.done() and written.exception() is None
    found = await store.ledger_lookup("contacts", ["c1", "c3", "never-there"])
    assert sorted(r.key for r in found) == ["c1", "c3"]
    assert await store.ledger_keys("contacts") == ["c1", "c2", "c3"]
    assert await store.ledger_keys("contacts", after="c1", limit=1) == ["c2"]
    assert await store.ledger("contacts", unsent=True) == [undelivered]
    dropped = store.drop_ledger("contacts", ["c1"])
    await store.flush()
    assert dropped.done() and await store.ledger_lookup("contacts", ["c1"]) == []


async def test_drop_removes_only_the_keys_of_that_stream(store: StateStore) -> None:
    store.put_ledger([entry("c1"), entry("c2"), entry("c1", stream="orders")])
    store.drop_ledger("contacts", ["c1", "never-there"])
    assert sorted((r.stream, r.key) for r in await store.ledger()) == [
        ("contacts", "c2"), ("orders", "c1")]


async def test_reset_forgets_the_ledger_of_one_stream_or_all(store: StateStore) -> None:
    store.put_ledger([entry("c1"), entry("o1", stream="orders")])
    await store.reset("orders")
    assert [r.key for r in await store.ledger()] == ["c1"]
    await store.reset()
    assert await store.ledger() == []


async def test_a_ledger_write_after_a_failed_write_is_not_written(store: StateStore) -> None:
    store.save("s", "", [500, 10], "fp", 10)
    store.save("s", "", [100, 2], "fp", 1)  # backwards: fails, and stops the queue
    with pytest.raises(StateError):
        await store.flush()
    with pytest.raises(StateError, match="earlier state write failed"):
        store.put_ledger([entry("c1")])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_each_job_sees_its_own_ledger(kind: str, tmp_path: Path, pg_schema: str) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}" if kind == "sqlite" else DSN
    first = await open_state(url, pg_schema, job="a")
    second = await open_state(url, pg_schema, job="b")
    try:
        first.put_ledger([entry("c1")])
        await first.flush()
        assert await second.ledger() == []
        assert [r.key for r in await first.ledger()] == ["c1"]
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_sqlite_store_of_version_3_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    store = await open_state(url, job="j")
    store.save("contacts", "", [10, 1], "fp", 1)
    await store.aclose()
    db = sqlite3.connect(tmp_path / "cp.db")
    db.executescript("DROP TABLE ledger; PRAGMA user_version = 3;")
    db.close()
    again = await open_state(url, job="j")
    try:
        assert [c.position for c in await again.checkpoints()] == [[10, 1]]
        again.put_ledger([entry("c1")])
        assert [r.key for r in await again.ledger()] == ["c1"]
    finally:
        await again.aclose()
    db = sqlite3.connect(tmp_path / "cp.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_sql.SCHEMA_VERSION == 7


async def test_a_postgres_store_of_version_3_keeps_its_rows(pg_schema: str) -> None:
    conn = await connect()
    try:
        assert await pg_tables.migrate(conn, pg_schema, "test", target=3) == 0
        await conn.execute(
            f"INSERT INTO {pg_schema}.checkpoints (job, stream, part, position, fingerprint, "
            "delivered, updated_at) VALUES ('j', 'contacts', '', '[10, 1]', 'fp', 1, 'then')")
        store = await open_state(DSN, pg_schema, job="j")
        try:
            assert [c.position for c in await store.checkpoints()] == [[10, 1]]
            store.put_ledger([entry("c1")])
            assert [r.key for r in await store.ledger()] == ["c1"]
        finally:
            await store.aclose()
        assert await pg_tables.stored_version(conn, pg_schema) == pg_tables.SCHEMA_VERSION == 7
    finally:
        await conn.close()


async def test_a_store_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version = {sqlite_sql.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer ometria-sync"):
        await open_state(f"sqlite:///{tmp_path / 'new.db'}")


async def test_the_last_clean_verify_is_kept_per_job_and_reset_forgets_it(
        store: StateStore) -> None:
    assert await store.last_clean_verify() is None
    await store.record_clean_verify("2026-12-01T02:00:00+00:00", ["a1", "b2"])
    await store.record_clean_verify("2026-12-02T02:00:00+00:00", ["c3"])
    last = await store.last_clean_verify()
    assert last is not None and (last.at, last.errors) == ("2026-12-02T02:00:00+00:00", ["c3"])
    await store.reset("contacts")  # one stream: kept
    assert await store.last_clean_verify() is not None
    await store.reset()
    assert await store.last_clean_verify() is None
