"""One run of a job at a time, across hosts: a PostgreSQL session advisory lock, keyed by the
schema and the job (two jobs in one schema each have their own).

The lock is held by a connection of its own for the whole run; PostgreSQL releases it when that
session ends, so a killed process (a pod evicted, ``kill -9``) never leaves a stale lock. A row
in ``run_lock`` names the holder (host, pid, since when) so that a second run can say who holds
it. The row of a killed holder stays behind, but is only read while the lock is really held.

The client cannot tell a live lock session from a half-open one, so the lock is checked on the
server: every state write commits only while this run's lock session still holds the lock, and
a request leaves only under a fresh lease (below). A run that cannot verify its lock
stops with :class:`RunLockLost`.

What makes the lock a proof, not a hope: write fences and a send lease.

A session advisory lock can be lost without its holder noticing: the lock's connection goes
half-open (a partition, a load balancer's idle timeout) while the server ends the session (a
failover, ``pg_terminate_backend``). The client still sees an open socket; a second run takes
the lock. Two guards, both checked on the server:

* **Writes are fenced.** Every write transaction ends by taking a shared transaction lock on the
  run lock's *fence* (the same key in PostgreSQL's two-int key space) and checking in
  ``pg_locks`` that the lock session (its backend pid, read when the lock was taken) still holds
  the run lock; if not, :class:`FenceFailed` and nothing commits. A run that takes the lock takes
  the fence exclusively once, so it waits for any fenced transaction already checked; any later
  one finds the old session gone. So no write of an old holder commits after the new one began.
* **Sends hold a lease.** The holder verifies the lock on its own session every
  :data:`VERIFY_EVERY` seconds (a query with a :data:`VERIFY_TIMEOUT`: a half-open socket cannot
  hang it), and a request leaves only while the last verification *sent* is younger than
  :data:`LEASE`. A run that has just taken the lock from a holder that did not release it (a
  holder row without ``released_at``: killed, or its session lost) sends nothing for
  ``LEASE + 1`` seconds: an old holder that lost the lock unnoticed stopped starting requests
  ``LEASE`` seconds after its last verification, which was before the server released the lock;
  the extra second is the limit's window (a request started just before the end arrives a
  little later).

A holder that releases the lock stopped sending first, then stamps its row ``released_at``
(server time) on the lock's own session, before unlocking: the next holder waits only what is
left of the limit's window after that moment, and with no row at all (a job's first run, a
store written before version 7 released by deleting its row) nothing.

``LEASE = 2`` s: four verifications per lease, so a server slow by up to a second pauses
nothing; and the new holder's wait (3 s after a killed holder, at most 1 s after a released
one) is small beside a run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import asyncpg

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import StateError
from ometria_sync.state.pg_schema import lock_key

T = TypeVar("T")

#: seconds a verification of the run lock lets requests leave, counted from when it was sent
LEASE = 2.0
#: seconds between verifications of the run lock on the server
VERIFY_EVERY = 0.5
#: seconds a verification may take before the lock's session counts as lost
VERIFY_TIMEOUT = 1.0
#: seconds without a verification after which the run stops
GIVE_UP_AFTER = 15.0

#: what a lost lock session raises; InternalClientError: a session the server ended while idle
#: can leave the client's protocol mid-state ("another operation is in progress")
_GONE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
         asyncpg.exceptions.InternalClientError)
#: the holder row, and the seconds left of the limit's window after its release (None: held)
_HOLDER = """SELECT host, pid, since, EXTRACT(EPOCH FROM released_at + interval '1 second'
    - clock_timestamp())::float8 FROM {s}.run_lock WHERE key = $1"""
_HELD = """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1 AND pid = $3)"""


class RunLockLost(StateError):
    """The run lock could not be verified on the server (lost, or taken by another run): this
    run stops sending and writing; nothing acknowledged is lost, the next run resends what was
    in flight."""


class FenceFailed(StateError):
    """A write found the run lock no longer held by this run's lock session: nothing of it
    committed; the lock's session is replaced (or the run stops) and the write tried again."""


