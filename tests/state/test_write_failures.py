"""A state write that failed stops every write queued behind it, in both stores: a checkpoint is
durable only if every write submitted before it (dead letters, change hashes) is."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import uuid
from pathlib import Path

import pytest

from ometria_sync.errors import StateError
from ometria_sync.state import open_state
from ometria_sync.state.pg_state import PostgresState, StateConnectionLost
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore
from ometria_sync.state.sqlite_store import SqliteState, StateThread
from tests.pg import DSN, connect
from tests.pg_proxy import PgProxy

_ROW = ("run1", "products", "2026-12-06T00:00:00+00:00", '{"id": "bad 5"}')


async def test_postgres_a_write_that_failed_after_its_reconnects_stops_the_writes_behind_it(
) -> None:
    """The review's reproduction (item 3): the database goes away, a dead-letter insert fails
    after its reconnects, and the database is back at once. The hash write and the checkpoint
    queued behind the lost insert must not commit: a checkpoint past a refused record that is
    in no dead letter would lose it."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    async with PgProxy.running() as proxy:
        await _cut_while_a_dead_letter_is_written(proxy, schema)
    # nothing queued behind the lost insert committed
    conn = await connect()
    try:
        checkpoints = await conn.fetchval(f"SELECT count(*) FROM {schema}.checkpoints")
        hashes = await conn.fetchval(f"SELECT count(*) FROM {schema}.record_hashes")
        dead = await conn.fetchval(f"SELECT count(*) FROM {schema}.dead_letters")
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    assert (dead, hashes, checkpoints) == (0, 0, 0)


async def _cut_while_a_dead_letter_is_written(proxy: PgProxy, schema: str) -> None:
    store = await open_state(proxy.dsn, schema)
    assert isinstance(store, PostgresState)
    store.retry_delays = (0.05, 0.05, 0.05)
    stream = await store.stream_id("products")
    await store.flush()
    proxy.cut()
    await asyncio.sleep(0.05)
    store.add_dead_letters([_ROW])
    lost = store._queued[-1]  # the dead-letter insert's future
    # the database comes back the moment the insert gave up
    lost.add_done_callback(lambda _: asyncio.ensure_future(proxy.restore()))
    store.remember(stream, [(5, 55)])
    store.save("products", "", [200, 10], "fp", 9)
    with pytest.raises(StateConnectionLost):
        await store.flush()
    await asyncio.sleep(0.2)  # time enough for anything still queued to commit
    with contextlib.suppress(StateError):
        await store.aclose()


async def test_postgres_every_later_call_is_refused_and_flush_raises_the_failure_once(
        pg_schema: str) -> None:
    """After a failed write nothing else is written in that run (a ``call`` such as
    ``finish_run`` is refused too, naming the first failure); ``flush`` raises the failure once
    and then only waits, so a run can still end and report."""
    store = await open_state(DSN, pg_schema)
    assert isinstance(store, PostgresState)

    async def broken(conn: object) -> None:
        raise StateError("checkpoint store: cannot write: disk is full")

    try:
        store.submit(broken)
        store.save("contacts", "", [7, 1], "fp", 1)
        with pytest.raises(StateError, match="disk is full"):
            await store.flush()
        await store.flush()
        with pytest.raises(StateError, match=r"not written.*disk is full"):
            await store.finish_run("contacts", "failed", 0)
        with pytest.raises(StateError, match=r"not written.*disk is full"):
            store.save("contacts", "", [9, 1], "fp", 1)
        await store.flush()
    finally:
        with contextlib.suppress(StateError):
            await store.aclose()
    again = await open_state(DSN, pg_schema)
    try:
        assert await again.checkpoints() == []
    finally:
        await again.aclose()


def _save(position: list[int], store: SqliteCheckpointStore) -> None:
    store.save("s", "a.jsonl", position, "fp", 1)


def _position(path: Path) -> str | None:
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT position FROM checkpoints").fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


def _full_disk(store: SqliteCheckpointStore) -> None:
    raise StateError("checkpoint store: cannot write: database or disk is full")


async def test_sqlite_a_failed_write_stops_every_write_queued_behind_it(tmp_path: Path) -> None:
    """A dead-letter insert fails (a full disk that frees up at once): the hash write and the
    checkpoint submitted after it are not committed."""
    path = tmp_path / "cp.db"
    state = await SqliteState.open(f"sqlite:///{path}")
    stream = await state.stream_id("s")
    state.save("s", "a.jsonl", [1], "fp", 1)
    await state.flush()
    thread = state.thread
    thread.submit(_full_disk)  # stands in for the failing add_dead_letters
    state.remember(stream, [(5, 55)])
    state.save("s", "a.jsonl", [200], "fp", 9)
    try:
        with pytest.raises(StateError, match="disk is full"):
            await state.flush()
        db = sqlite3.connect(path)
        try:
            position = db.execute("SELECT position FROM checkpoints").fetchone()[0]
            hashes = db.execute("SELECT count(*) FROM record_hashes").fetchone()[0]
        finally:
            db.close()
        assert (position, hashes) == ("[1]", 0)
        with pytest.raises(StateError, match="not written"):
            await state.finish_run("s", "failed", 0)
    finally:
        await state.aclose()


async def test_sqlite_flush_and_close_still_work_after_a_failure(tmp_path: Path) -> None:
    """The failure is raised once; flush then only waits and close closes (a run ends and
    writes its report), but a write submitted later is refused, naming the first failure."""
    state = StateThread(f"sqlite:///{tmp_path / 'cp.db'}")
    try:
        state.submit(_full_disk)
        with pytest.raises(StateError, match="disk is full"):
            await state.flush()
        await state.flush()
        with pytest.raises(StateError, match=r"not written.*disk is full"):
            state.submit(functools.partial(_save, [3]))
        await state.flush()
        assert await asyncio.to_thread(_position, tmp_path / "cp.db") is None
    finally:
        state.close()
