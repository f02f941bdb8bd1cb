"""The state in a SQLite file: :class:`StateStore` over the state thread (``state_thread.py``).

Writes and ``call``s run in order on the state thread; change-index lookups run inline on the
event loop's thread with a read connection of their own (about 40 us, cheaper than a hop to a
thread and back); the run lock is a file lock beside the database, one per job
(``run_lock.py``). The store is opened for one job and sees only that job's rows.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from ometria_sync.pacing.protocol import SendPermit
from ometria_sync.state.account import AccountIdentity
from ometria_sync.state.checkpoint_rules import Checkpoint, StreamRun
from ometria_sync.state.checkpoints import SqliteCheckpointStore
from ometria_sync.state.run_lock import RunLock, lock_path_for, run_in_progress
from ometria_sync.state.state_thread import StateThread
from ometria_sync.state.store import MAX_QUEUED_WRITES, DeadLetterRow, Pending

Store = SqliteCheckpointStore
_PAGE = 1000


class SqliteState:
    """A :class:`~ometria_sync.state.store.StateStore` in a SQLite file."""

    def __init__(self, thread: StateThread, url: str, job: str = "") -> None:
        self._thread = thread
        self._url = url
        self.label = url
        #: the job whose rows this store reads and writes ('': rows of no named job)
        self.job = job

    @classmethod
    async def open(cls, url: str, job: str = "", streams: Sequence[str] = ()) -> SqliteState:
        """The state of ``job`` in the file; it adopts rows of ``streams`` written before state
        was keyed by the job (see :func:`~ometria_sync.state.sqlite_schema.adopt_legacy`)."""
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
        return await self._thread.call(lambda store: store.changes.stream_id(name))

    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]:
        return self._thread.read(lambda store: store.changes.lookup(stream_id, id_hashes))

    def remember(self, stream_id: int, pairs: list[tuple[int, int]]) -> Pending:
        return self._thread.submit(lambda store: store.changes.remember(stream_id, pairs))

    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None:
        self._thread.submit(lambda store: store.changes.forget_ids(stream_id, id_hashes))

    async def tracked_ids(self, stream: str) -> int:
        return await self._thread.call(lambda store: store.changes.count(stream))

    async def claim_account(self, current: AccountIdentity) -> bool:
        return await self._thread.call(lambda store: store.claim_account(current))

    def add_dead_letters(self, rows: list[DeadLetterRow]) -> None:
        self._thread.submit(lambda store: store.add_dead_letters(rows))

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

    def run_lock(self) -> AbstractAsyncContextManager[SendPermit]:
        return _file_lock(RunLock(lock_path_for(self._url, self.job)))

    async def run_in_progress(self) -> bool:
        return run_in_progress(lock_path_for(self._url, self.job))

    async def keep_up(self, most: int = MAX_QUEUED_WRITES) -> None:
        await self._thread.keep_up(most)

    async def flush(self) -> None:
        await self._thread.flush()

    async def aclose(self) -> None:
        self._thread.close()


@contextlib.asynccontextmanager
async def _file_lock(lock: RunLock) -> AsyncIterator[SendPermit]:
    with lock:
        yield lock
