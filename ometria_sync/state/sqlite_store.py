"""The state in a SQLite file: :class:`StateStore` (:class:`SqliteState`) over the state
thread (:class:`StateThread`).

Writes and ``call``s run in order on the state thread; change-index lookups run inline on the
event loop's thread with a read connection of their own (about 40 us, cheaper than a hop to a
thread and back); the run lock is a file lock beside the database, one per job
(``file_lock.py``). The store is opened for one job and sees only that job's rows.

The state thread runs the state's work on a thread of its own: the event loop never waits
for SQLite.

At 200 requests/s a run makes hundreds of change-index lookups a second, saves checkpoints
(up to ten a second a part, ``settle.SAVE_INTERVAL``), and writes thousands of change hashes at
a time. On the event loop's thread those calls held
the loop for up to 50 ms (a commit that touches thousands of B-tree pages, or that runs a WAL
checkpoint), and the pacer missed its departures meanwhile. Here one thread owns the run's
connection to the checkpoint store; SQLite releases the GIL while it works, so the loop goes on.

Guarantees:

* one connection, one thread: calls run one at a time, in the order they were made, so a
  checkpoint submitted after another is written after it (and never moves backwards);
* :meth:`StateThread.submit` does not wait, but never loses a failure: the first one is raised,
  once, (as the :class:`StateError` it was) by the next ``submit``, ``call``, :meth:`flush` or
  :meth:`close`;
* a failed write stops the queue (``store.py``): nothing queued after it runs, so a
  checkpoint never commits ahead of a dead letter or change hash that was lost, and every
  later ``submit`` or ``call`` raises ``StateWritesStopped``;
* :meth:`keep_up` bounds the writes queued and not yet done, and the change hashes in them: a
  disk slower than the network slows the run down instead of growing its memory;
* :meth:`read` is the exception: a short read (a change-index lookup, about 40 us) runs at once
  on the caller's thread with a second connection (WAL lets it read while the state thread
  writes). It sees what was committed, not writes still queued. A hop to a thread and back cost
  the event loop's thread about 190 us of CPU per lookup, 20% of a dry run's records/s. On a
  stream whose index was empty when named (a first run) a lookup reads only for ids this
  store wrote since (``written_ids.py``), mostly none;
* :meth:`close` waits for everything submitted, then closes the connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from ometria_sync.pacing import SendPermit
from ometria_sync.state.file_lock import RunLock, lock_path_for, run_in_progress
from ometria_sync.state.run_history import sqlite_add_run_report, sqlite_run_reports
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore, open_checkpoint_store
from ometria_sync.state.store import (
    MAX_QUEUED_HASHES,
    MAX_QUEUED_WRITES,
    AccountIdentity,
    Backlog,
    Checkpoint,
    CleanVerify,
    DeadLetterRow,
    FirstFailure,
    GroupRow,
    LedgerEntry,
    Pending,
    Pointed,
    StreamRun,
    group_weight,
)
from ometria_sync.state.written_ids import WrittenIds

T = TypeVar("T")
StoreCall = Callable[[SqliteCheckpointStore], T]


class StateThread:
    """A checkpoint store opened on, and written only from, one worker thread; plus a read
    connection for short lookups on the caller's thread (:meth:`read`)."""

    def __init__(self, url: str, job: str = "") -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="state")
        self._store: SqliteCheckpointStore | None = None
        self._failures = FirstFailure(url)  # noted on the state thread, raised on the loop's
        self._queued: Backlog[concurrent.futures.Future[object]] = Backlog()
        self._url = url
        self._job = job
        self._reader: SqliteCheckpointStore | None = None  # opened by the first read
        try:
            self._store = self._pool.submit(_open_writer, url, job).result()
        except BaseException:
            self._pool.shutdown()
            raise

    def _run(self, fn: StoreCall[T]) -> T:
        """On the state thread: ``fn(store)``, unless an earlier write failed."""
        assert self._store is not None
        if self._failures.failed:
            raise self._failures.refusal()
        try:
            return fn(self._store)
        except BaseException as exc:
            self._failures.note(exc)
            raise

    def _run_anyway(self, fn: StoreCall[T]) -> T:
        """On the state thread, even after a failure: waiting (flush) and closing."""
        assert self._store is not None
        return fn(self._store)

    def _raise_failure(self) -> None:
        self._failures.raise_unseen()

    async def call(self, fn: StoreCall[T]) -> T:
        """Run ``fn(store)`` on the state thread, after everything submitted before it."""
        self._failures.check()
        future = self._pool.submit(self._run, fn)
        try:
            return await asyncio.wrap_future(future)
        except BaseException as exc:
            self._failures.seen(exc)
            raise

    def raise_failure(self) -> None:
        """Raise the first failed write if nobody saw it yet (as :meth:`read` does first)."""
        self._raise_failure()

    def read(self, fn: StoreCall[T]) -> T:
        """Run ``fn(store)``, a short read, now on this thread (always the same one: the event
        loop's), with a connection of its own; it does not wait for queued writes."""
        self._raise_failure()
        if self._reader is None:
            self._reader = open_checkpoint_store(self._url, self._job)
        return fn(self._reader)

    def submit(self, fn: StoreCall[object], hashes: int = 0) -> concurrent.futures.Future[object]:
        """Queue ``fn(store)`` (a write of ``hashes`` change hashes) without waiting for it; the
        future tells when it is done (and so visible to :meth:`read`)."""
        self._failures.check()
        future: concurrent.futures.Future[object] = self._pool.submit(self._run, fn)
        self._queued.add(future, hashes)
        return future

    @property
    def queued(self) -> int:
        """Submitted writes not known to be done (counted when the next one is submitted)."""
        return len(self._queued)

    async def keep_up(self, most: int = MAX_QUEUED_WRITES,
                      hashes: int = MAX_QUEUED_HASHES) -> None:
        """Wait while more than ``most`` submitted writes, or ``hashes`` change hashes in them,
        are still queued. Calls run in order, so waiting for one write leaves only those
        behind it."""
        await self.catch_up(most, hashes)
        self._raise_failure()

    async def catch_up(self, most: int = MAX_QUEUED_WRITES,
                       hashes: int = MAX_QUEUED_HASHES) -> None:
        """:meth:`keep_up`'s wait, raising nothing: a failure is raised once, by the next
        ``keep_up``, ``submit`` or ``call`` (writes behind a failed one are refused, so done)."""
        while (oldest := self._queued.over(most, hashes)) is not None:
            await asyncio.wait([asyncio.wrap_future(oldest)])

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (or refused); raise the first
        failure if nobody saw it yet."""
        self._raise_failure()
        await asyncio.wrap_future(self._pool.submit(self._run_anyway, lambda _store: None))
        self._raise_failure()

    def close(self) -> None:
        """Write what was submitted and close the connection. Raises the first failure if no
        caller saw it yet (a write queued in the last moments of a run)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._store is None:
            return
        try:
            self._pool.submit(self._run_anyway, lambda store: store.close()).result()
        finally:
            self._store = None
            self._pool.shutdown()
        self._raise_failure()


