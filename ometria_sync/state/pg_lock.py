"""One run of a job at a time, across hosts: a PostgreSQL session advisory lock, keyed by the
schema and the job (two jobs in one schema each have their own).

The lock is held by a connection of its own for the whole run; PostgreSQL releases it when that
session ends, so a killed process (a pod evicted, ``kill -9``) never leaves a stale lock. A row
in ``run_lock`` names the holder (host, pid, since when) so that a second run can say who holds
it. The row of a killed holder stays behind, but is only read while the lock is really held.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType

import asyncpg

from ometria_sync.errors import StateError
from ometria_sync.state.pg_schema import lock_key

Connect = Callable[[], Awaitable[asyncpg.Connection]]
#: seconds a run waits for a lock that is held, before it gives up
HOLDER_EXIT_WAIT = 2.0


class RunLockHeld(StateError):
    """Another run of this job holds the run lock: nothing was sent; wait for it or stop it."""


class PgRunLock:
    def __init__(self, connect: Connect, schema: str, job: str = "") -> None:
        self._connect = connect
        self._schema = schema
        self._job = job
        self.key = lock_key(schema, "run lock", job)
        self._conn: asyncpg.Connection | None = None
        self._held = False

    async def __aenter__(self) -> PgRunLock:
        await self._take()
        self._held = True
        return self

    async def _take(self) -> None:
        conn = await self._connect()
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
            if not got:
                got = await self._wait(conn)
            if not got:
                holder = await conn.fetchrow(
                    f"SELECT host, pid, since FROM {self._schema}.run_lock WHERE key = $1",
                    self.key)
                raise RunLockHeld(held_message(holder))
            await conn.execute(
                f"INSERT INTO {self._schema}.run_lock (key, host, pid, since, job) "
                "VALUES ($1, $2, $3, now(), $4) "
                "ON CONFLICT (key) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                "since = excluded.since", self.key, socket.gethostname(), os.getpid(),
                self._job)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

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

    async def ensure(self) -> None:
        """Still held? A lost lock connection is replaced and the lock taken again, unless
        another run took it meanwhile (then :class:`RunLockHeld`: this run must stop)."""
        if not self._held or (self._conn is not None and not self._conn.is_closed()):
            return
        self._conn = None  # until taken again: every write before then tries again
        await self._take()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        self._held = False
        if conn is None:
            return
        try:
            if not conn.is_closed():
                await conn.execute(f"DELETE FROM {self._schema}.run_lock WHERE key = $1",
                                   self.key)
                await conn.execute("SELECT pg_advisory_unlock($1)", self.key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the session ends below, and the lock with it
        finally:
            await conn.close()


def held_message(holder: asyncpg.Record | None) -> str:
    who = ("another process" if holder is None else
           f"host {holder['host']}, pid {holder['pid']}, since "
           f"{holder['since'].isoformat(timespec='seconds')}")
    return (f"another run of this job is in progress ({who} holds the run lock); "
            "wait for it to finish, or stop it")


async def lock_held(conn: asyncpg.Connection, schema: str, job: str = "") -> bool:
    """True while some session holds the job's run lock (a run is going on)."""
    key = lock_key(schema, "run lock", job)
    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return False
    return True
