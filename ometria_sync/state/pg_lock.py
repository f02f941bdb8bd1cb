"""One run of a job at a time, across hosts: a PostgreSQL session advisory lock.

The lock is held by a connection of its own for the whole run; PostgreSQL releases it when that
session ends, so a killed process (a pod evicted, ``kill -9``) never leaves a stale lock. A row
in ``run_lock`` names the holder (host, pid, since when) so that a second run can say who holds
it. The row of a killed holder stays behind, but is only read while the lock is really held.

The client cannot tell a live lock session from a half-open one, so the lock is checked on the
server: every state write commits only while this run's lock session still holds the lock, and
a request leaves only under a fresh lease (``pg_lease.py``). A run that cannot verify its lock
stops with :class:`RunLockLost`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import asyncpg

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import StateError
from ometria_sync.state.pg_lease import (
    GIVE_UP_AFTER,
    VERIFY_EVERY,
    VERIFY_TIMEOUT,
    FenceFailed,
    Lease,
    RunLockLost,
    drain_fence,
    fenced,
    holds,
)
from ometria_sync.state.pg_schema import lock_key

Connect = Callable[[], Awaitable[asyncpg.Connection]]
#: seconds a run waits for a lock that is held, before it gives up
HOLDER_EXIT_WAIT = 2.0
T = TypeVar("T")


class RunLockHeld(StateError):
    """Another run of this job holds the run lock: nothing was sent; wait for it or stop it."""


class PgRunLock:
    """The run lock, its send lease and its write fence (``pg_lease.py``).

    A keeper task verifies the lock on its own session every ``VERIFY_EVERY`` s. A lost session
    is replaced and the lock taken again only if nobody held it meanwhile (the holder row is
    still this run's); else, or when nothing is verified for ``GIVE_UP_AFTER`` s, the run
    stops with :class:`RunLockLost`."""

    def __init__(self, connect: Connect, schema: str, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._connect = connect
        self._schema = schema
        self.key = lock_key(schema, "run lock")
        self._conn: asyncpg.Connection | None = None
        #: the lock session's backend pid, read when the lock was taken
        self.pid: int | None = None
        self._last_pid: int | None = None  # kept after the session is lost
        self._mine: tuple[str, int, dt.datetime] | None = None  # the holder row written
        self._clock = clock
        self._sleep = sleep
        self.lease = Lease(clock, sleep)
        self._keeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PgRunLock:
        await self._take()
        self._keeper = asyncio.create_task(self._keep(), name="run-lock-keeper")
        return self

    async def _take(self) -> None:
        conn = await self._connect()
        try:
            sent = self._clock()
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
            if not got:
                got = await self._wait(conn)
            holder = await conn.fetchrow(
                f"SELECT host, pid, since FROM {self._schema}.run_lock WHERE key = $1",
                self.key)
            if self._mine is not None and (holder is None or tuple(holder) != self._mine):
                raise RunLockLost(f"run lock lost: {taken_message(holder)}")
            if not got and self._mine is None:
                raise RunLockHeld(held_message(holder))
            if not got:
                await self._end_lingering(conn)
                raise _StillOurs()
            if self._mine is None:
                row = await conn.fetchrow(
                    f"INSERT INTO {self._schema}.run_lock VALUES ($1, $2, $3, now()) "
                    "ON CONFLICT (key) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                    "since = excluded.since RETURNING host, pid, since",
                    self.key, socket.gethostname(), os.getpid())
                self._mine = (row[0], row[1], row[2])
            await drain_fence(conn, self.key)
            self.pid = self._last_pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self.lease.taken(sent)

    async def _end_lingering(self, conn: asyncpg.Connection) -> None:
        """This run's old lock session still holds the lock on the server (its connection went
        half-open: the server has not noticed): end it, so that the next take gets the lock."""
        old = self._last_pid
        if old is not None and await holds(conn, self.key, old):
            await conn.execute("SELECT pg_terminate_backend($1)", old)

    async def _wait(self, conn: asyncpg.Connection) -> bool:
        """Wait up to HOLDER_EXIT_WAIT for the lock: a holder killed a moment ago keeps it
        until its server process has noticed and exited."""
        try:
            await conn.execute(f"SET lock_timeout = '{int(HOLDER_EXIT_WAIT * 1000)}ms'")
            await conn.execute("SELECT pg_advisory_lock($1)", self.key)
            return True
        except asyncpg.exceptions.LockNotAvailableError:
            return False
        finally:
            await conn.execute("RESET lock_timeout")

    async def may_send(self) -> None:
        """Return while a request may leave (the lease is fresh); RunLockLost once lost."""
        await self.lease.may_send()

    async def fenced(self, conn: asyncpg.Connection, op: Callable[[asyncpg.Connection],
                                                                  Awaitable[T]]) -> T:
        """``op`` on ``conn`` in a transaction that commits only under this run's lock."""
        for _ in range(3):
            pid = await self._session()
            try:
                return await fenced(conn, self.key, pid, op)
            except FenceFailed:
                self._lost(pid)
        raise RunLockLost("run lock lost: three writes in a row found it taken from this run")

    async def _session(self) -> int:
        while True:
            if self.lease.failure is not None:
                raise self.lease.failure
            if self._conn is not None and self.pid is not None:
                return self.pid
            await self.lease.changed()

    def _lost(self, pid: int | None) -> None:
        """The session ``pid`` no longer holds the lock (or cannot say): drop it."""
        if pid is not None and pid != self.pid:
            return
        conn, self._conn, self.pid = self._conn, None, None
        if conn is not None:
            conn.terminate()
        self.lease.lapse()

    async def _keep(self) -> None:
        try:
            while True:
                await self._sleep(VERIFY_EVERY)
                await self._renew()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the run must hear of it, whatever it was
            self._lost(None)
            self.lease.fail(exc if isinstance(exc, RunLockLost) else RunLockLost(
                f"run lock: cannot verify it on the server ({exc}); this run stopped"))

    async def _renew(self) -> None:
        sent = self._clock()
        try:
            if self._conn is None or self.pid is None:
                await asyncio.wait_for(self._take(), GIVE_UP_AFTER)
            elif await holds(self._conn, self.key, self.pid):
                self.lease.verified(sent)
            else:
                self._lost(self.pid)
        except RunLockLost:
            raise
        except (_StillOurs, StateError, OSError, TimeoutError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:  # StateError: a reconnect that failed
            self._lost(None)
            if self._clock() - self.lease.last_verified > GIVE_UP_AFTER:
                raise RunLockLost(
                    f"run lock: not verified on the server for {GIVE_UP_AFTER:.0f} s "
                    f"({type(exc).__name__}); this run stopped sending and writing, nothing "
                    "acknowledged is lost") from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        conn, self._conn = self._conn, None
        self.lease.fail(RunLockLost("run lock released"))
        if conn is None:
            return
        try:
            if not conn.is_closed():  # the lock's own session: it holds the lock
                await conn.execute(f"DELETE FROM {self._schema}.run_lock WHERE key = $1",
                                   self.key, timeout=VERIFY_TIMEOUT)
                await conn.execute("SELECT pg_advisory_unlock($1)", self.key,
                                   timeout=VERIFY_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the session ends below, and the lock with it
        finally:
            await _close(conn)


class _StillOurs(Exception):
    """The lock is held by this run's own lost session, which the server has not ended yet."""


async def _close(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), VERIFY_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        conn.terminate()


def taken_message(holder: asyncpg.Record | None) -> str:
    who = ("another run" if holder is None else
           f"another run (host {holder['host']}, pid {holder['pid']})")
    return (f"{who} took it after this run's lock session was lost (a failover, a cut "
            "connection); this run stopped sending and writing; nothing acknowledged is lost")


def held_message(holder: asyncpg.Record | None) -> str:
    who = ("another process" if holder is None else
           f"host {holder['host']}, pid {holder['pid']}, since "
           f"{holder['since'].isoformat(timespec='seconds')}")
    return (f"another run of this job is in progress ({who} holds the run lock); "
            "wait for it to finish, or stop it")


async def lock_held(conn: asyncpg.Connection, schema: str) -> bool:
    """True while some session holds the job's run lock (a run is going on)."""
    key = lock_key(schema, "run lock")
    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return False
    return True
