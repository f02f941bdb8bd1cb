"""What makes the PostgreSQL run lock a proof, not a hope: write fences and a send lease.

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
  :data:`LEASE`. A run that has just taken the lock sends nothing for ``LEASE + 1`` seconds: an
  old holder that lost the lock unnoticed stopped starting requests ``LEASE`` seconds after its
  last verification, which was before the server released the lock; the extra second is the
  limit's window (a request started just before the end arrives a little later).

``LEASE = 2`` s: four verifications per lease, so a server slow by up to a second pauses
nothing; and the new holder's wait (3 s, once per take) is small beside a run.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from ometria_sync.clock import Clock, Sleep
from ometria_sync.errors import StateError

T = TypeVar("T")

#: seconds a verification of the run lock lets requests leave, counted from when it was sent
LEASE = 2.0
#: seconds between verifications of the run lock on the server
VERIFY_EVERY = 0.5
#: seconds a verification may take before the lock's session counts as lost
VERIFY_TIMEOUT = 1.0
#: seconds without a verification after which the run stops
GIVE_UP_AFTER = 15.0

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

    def taken(self, sent_at: float) -> None:
        """The lock was taken by a query sent at ``sent_at``."""
        self._opens_at = self._clock() + self.length + 1.0
        self.verified(sent_at)

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