def _halves(key: int) -> tuple[int, int]:
    """The unsigned halves PostgreSQL shows in ``pg_locks.classid``/``objid`` for a bigint key."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def fence_key(key: int) -> tuple[int, int]:
    """The run lock's fence: ``key`` as PostgreSQL's two signed int4 keys."""
    high, low = (h - (1 << 32) if h >= 1 << 31 else h for h in _halves(key))
    return high, low


async def holds(conn: asyncpg.Connection, key: int, pid: int,
                timeout: float | None = VERIFY_TIMEOUT) -> bool:
    """True when the backend ``pid`` holds the advisory lock ``key`` (asked on the server)."""
    high, low = _halves(key)
    return bool(await conn.fetchval(_HELD, high, low, pid, timeout=timeout))


async def fenced(conn: asyncpg.Connection, key: int, pid: int,
                 op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """``op`` in a transaction that commits only if ``pid`` still holds the run lock ``key``."""
    async with conn.transaction():
        result = await op(conn)
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1, $2)", *fence_key(key))
        if not await holds(conn, key, pid):
            raise FenceFailed("the run lock is no longer held by this run's lock session")
    return result


async def drain_fence(conn: asyncpg.Connection, key: int) -> None:
    """Wait for every fenced write already checked (by a holder that lost the lock) to end."""
    await conn.execute("SELECT pg_advisory_lock($1, $2)", *fence_key(key))
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", *fence_key(key))


class Lease:
    """When requests may leave: from ``LEASE + 1`` s after a take, while the last verification
    sent is younger than ``LEASE``; never after :meth:`fail`. Time comes from ``clock``."""

    def __init__(self, clock: Clock, sleep: Sleep, length: float = LEASE) -> None:
        self._clock = clock
        self._sleep = sleep
        self.length = length
        self._opens_at = math.inf
        self._valid_until = -math.inf
        self.last_verified = -math.inf
        self.failure: BaseException | None = None
        self._changed = asyncio.Event()

    def taken(self, sent_at: float, wait: float | None = None) -> None:
        """The lock was taken by a query sent at ``sent_at``; requests may leave ``wait``
        seconds from now (by default ``LEASE + 1``: an old holder may still be sending)."""
        self._opens_at = self._clock() + (self.length + 1.0 if wait is None else wait)
        self.verified(sent_at)

    def opens_in(self) -> float:
        """Seconds until the first request may leave after the take (0: already)."""
        return max(0.0, self._opens_at - self._clock())

    def verified(self, sent_at: float) -> None:
        """A verification sent at ``sent_at`` found the lock held."""
        self.last_verified = max(self.last_verified, sent_at)
        self._valid_until = self.last_verified + self.length
        self._notify()

    def lapse(self) -> None:
        """The lock's session is known lost: nothing leaves until it is taken again."""
        self._valid_until = -math.inf
        self._notify()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Return at the next change of state."""
        await self._changed.wait()

    async def may_send(self) -> None:
        """Return while a request may leave; wait while the lease is being renewed (at most
        :data:`GIVE_UP_AFTER`: the keeper then fails it); raise the failure once the lock is
        lost for good."""
        while True:
            if self.failure is not None:
                raise self.failure
            now = self._clock()
            if now < self._opens_at and self._opens_at != math.inf:
                await self._sleep(self._opens_at - now)
            elif now < self._valid_until:
                return
            else:  # the keeper renews it, retakes the lock, or fails: each says so
                await self.changed()


Connect = Callable[[], Awaitable[asyncpg.Connection]]
#: seconds a run waits for a lock that is held, before it gives up
HOLDER_EXIT_WAIT = 2.0


class RunLockHeld(StateError):
    """Another run of this job holds the run lock: nothing was sent; wait for it or stop it."""


class PgRunLock:
    """The run lock, its send lease and its write fence (above).

    A keeper task verifies the lock on its own session every ``VERIFY_EVERY`` s. A lost session
    is replaced and the lock taken again only if nobody held it meanwhile (the holder row is
    still this run's); else, or when nothing is verified for ``GIVE_UP_AFTER`` s, the run
    stops with :class:`RunLockLost`."""

    def __init__(self, connect: Connect, schema: str, job: str = "", *,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._connect = connect
        self._schema = schema
        self._job = job
        self.key = lock_key(schema, "run lock", job)
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
            holder = await conn.fetchrow(_HOLDER.format(s=self._schema), self.key)
            if self._mine is not None and (holder is None or tuple(holder)[:3] != self._mine):
                raise RunLockLost(f"run lock lost: {taken_message(holder)}")
            if not got and self._mine is None:
                raise RunLockHeld(held_message(holder))
            if not got:
                await self._end_lingering(conn)
                raise _StillOurs()
            wait = None  # this run's own lost session taken again: the full wait
            if self._mine is None:
                wait = _wait_after(holder)
                row = await conn.fetchrow(
                    f"INSERT INTO {self._schema}.run_lock (key, host, pid, since, job) "
                    "VALUES ($1, $2, $3, now(), $4) "
                    "ON CONFLICT (key) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
                    "since = excluded.since, released_at = NULL RETURNING host, pid, since",
                    self.key, socket.gethostname(), os.getpid(), self._job)
                self._mine = (row[0], row[1], row[2])
            await drain_fence(conn, self.key)
            self.pid = self._last_pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self.lease.taken(sent, wait)

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
        except (_StillOurs, StateError, *_GONE) as exc:  # StateError: a reconnect that failed
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
                await conn.execute(f"UPDATE {self._schema}.run_lock SET released_at = "
                                   "clock_timestamp() WHERE key = $1", self.key,
                                   timeout=VERIFY_TIMEOUT)
                await conn.execute("SELECT pg_advisory_unlock($1)", self.key,
                                   timeout=VERIFY_TIMEOUT)
        except _GONE:
            pass  # the session ends below, and the lock with it
        finally:
            await _close(conn)


def _wait_after(holder: asyncpg.Record | None) -> float | None:
    """Seconds a new holder sends nothing, by the row the last holder left: none without a
    row, the rest of the limit's window after a release, else the full wait (None)."""
    if holder is None:
        return 0.0
    left: float | None = holder[3]
    return None if left is None else max(0.0, left)


class _StillOurs(Exception):
    """The lock is held by this run's own lost session, which the server has not ended yet."""


async def _close(conn: asyncpg.Connection) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), VERIFY_TIMEOUT)
    except _GONE:
        conn.terminate()


def taken_message(holder: asyncpg.Record | None) -> str:
    who = ("another run" if holder is None else
           f"another run (host {holder['host']}, pid {holder['pid']})")
    return (f"{who} took it after this run's lock session was lost (a failover, a cut "
            "connection); this run stopped sending and writing; nothing acknowledged is lost")


def held_message(holder: asyncpg.Record | None) -> str:
    if holder is not None and holder[3] is not None:
        holder = None  # a released holder's row: the new one has not written its own yet
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