#: WAL pages before a commit copies them into the database (SQLite's default: 1000). Random
#: ids dirty about a page per hash once the change index is large, so a 5,000-hash write
#: filled the default WAL and was copied back at once, pages the next writes dirty again;
#: 10,000 (40 MB of WAL, reused) copies such a page once per few writes.
WAL_PAGES = 10_000
#: bytes the WAL file is cut back to once copied: one transaction may grow it past
#: ``WAL_PAGES`` (a merge of the change index's side table into a large index dirties up to a
#: page per row, about 200 MB at 10 million ids), and without a limit the file keeps that size
WAL_LIMIT = WAL_PAGES * 4096


def _open_writer(url: str, job: str) -> SqliteCheckpointStore:
    """(On the state thread) the run's store, whose connection writes and checkpoints the WAL."""
    store = open_checkpoint_store(url, job)
    store.db.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
    store.db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
    return store


Store = SqliteCheckpointStore  # short, for the partials below
_PAGE = 1000


class SqliteState:
    """A :class:`~ometria_sync.state.store.StateStore` in a SQLite file."""

    def __init__(self, thread: StateThread, url: str, job: str = "") -> None:
        self._thread = thread
        self._url = url
        self.label = url
        #: the job whose rows this store reads and writes ('': rows of no named job)
        self.job = job
        #: ids a lookup need not ask about (``written_ids.py``)
        self._written = WrittenIds()

    @classmethod
    async def open(cls, url: str, job: str = "", streams: Sequence[str] = ()) -> SqliteState:
        """The state of ``job`` in the file; it adopts rows of ``streams`` written before state
        was keyed by the job (see :func:`~ometria_sync.state.sqlite_sql.adopt_legacy`)."""
        state = cls(StateThread(url, job), url, job)
        names = list(streams)
        try:
            await state.thread.call(lambda store: store.adopt(names))
        except BaseException:
            await state.aclose()
            raise
        return state

    @property
    def thread(self) -> StateThread:
        return self._thread

    async def load(self, stream: str, part: str) -> Checkpoint | None:
        return await self._thread.call(functools.partial(Store.load, stream=stream, part=part))

    def save(self, stream: str, part: str, position: Any, fingerprint: str | None,
             delivered: int) -> None:
        self._thread.submit(functools.partial(
            Store.save, stream=stream, part=part, position=position, fingerprint=fingerprint,
            delivered=delivered))

    async def restart(self, stream: str, part: str) -> None:
        await self._thread.call(functools.partial(Store.restart, stream=stream, part=part))

    async def start_run(self, stream: str) -> None:
        await self._thread.call(functools.partial(Store.start_run, stream=stream))

    async def finish_run(self, stream: str, outcome: str, delivered: int) -> None:
        await self._thread.call(functools.partial(
            Store.finish_run, stream=stream, outcome=outcome, delivered=delivered))

    async def checkpoints(self, stream: str | None = None) -> list[Checkpoint]:
        return await self._thread.call(lambda store: store.checkpoints(stream))

    async def last_run(self, stream: str) -> StreamRun | None:
        return await self._thread.call(lambda store: store.last_run(stream))

    async def reset(self, stream: str | None = None) -> int:
        return await self._thread.call(lambda store: store.reset(stream))

    async def stream_id(self, name: str) -> int:
        def named(store: Store) -> tuple[int, bool]:
            stream = store.changes.stream_id(name)
            return stream, store.changes.holds_any(stream)

        stream, held = await self._thread.call(named)
        self._written.named(stream, empty=not held)
        return stream

    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]:
        asked = self._written.may_hold(stream_id, id_hashes)
        if not asked:
            self._thread.raise_failure()
            return {}
        return self._thread.read(lambda store: store.changes.lookup(stream_id, asked))

    def remember(self, stream_id: int, pairs: list[tuple[int, int]],
                 groups: list[int] | None = None) -> Pending:
        self._written.written(stream_id, pairs)
        return self._thread.submit(lambda store: store.changes.remember(stream_id, pairs,
                                                                        groups), len(pairs))

    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None:
        self._thread.submit(lambda store: store.changes.forget_ids(stream_id, id_hashes),
                            len(id_hashes))

    async def tracked_ids(self, stream: str) -> int:
        return await self._thread.call(lambda store: store.changes.count(stream))

    async def held_groups(self, stream_id: int,
                          group_hashes: list[int]) -> dict[int, Sequence[int]]:
        return self._thread.read(lambda store: store.changes.groups.held(stream_id,
                                                                         group_hashes))

    def keep_groups(self, stream_id: int, marker: int, groups: list[GroupRow],
                    seen: list[int], pointed: Sequence[Pointed] = ()) -> None:
        self._thread.submit(lambda store: store.changes.groups.keep(stream_id, marker, groups,
                                                                    seen, pointed),
                            group_weight(groups, seen, pointed))

    def prune_groups(self, stream_id: int, marker: int) -> None:
        self._thread.submit(lambda store: store.changes.groups.prune(stream_id, marker))

    async def claim_account(self, current: AccountIdentity) -> bool:
        return await self._thread.call(lambda store: store.claim_account(current))

    def add_dead_letters(self, rows: list[DeadLetterRow]) -> None:
        self._thread.submit(lambda store: store.add_dead_letters(rows))

    def add_run_report(self, run_id: str, started_at: str, report: bytes) -> None:
        self._thread.submit(lambda store: sqlite_add_run_report(
            store.db, store.job, run_id, started_at, report, str(store.path)))

    async def run_reports(self, last: int) -> list[bytes]:
        return await self._thread.call(lambda store: sqlite_run_reports(
            store.db, store.job, last, str(store.path)))

    async def dead_letters(
        self, stream: str | None = None, run_id: str | None = None
    ) -> AsyncIterator[bytes]:
        after = 0
        while True:
            page = await self._thread.call(functools.partial(
                Store.dead_letters, stream=stream, run_id=run_id, after=after, limit=_PAGE))
            for row_id, entry in page:
                after = row_id
                yield entry.encode()
            if len(page) < _PAGE:
                return

    def put_ledger(self, rows: list[LedgerEntry]) -> Pending:
        return self._thread.submit(lambda store: store.ledger.put(rows))

    def drop_ledger(self, stream: str, keys: list[str]) -> Pending:
        return self._thread.submit(lambda store: store.ledger.drop(stream, keys))

    async def ledger(self, stream: str | None = None, key: str | None = None, *,
                     unsent: bool = False) -> list[LedgerEntry]:
        return await self._thread.call(lambda store: store.ledger.rows(stream, key, unsent))

    async def ledger_lookup(self, stream: str, keys: list[str]) -> list[LedgerEntry]:
        return self._thread.read(lambda store: store.ledger.lookup(stream, keys))

    async def ledger_keys(self, stream: str, after: str = "",
                          limit: int = _PAGE) -> list[str]:
        return await self._thread.call(lambda store: store.ledger.keys(stream, after, limit))

    async def record_clean_verify(self, at: str, errors: list[str]) -> None:
        await self._thread.call(lambda store: store.ledger.record_clean_verify(at, errors))

    async def last_clean_verify(self) -> CleanVerify | None:
        return await self._thread.call(lambda store: store.ledger.last_clean_verify())

    def run_lock(self) -> AbstractAsyncContextManager[SendPermit]:
        return _file_lock(RunLock(lock_path_for(self._url, self.job)))

    async def run_in_progress(self) -> bool:
        return run_in_progress(lock_path_for(self._url, self.job))

    async def keep_up(self, most: int = MAX_QUEUED_WRITES,
                      hashes: int = MAX_QUEUED_HASHES) -> None:
        await self._thread.keep_up(most, hashes)

    async def catch_up(self, most: int = MAX_QUEUED_WRITES,
                       hashes: int = MAX_QUEUED_HASHES) -> None:
        await self._thread.catch_up(most, hashes)

    async def flush(self) -> None:
        await self._thread.flush()

    async def aclose(self) -> None:
        self._thread.close()


@contextlib.asynccontextmanager
async def _file_lock(lock: RunLock) -> AsyncIterator[SendPermit]:
    with lock:
        yield lock
