"""PostgreSQL connections that survive a lost session, and an ordered write queue over them.

Two connections: the *writer* runs every write and ``call`` one at a time, in the order they
were made (a task draining a queue); the *reader* serves short reads that must not wait behind
writes (change-index lookups), and sees committed data only.

A lost connection (a restarted server, a failover, ``pg_terminate_backend``) is reconnected and
the statement retried after each of ``retry_delays``; then :class:`StateConnectionLost`. Every
statement given to the queue must therefore be idempotent or one transaction. A connection that
is lost without the client noticing (half-open: a partition, a load balancer that dropped it)
answers nothing: an operation that takes longer than ``op_timeout`` is treated as lost the same
way, so a run never hangs on a frozen socket (only ``call(..., bounded=False)`` waits as long
as it takes, for operations a person started, such as ``reset``).

Failures follow the state thread's rules (``store.py``): a write that fails is raised,
once, by the next ``submit``, ``call``, :meth:`PgQueue.flush`, :meth:`PgQueue.keep_up` or
:meth:`PgQueue.aclose`; and it stops the queue: nothing queued after it is run (a checkpoint
behind a lost dead-letter insert never commits), and every later ``submit`` or ``call`` raises
:class:`~ometria_sync.state.store.StateWritesStopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg
import structlog

from ometria_sync.errors import StateError
from ometria_sync.net import redact_url, scrub
from ometria_sync.state.store import MAX_QUEUED_HASHES, MAX_QUEUED_WRITES, Backlog, FirstFailure

log = structlog.get_logger("ometria_sync.state")
T = TypeVar("T")
Op = Callable[[asyncpg.Connection], Awaitable[T]]

#: seconds before each reconnect attempt after a lost connection
RETRY_DELAYS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 4.0)
#: seconds one statement (or fenced transaction) may take before its connection counts as lost
OP_TIMEOUT = 60.0
#: a queued write, its future, and whether it is bounded by ``op_timeout``
_Item = tuple[Op[Any], asyncio.Future[Any], bool]
#: queued writes run in one transaction, at most
_WRITES_PER_COMMIT = 100
#: what a lost connection raises; InternalClientError: a session ended by the server while idle
#: can leave the client's protocol mid-state ("another operation is in progress")
_LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
         asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InternalClientError,
         TimeoutError)
#: every state session plans each statement for its own values: asyncpg prepares statements,
#: and after five runs PostgreSQL may keep one generic plan made while a first run's tables
#: were nearly empty, which finds a stream's rows by ``stream`` alone and so reads the whole
#: stream for a few ids (``stream = $1 AND id_hash = ANY($2)`` in line groups, presence, the
#: ledger); planning a small statement costs less than the round trip
SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


class StateConnectionLost(StateError):
    """The state database stayed unreachable through every retry: the run stops (exit 1);
    nothing acknowledged is lost, what was in flight is resent by the next run."""


class _CannotConnect(StateError):
    """A connection could not be opened (retried like a lost one during a run)."""


class RunLockLike(Protocol):
    async def fenced(self, conn: asyncpg.Connection, op: Op[T]) -> T:
        """``op`` in a transaction that commits only while the run lock is held."""
        ...


class PgQueue:
    """Connections to one state schema and the ordered queue of its writes."""

    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self.schema = schema
        self.label = redact_url(url)
        self._conns: dict[str, asyncpg.Connection] = {}
        self._reading = asyncio.Lock()
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._queued: Backlog[asyncio.Future[Any]] = Backlog()
        self._failures = FirstFailure(self.label)
        self._lock: RunLockLike | None = None
        self._writer: asyncio.Task[None] | None = None
        self.retry_delays = RETRY_DELAYS
        self.op_timeout: float | None = OP_TIMEOUT

    def start(self) -> None:
        """Start the writer (after the schema is in place)."""
        self._writer = asyncio.create_task(self._drain(), name="state-writer")

    # connections ---------------------------------------------------------------------------

    async def connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                self._url, timeout=10, server_settings=SESSION_SETTINGS | {
                    "application_name": f"ometria-sync {self.schema}"})
        except (*_LOST, asyncpg.PostgresError, ValueError) as exc:
            raise _CannotConnect(f"checkpoint store {self.label}: cannot connect: "
                             f"{scrub(str(exc), self._url)}") from None

    async def _conn(self, role: str) -> asyncpg.Connection:
        conn = self._conns.get(role)
        if conn is None or conn.is_closed():
            conn = self._conns[role] = await self.connect()
        return conn

    async def _run(self, role: str, op: Op[T], bounded: bool = True) -> T:
        """``op`` on the ``role`` connection, reconnecting after a lost connection (or, when
        ``bounded``, one that answered nothing for ``op_timeout`` seconds)."""
        lost: BaseException | None = None
        limit = self.op_timeout if bounded else None
        for delay in (*self.retry_delays, None):
            try:
                conn = await self._conn(role)
                if role == "writer" and self._lock is not None:
                    return await asyncio.wait_for(self._lock.fenced(conn, op), limit)
                return await asyncio.wait_for(op(conn), limit)
            except (*_LOST, _CannotConnect) as exc:
                lost = exc
            except asyncpg.PostgresError as exc:
                raise StateError(f"checkpoint store {self.label}: "
                                 f"{scrub(str(exc), self._url)}") from None
            conn = self._conns.pop(role, None)
            if conn is not None:
                conn.terminate()
            if delay is None:
                break
            log.warning("state_connection_lost", store=self.label, retry_in=delay,
                        error=scrub(str(lost), self._url))
            await asyncio.sleep(delay)
        raise StateConnectionLost(
            f"checkpoint store {self.label}: connection lost and {len(self.retry_delays)} "
            f"reconnects failed ({scrub(str(lost), self._url)}); nothing acknowledged is lost, "
            "the next run resends what was in flight")

    # the ordered queue ---------------------------------------------------------------------

    async def _drain(self) -> None:
        """Run the queue. The writes waiting when the writer comes round (up to
        ``_WRITES_PER_COMMIT``) run in one transaction, in order: a checkpoint saved after
        every batch cost a commit each (a flush to disk: 1M records with PostgreSQL state
        took three times SQLite's time). A failure fails them all (none committed) and stops
        what follows."""
        closing = False
        while not closing:
            item = await self._queue.get()
            items = [item]
            while item is not None and item[2] and len(items) < _WRITES_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                items.append(item)
            if items[-1] is None:
                closing = True
                items.pop()
            await self._run_together([i for i in items if i is not None])

    def _runnable(self, items: list[_Item]) -> list[_Item]:
        """``items`` still to run; those behind a failed write are refused."""
        todo: list[_Item] = []
        for op, future, bounded in items:
            if future.done():
                continue
            if self._failures.failed and op is not _noop:
                future.set_exception(self._failures.refusal())  # behind a failed write
                continue
            todo.append((op, future, bounded))
        return todo

    async def _run_together(self, items: list[_Item]) -> None:
        todo = self._runnable(items)
        if len(todo) == 1:
            await self._run_one(*todo[0])
            return
        if not todo:
            return

        async def together(conn: asyncpg.Connection) -> list[Any]:
            if self._lock is not None:  # fenced: in a transaction already
                return [await op(conn) for op, _, _ in todo]
            async with conn.transaction():
                return [await op(conn) for op, _, _ in todo]

        try:
            results = await self._run("writer", together, all(b for _, _, b in todo))
        except asyncio.CancelledError:
            for _, future, _ in todo:
                future.cancel()
            raise
        except BaseException:  # none committed: one at a time, so those before it commit
            for op, future, bounded in todo:
                await self._run_one(op, future, bounded)
        else:
            for (_, future, _), result in zip(todo, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _run_one(self, op: Op[Any], future: asyncio.Future[Any], bounded: bool) -> None:
        if future.done():
            return
        if self._failures.failed and op is not _noop:
            future.set_exception(self._failures.refusal())  # behind a failed write
            return
        try:
            result = await self._run("writer", op, bounded)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:  # handed to whoever waits; stops what follows
            self._failures.note(exc)
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _raise_failure(self) -> None:
        """Raise a failed write nobody saw yet (once)."""
        self._failures.raise_unseen()

    def _enqueue(self, op: Op[T], bounded: bool = True) -> asyncio.Future[T]:
        if self._writer is None or self._writer.done():
            raise StateError(f"checkpoint store {self.label}: closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future, bounded))
        return future

    async def call(self, op: Op[T], *, bounded: bool = True) -> T:
        """Run ``op`` after every write submitted before it, and return its result
        (``bounded``: see the module docstring)."""
        self._failures.check()
        future = self._enqueue(op, bounded)
        try:
            return await future
        except BaseException as exc:
            self._failures.seen(exc)
            raise

    def submit(self, op: Op[Any], hashes: int = 0) -> asyncio.Future[Any]:
        """Queue a write (of ``hashes`` change hashes) without waiting; its failure is raised
        by the next call."""
        self._failures.check()
        future = self._enqueue(op)
        future.add_done_callback(_retrieved)
        self._queued.add(future, hashes)
        return future

    async def keep_up(self, most: int = MAX_QUEUED_WRITES,
                      hashes: int = MAX_QUEUED_HASHES) -> None:
        """Wait while more than ``most`` writes, or ``hashes`` change hashes, are queued."""
        await self.catch_up(most, hashes)
        self._raise_failure()

    async def catch_up(self, most: int = MAX_QUEUED_WRITES,
                       hashes: int = MAX_QUEUED_HASHES) -> None:
        """:meth:`keep_up`'s wait, raising nothing (a failure is raised by the next call)."""
        while (oldest := self._queued.over(most, hashes)) is not None:
            await asyncio.wait([oldest])

    async def flush(self) -> None:
        """Wait for everything submitted so far; raise a failure nobody saw yet."""
        self._raise_failure()
        await self._enqueue(_noop)  # runs even behind a failure: it writes nothing
        self._raise_failure()

    async def aclose(self) -> None:
        """Write what was submitted, close the connections; raise a failure nobody saw."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put_nowait(None)
            try:
                await writer
            finally:
                await self._close_connections()
        self._raise_failure()

    async def _close_connections(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(*_LOST, asyncpg.PostgresError):
                await asyncio.wait_for(conn.close(), 5)


async def _noop(conn: asyncpg.Connection) -> None:
    return None


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A submitted write's failure is raised through :class:`FirstFailure`, not its future."""
    if not future.cancelled():
        future.exception()
