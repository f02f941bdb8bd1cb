"""The run lock's send lease (on a manual clock) and its write fence (on the real server)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ometria_sync.state.pg_lock import (
    LEASE,
    FenceFailed,
    Lease,
    PgRunLock,
    RunLockLost,
    drain_fence,
    fence_key,
    fenced,
    holds,
)
from tests.manual_clock import ManualClock, turns
from tests.pg import connect


def _lease() -> tuple[ManualClock, Lease]:
    clock = ManualClock()
    return clock, Lease(clock.time, clock.sleep)


async def _sending(lease: Lease) -> asyncio.Task[None]:
    task = asyncio.create_task(lease.may_send())
    await turns()
    return task


async def test_a_fresh_take_opens_sends_a_lease_and_a_second_later() -> None:
    """The new holder waits out the old holder's lease plus the limit's window."""
    clock, lease = _lease()
    lease.taken(clock.now)
    task = await _sending(lease)
    for _ in range(5):  # verified all along: only the opening holds it back
        await clock.advance(0.5)
        lease.verified(clock.now)
    assert not task.done()  # 2.5 s after the take
    await clock.advance(LEASE + 1 - 2.5)
    assert task.done() and task.exception() is None


async def test_the_lease_ends_lease_seconds_after_the_last_verification_sent() -> None:
    """No request starts once the last verification is LEASE old; a new one lets them go."""
    clock, lease = _lease()
    lease.taken(clock.now)
    await clock.advance(LEASE + 1)
    lease.verified(sent_at=clock.now - 0.4)  # asked 0.4 s ago, answered now
    await lease.may_send()
    await clock.advance(LEASE - 0.5)
    await lease.may_send()  # 1.9 s after it was sent
    await clock.advance(0.1)
    task = await _sending(lease)
    assert not task.done()
    lease.verified(sent_at=clock.now)
    await turns()
    assert task.done() and task.exception() is None


async def test_a_lapsed_lease_waits_and_a_failed_one_raises() -> None:
    """A lost session stops departures at once; a lock lost for good raises at every one."""
    clock, lease = _lease()
    lease.taken(clock.now)
    await clock.advance(LEASE + 1)
    lease.verified(clock.now)
    lease.lapse()
    task = await _sending(lease)
    assert not task.done()
    lease.fail(RunLockLost("run lock lost: taken"))
    await turns()
    with pytest.raises(RunLockLost):
        task.result()
    with pytest.raises(RunLockLost):
        await lease.may_send()


@pytest.mark.parametrize("key", [0x1234_5678_9ABC_DEF0, -0x1234_5678_9ABC_DEF0, -1])
async def test_holds_reads_the_lock_from_the_server(key: int) -> None:
    """``holds`` finds a bigint advisory lock by its halves, for any sign."""
    owner, other = await connect(), await connect()
    try:
        pid = await owner.fetchval("SELECT pg_backend_pid()")
        assert not await holds(other, key, pid)
        await owner.execute("SELECT pg_advisory_lock($1)", key)
        assert await holds(other, key, pid)
        assert not await holds(other, key + 1, pid)
    finally:
        await owner.close()
        await other.close()


async def test_a_fenced_write_commits_only_while_the_lock_session_holds_it(
        pg_schema: str) -> None:
    """A write whose lock session was ended commits nothing; a taker waits for a fenced write
    already checked."""
    key = 0x5EED_0000_0000_0001
    holder, writer, taker = await connect(), await connect(), await connect()
    try:
        await writer.execute(f"CREATE SCHEMA {pg_schema}; CREATE TABLE {pg_schema}.t (n int)")
        await holder.execute("SELECT pg_advisory_lock($1)", key)
        pid = await holder.fetchval("SELECT pg_backend_pid()")

        async def insert(n: int) -> None:
            await writer.execute(f"INSERT INTO {pg_schema}.t VALUES ($1)", n)

        await fenced(writer, key, pid, lambda conn: insert(1))
        async with writer.transaction():  # a fenced write that has passed its check
            await writer.execute("SELECT pg_advisory_xact_lock_shared($1, $2)",
                                 *fence_key(key))
            draining = asyncio.create_task(drain_fence(taker, key))
            await asyncio.sleep(0.2)
            assert not draining.done()
        await asyncio.wait_for(draining, 5)
        await holder.close()  # the session ends: the server releases the lock
        await asyncio.sleep(0.1)
        with pytest.raises(FenceFailed):
            await fenced(writer, key, pid, lambda conn: insert(2))
        assert await writer.fetchval(f"SELECT array_agg(n) FROM {pg_schema}.t") == [1]
    finally:
        for conn in (holder, writer, taker):
            await conn.close()


class _MidStateSession:
    """A lock session the server ended while idle: the client's protocol is left mid-state."""

    def __init__(self) -> None:
        self.terminated = False

    async def fetchval(self, *args: object, **kwargs: object) -> object:
        raise asyncpg.exceptions.InternalClientError(
            "cannot switch to state 11; another operation (2) is in progress")

    def terminate(self) -> None:
        self.terminated = True


async def test_a_session_left_mid_state_counts_as_lost_not_as_the_end_of_the_run() -> None:
    """The keeper's check raising asyncpg's InternalClientError drops the session (to be taken
    again on a new one) and stops departures, as any lost session; it does not stop the run."""
    clock = ManualClock()
    lock = PgRunLock(connect, "ometria_sync", clock=clock.time, sleep=clock.sleep)
    session = _MidStateSession()
    lock._conn, lock.pid = session, 4242  # type: ignore[assignment]
    lock.lease.taken(clock.now, 0.0)
    await lock._renew()
    assert session.terminated and lock.pid is None
    assert lock.lease.failure is None and lock.lease.opens_in() == 0.0
    task = await _sending(lock.lease)  # the lease lapsed: nothing leaves until a new take
    assert not task.done()
    task.cancel()
