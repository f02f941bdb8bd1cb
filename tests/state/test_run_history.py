"""Run reports kept in the state store (both stores): written through the ordered queue, read
back newest-last, a retried write adds no row, and each job sees only its own; a store of
schema version 3 (before the ledger) or 4 (the ledger, before run reports) migrates to 5
keeping its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ometria_sync.state import LedgerEntry, open_state, sqlite_sql
from ometria_sync.state import pg_schema as pg_tables
from ometria_sync.state.store import StateStore
from tests.pg import DSN, connect
from tests.state.conftest import Opener


def _report(n: int) -> tuple[str, str, bytes]:
    run_id = f"2026120{n}T021000.000Z-abc{n}"
    started = f"2026-12-0{n}T02:10:00+00:00"
    return run_id, started, f'{{"run_id": "{run_id}", "n": {n}}}'.encode()


async def test_reports_are_kept_and_read_back_newest_last(open_store: Opener) -> None:
    store = await open_store()
    for n in (3, 1, 2, 4):  # written out of order: read back by start time
        store.add_run_report(*_report(n))
    await store.aclose()
    again = await open_store()  # another process, later
    assert await again.run_reports(2) == [_report(3)[2], _report(4)[2]]
    assert await again.run_reports(100) == [_report(n)[2] for n in (1, 2, 3, 4)]


async def test_writing_a_report_again_replaces_it(store: StateStore) -> None:
    run_id, started, _ = _report(1)
    store.add_run_report(run_id, started, b'{"try": 1}')
    store.add_run_report(run_id, started, b'{"try": 2}')
    assert await store.run_reports(10) == [b'{"try": 2}']


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_each_job_sees_its_own_reports(kind: str, tmp_path: Path, pg_schema: str) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}" if kind == "sqlite" else DSN
    stores = [await open_state(url, pg_schema, job=name) for name in ("contacts", "orders")]
    try:
        for n, store in enumerate(stores, start=1):
            store.add_run_report(*_report(n))
            await store.flush()
        assert [await s.run_reports(10) for s in stores] == [[_report(1)[2]], [_report(2)[2]]]
    finally:
        for store in stores:
            await store.aclose()


_ENTRY = LedgerEntry("contacts", "c1", "email: must be an email address", 7, "r1",
                     "2026-11-30T01:00:00+00:00", "r1", "2026-11-30T01:00:00+00:00")


async def _kept_and_reports_work(store: StateStore, *, ledger: bool) -> None:
    """What the old store held is still there, and run reports can be written and read."""
    assert [c.position for c in await store.checkpoints()] == [[10, 1]]
    assert await store.ledger() == ([_ENTRY] if ledger else [])
    store.add_run_report(*_report(1))
    assert await store.run_reports(10) == [_report(1)[2]]


@pytest.mark.parametrize("version", [3, 4])
async def test_a_sqlite_store_of_an_older_version_migrates_to_5_keeping_its_rows(
        tmp_path: Path, version: int) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    store = await open_state(url, job="j")
    store.save("contacts", "", [10, 1], "fp", 1)
    store.put_ledger([_ENTRY])
    await store.aclose()
    db = sqlite3.connect(tmp_path / "cp.db")  # back to what that version wrote
    db.executescript("DROP TABLE run_reports;"
                     + ("DROP TABLE ledger; DROP TABLE clean_verifies;" if version == 3 else "")
                     + f"PRAGMA user_version = {version};")
    db.close()
    again = await open_state(url, job="j")
    try:
        await _kept_and_reports_work(again, ledger=version == 4)
    finally:
        await again.aclose()
    db = sqlite3.connect(tmp_path / "cp.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == sqlite_sql.SCHEMA_VERSION == 7
    db.close()


@pytest.mark.parametrize("version", [3, 4])
async def test_a_postgres_store_of_an_older_version_migrates_to_5_keeping_its_rows(
        pg_schema: str, version: int) -> None:
    conn = await connect()
    try:
        assert await pg_tables.migrate(conn, pg_schema, "test", target=version) == 0
        await conn.execute(
            f"INSERT INTO {pg_schema}.checkpoints (job, stream, part, position, fingerprint, "
            "delivered, updated_at) VALUES ('j', 'contacts', '', '[10, 1]', 'fp', 1, 'then')")
        if version == 4:
            await conn.execute(
                f"INSERT INTO {pg_schema}.ledger (job, stream, key, kind, reason, content_hash, "
                "first_run, first_seen, last_run, last_seen, attempts, payload) VALUES "
                "('j', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                _ENTRY.stream, _ENTRY.key, _ENTRY.kind, _ENTRY.reason, _ENTRY.content_hash,
                _ENTRY.first_run, _ENTRY.first_seen, _ENTRY.last_run, _ENTRY.last_seen,
                _ENTRY.attempts, _ENTRY.payload)
        assert not await conn.fetchval(f"SELECT to_regclass('{pg_schema}.run_reports')::text")
        store = await open_state(DSN, pg_schema, job="j")
        try:
            await _kept_and_reports_work(store, ledger=version == 4)
        finally:
            await store.aclose()
        assert await pg_tables.stored_version(conn, pg_schema) == pg_tables.SCHEMA_VERSION == 7
    finally:
        await conn.close()
