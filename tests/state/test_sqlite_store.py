"""The state thread: the run's SQLite work in order, off the event loop, failures never lost."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from pathlib import Path

import pytest

from ometria_sync.errors import StateError
from ometria_sync.state import sqlite_store
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore
from ometria_sync.state.sqlite_store import StateThread
from ometria_sync.state.store import Backlog


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'cp.db'}"


def _save(position: list[int], store: SqliteCheckpointStore) -> None:
    store.save("s", "a.jsonl", position, "fp", 1)


async def test_writes_run_in_the_order_submitted_and_reads_see_them(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    try:
        for n in range(1, 201):
            state.submit(functools.partial(_save, [n * 10, n]))
        saved = await state.call(lambda store: store.load("s", "a.jsonl"))
    finally:
        state.close()
    assert saved is not None and saved.position == [2000, 200] and saved.delivered == 200


async def test_the_event_loop_runs_while_the_state_thread_works(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        state.submit(lambda store: time.sleep(0.3))  # a long commit, say
        assert ticks <= 1  # submit did not wait
        await state.flush()
    finally:
        ticker.cancel()
        state.close()
    assert ticks >= 10


async def test_every_call_runs_on_the_one_state_thread(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    try:
        names = {await state.call(lambda store: threading.current_thread().name)
                 for _ in range(5)}
    finally:
        state.close()
    assert len(names) == 1 and names != {threading.current_thread().name}


async def test_a_failed_write_is_raised_once_by_the_next_call(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))

    def full_disk(store: SqliteCheckpointStore) -> None:
        raise StateError("checkpoint store: cannot write: database or disk is full")

    try:
        state.submit(full_disk)
        state.submit(full_disk)  # a consequence of the first: not reported again
        with pytest.raises(StateError, match="disk is full"):
            await state.flush()
        await state.flush()
        with pytest.raises(StateError, match="not written"):  # the queue stopped at it
            await state.call(lambda store: store.load("s", "a.jsonl"))
    finally:
        state.close()


async def test_close_raises_a_failure_nobody_saw(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    state.submit(functools.partial(_save, []))  # an empty checkpoint is refused
    with pytest.raises(StateError, match="empty checkpoint"):
        state.close()
    state.close()  # closed once: a second close is quiet


def test_a_store_that_cannot_open_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not supported"):
        StateThread("redis://localhost")


async def test_keep_up_waits_while_too_many_writes_are_queued(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    disk = threading.Event()  # a slow disk: nothing is written until it is set
    try:
        for n in range(1, 6):
            state.submit(lambda store, n=n: (disk.wait(5), _save([n], store)))
        assert state.queued == 5
        await state.keep_up(most=5)  # at the bound: no wait
        waiting = asyncio.create_task(state.keep_up(most=2))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        disk.set()
        await asyncio.wait_for(waiting, 5)
        assert state.queued <= 2
        await state.flush()
        saved = await state.call(lambda store: store.load("s", "a.jsonl"))
    finally:
        disk.set()
        state.close()
    assert saved is not None and saved.position == [5]


async def test_keep_up_waits_while_too_many_change_hashes_are_queued(tmp_path: Path) -> None:
    """Few writes, but many hashes in them: the bound on hashes holds the caller."""
    state = StateThread(_url(tmp_path))
    disk = threading.Event()
    try:
        for _ in range(3):
            state.submit(lambda store: disk.wait(5), hashes=5000)
        await state.keep_up(most=10, hashes=15_000)  # at the bound: no wait
        waiting = asyncio.create_task(state.keep_up(most=10, hashes=5000))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        disk.set()
        await asyncio.wait_for(waiting, 5)
        assert state.queued <= 1
    finally:
        disk.set()
        state.close()


def test_the_backlog_names_the_write_that_leaves_both_bounds_kept() -> None:
    backlog: Backlog[concurrent.futures.Future[None]] = Backlog()
    futures = [concurrent.futures.Future[None]() for _ in range(4)]
    for future, hashes in zip(futures, (4000, 0, 5000, 5000), strict=True):
        backlog.add(future, hashes)
    assert backlog.over(most=4, hashes=14_000) is None
    assert backlog.over(most=2, hashes=14_000) is futures[1]  # two writes left behind it
    assert backlog.over(most=4, hashes=10_000) is futures[0]  # 10,000 hashes behind it
    assert backlog.over(most=4, hashes=9_999) is futures[2]
    futures[0].set_result(None)
    assert backlog.over(most=4, hashes=10_000) is None and backlog.hashes == 10_000


async def test_keep_up_raises_a_failed_write_once(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))

    def full_disk(store: SqliteCheckpointStore) -> None:
        raise StateError("checkpoint store: cannot write: database or disk is full")

    try:
        for _ in range(3):
            state.submit(full_disk)
        with pytest.raises(StateError, match="disk is full"):
            await state.keep_up(most=0)
        await state.flush()  # seen once: not raised again
    finally:
        state.close()


def _remember(pairs: list[tuple[int, int]], store: SqliteCheckpointStore) -> None:
    store.changes.remember(store.changes.stream_id("s"), pairs)


async def test_a_read_runs_here_at_once_and_sees_what_was_committed(tmp_path: Path) -> None:
    state = StateThread(_url(tmp_path))
    disk = threading.Event()
    try:
        stream = await state.call(lambda store: store.changes.stream_id("s"))
        state.submit(functools.partial(_remember, [(1, 11)]))
        await state.flush()
        state.submit(lambda store: disk.wait(5))  # a long write holds the state thread
        state.submit(functools.partial(_remember, [(2, 22)]))
        assert state.read(lambda store: store.changes.lookup(stream, [1, 2])) == {1: 11}
        disk.set()
        await state.flush()
        assert state.read(lambda store: store.changes.lookup(stream, [1, 2])) == {1: 11, 2: 22}
        here = state.read(lambda store: threading.current_thread().name)
        assert here == threading.current_thread().name
    finally:
        disk.set()
        state.close()


async def test_the_wal_is_cut_back_after_a_transaction_that_outgrew_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One transaction may grow the WAL far past its checkpoint size (a merge of the change
    index's side table into a large index); once copied back, the file is cut to the limit
    instead of keeping that size on disk."""
    monkeypatch.setattr(sqlite_store, "WAL_PAGES", 10)
    monkeypatch.setattr(sqlite_store, "WAL_LIMIT", 10 * 4096)
    state = StateThread(_url(tmp_path))
    wal = tmp_path / "state" / "cp.db-wal"

    def big(store: SqliteCheckpointStore) -> None:
        stream = store.changes.stream_id("s")
        store.changes.remember(stream, [(i * 7919, i) for i in range(1, 20_001)])
        store.changes.merge()

    try:
        await state.call(big)
        grown = wal.stat().st_size
        await state.call(functools.partial(_save, [1, 1]))
        after = wal.stat().st_size
    finally:
        state.close()
    assert grown > 4 * 10 * 4096
    assert after <= 10 * 4096 + 8192
