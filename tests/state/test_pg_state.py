"""What only the PostgreSQL store has: schema migration, reconnects, the advisory run lock, and
a URL whose password is never shown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import asyncpg
import pytest

from ometria_sync.errors import StateError
from ometria_sync.net.urls import redact_url
from ometria_sync.state import open_state
from ometria_sync.state.pg_lock import LEASE, PgRunLock, RunLockHeld, RunLockLost
from ometria_sync.state.pg_schema import SCHEMA_VERSION, migrate, stored_version
from ometria_sync.state.pg_state import PostgresState, StateConnectionLost
from tests.pg import DSN, connect, terminate_backends
from tests.pg_proxy import PgProxy

CANARY = "canary-pw-3e7b1d"


async def _pg(schema: str) -> PostgresState:
    store = await open_state(DSN, schema)
    assert isinstance(store, PostgresState)
    return store


async def test_a_store_of_an_older_schema_version_is_migrated_and_keeps_its_state(
        pg_schema: str) -> None:
    conn = await connect()
    try:
        await migrate(conn, pg_schema, "test", target=1)
        await conn.execute(f"INSERT INTO {pg_schema}.checkpoints VALUES "
                           "('contacts', '', '[42,3]', 'fp', 3, '2026-01-01')")
        assert await stored_version(conn, pg_schema) == 1
        store = await _pg(pg_schema)
        try:
            saved = await store.load("contacts", "")
            assert saved is not None and saved.position == [42, 3]
            store.add_dead_letters([("r", "contacts", "t", "{}")])  # a version-2 table
            await store.flush()
            assert [e async for e in store.dead_letters()] == [b"{}"]
        finally:
            await store.aclose()
        assert await stored_version(conn, pg_schema) == SCHEMA_VERSION
    finally:
        await conn.close()


async def test_a_store_from_a_newer_version_is_refused(pg_schema: str) -> None:
    await (await _pg(pg_schema)).aclose()
    conn = await connect()
    try:
        await conn.execute(f"UPDATE {pg_schema}.meta SET value = $1", str(SCHEMA_VERSION + 1))
    finally:
        await conn.close()
    with pytest.raises(StateError, match="newer ometria-sync"):
        await open_state(DSN, pg_schema)


async def test_a_lost_connection_is_reconnected_and_nothing_is_lost(pg_schema: str) -> None:
    store = await _pg(pg_schema)
    store.retry_delays = (0.05, 0.1)
    try:
        stream = await store.stream_id("contacts")
        store.remember(stream, [(1, 11)])
        await store.flush()
        assert await store.lookup(stream, [1]) == {1: 11}  # the reader connection is open
        assert await terminate_backends(pg_schema) >= 2  # the writer and the reader
        await asyncio.sleep(0.05)
        store.remember(stream, [(2, 22)])
        store.save("contacts", "", [7, 1], "fp", 1)
        await store.flush()
        assert await store.lookup(stream, [1, 2]) == {1: 11, 2: 22}
        assert await store.load("contacts", "") is not None
    finally:
        await store.aclose()


async def test_a_connection_that_stays_lost_fails_after_bounded_retries(pg_schema: str) -> None:
    store = await _pg(pg_schema)
    store.retry_delays = (0.01, 0.01, 0.01)
    store._url = f"postgresql://postgres:{CANARY}@127.0.0.1:1/test"  # the server is gone
    await terminate_backends(pg_schema)
    await asyncio.sleep(0.05)
    store.save("contacts", "", [7, 1], "fp", 1)
    with pytest.raises(StateConnectionLost, match="3 reconnects failed") as caught:
        await store.flush()
    assert CANARY not in str(caught.value)
    with pytest.raises(StateError):
        await store.aclose()


async def test_a_password_in_the_url_never_appears_in_an_error() -> None:
    url = f"postgresql://sync:{CANARY}@127.0.0.1:1/ometria_sync"
    assert redact_url(url) == "postgresql://sync:***@127.0.0.1:1/ometria_sync"
    with pytest.raises(StateError) as caught:
        await open_state(url, "ometria_sync")
    assert CANARY not in str(caught.value) and "sync:***@127.0.0.1:1" in str(caught.value)


async def test_the_run_lock_names_its_holder_and_dies_with_its_session(pg_schema: str) -> None:
    first, second = await _pg(pg_schema), await _pg(pg_schema)
    try:
        async with first.run_lock():
            with pytest.raises(RunLockHeld) as caught:
                async with second.run_lock():
                    pass
            message = str(caught.value)
            assert f"host {socket.gethostname()}, pid {os.getpid()}, since 20" in message
            await terminate_backends(pg_schema)  # a killed holder: its lock goes with it
            await asyncio.sleep(0.05)
            async with second.run_lock():
                with pytest.raises(RunLockLost, match="took it"):  # the first run must stop
                    await _write(first)
    finally:
        with contextlib.suppress(RunLockLost):  # the refused save's own failure
            await first.aclose()
        await second.aclose()


async def test_a_new_holder_waits_the_full_lease_only_after_a_holder_that_did_not_release(
        pg_schema: str) -> None:
    """No holder before: requests may leave at once. After a holder that released the lock:
    only the rest of the limit's window (1 s from its release). After a holder killed while
    holding it (its row left without ``released_at``): ``LEASE + 1`` s, the old holder's
    lease and the window."""
    store = await _pg(pg_schema)
    try:
        async with PgRunLock(store.connect, pg_schema) as first:
            assert first.lease.opens_in() == 0.0  # nobody held it before
            await asyncio.wait_for(first.may_send(), 1)
        async with PgRunLock(store.connect, pg_schema) as second:
            assert 0.5 < second.lease.opens_in() <= 1.0  # released a moment ago
        await asyncio.sleep(1.1)
        async with PgRunLock(store.connect, pg_schema) as third:
            assert third.lease.opens_in() == 0.0  # released more than a second ago
            key = third.key
        killed = await connect()  # what a holder killed while holding it leaves: its row
        await killed.execute("SELECT pg_advisory_lock($1)", key)
        await killed.execute(f"UPDATE {pg_schema}.run_lock SET pid = 1, released_at = NULL")
        await killed.close()  # the session ends, the lock with it
        async with PgRunLock(store.connect, pg_schema) as fourth:
            assert LEASE + 0.5 < fourth.lease.opens_in() <= LEASE + 1
            conn = await connect()
            try:  # the new holder's row, not yet released
                row = await conn.fetchrow(f"SELECT pid, released_at FROM {pg_schema}.run_lock")
                assert tuple(row) == (os.getpid(), None)
            finally:
                await conn.close()
    finally:
        await store.aclose()


async def _write(store: PostgresState) -> None:
    store.retry_delays = (0.01,)
    store.save("s", "", [1], None, 1)
    await store.flush()


async def test_a_save_retried_after_its_commit_got_through_counts_once(pg_schema: str) -> None:
    store = await _pg(pg_schema)
    try:
        store.save("contacts", "", [5, 1], "fp", 100)
        store.save("contacts", "", [5, 1], "fp", 100)  # the same save again (a retry)
        store.save("contacts", "", [9, 2], "fp", 100)
        await store.flush()
        saved = await store.load("contacts", "")
        assert saved is not None and (saved.position, saved.delivered) == ([9, 2], 200)
    finally:
        await store.aclose()


async def test_a_run_lock_lost_with_the_server_is_taken_again_before_the_next_write(
        pg_schema: str) -> None:
    first, other = await _pg(pg_schema), await _pg(pg_schema)
    try:
        async with first.run_lock():
            url, first._url = first._url, "postgresql://postgres@127.0.0.1:1/test"  # gone
            first.retry_delays = (0.01,)
            await terminate_backends(pg_schema)  # every session, the lock's too
            await asyncio.sleep(0.05)
            with pytest.raises(StateConnectionLost):
                await _write(first)
            first._url = url  # the server is back
            with pytest.raises(StateConnectionLost):  # the save's own failure, seen once
                await first.flush()
            with pytest.raises(StateError, match="not written"):  # nothing more in this run
                await _write(first)
            assert await other.run_in_progress() is False  # and the lost lock is not retaken
    finally:
        await first.aclose()
        await other.aclose()


async def test_a_lost_lock_session_is_replaced_through_failed_reconnects(pg_schema: str) -> None:
    """The server ended the lock's session and the first reconnects fail: the lock is taken
    again (nobody held it meanwhile) on a new session, and the run goes on."""
    store = await _pg(pg_schema)
    failing: list[str] = []

    async def connect() -> asyncpg.Connection:
        if failing:
            failing.pop()
            raise StateError("checkpoint store: cannot connect: refused")
        return await store.connect()

    try:
        async with PgRunLock(connect, pg_schema) as lock:
            old = lock.pid
            failing += ["twice", "once"]
            await terminate_backends(pg_schema)
            for _ in range(100):
                if lock.pid not in (None, old) or lock.lease.failure is not None:
                    break
                await asyncio.sleep(0.05)
            assert lock.lease.failure is None
            assert lock.pid not in (None, old) and not failing
    finally:
        await store.aclose()


async def test_a_lock_session_left_half_open_is_ended_and_the_lock_taken_again(
        pg_schema: str) -> None:
    """The lock's connection freezes (the server still sees the session, which holds the
    lock): the lock cannot be verified, the old session is ended on the server and the lock
    taken again on a new one."""
    store = await _pg(pg_schema)
    try:
        async with PgProxy.running() as proxy:

            async def connect() -> asyncpg.Connection:
                return await asyncpg.connect(proxy.dsn, timeout=10)

            async with PgRunLock(connect, pg_schema) as lock:
                old = lock.pid
                (port,) = proxy.upstream_ports
                proxy.freeze(port)
                for _ in range(200):
                    if lock.pid not in (None, old) or lock.lease.failure is not None:
                        break
                    await asyncio.sleep(0.05)
                assert lock.lease.failure is None and lock.pid not in (None, old)
                check = await connect()
                try:
                    assert not await check.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", old)
                finally:
                    await check.close()
    finally:
        await store.aclose()
