"""A PostgreSQL run lock lost without its holder noticing (review 9): the lock session's
connection goes half-open (a partition, a load balancer's idle timeout) and the server ends the
session (``pg_terminate_backend``: the old primary died), then a second run takes the lock.

The first run must stop sending and must write no state once the server released its lock, and
the account never sees more than its limit in any second."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.pg import DSN, connect
from tests.pg_proxy import PgProxy

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
STATE = '\n[state]\ncheckpoint_url = "{url}"\nschema = "{schema}"\n'
AUDIT = """
CREATE TABLE {s}.audit (at timestamptz NOT NULL, port integer, tbl text NOT NULL);
CREATE FUNCTION {s}.audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.audit VALUES (clock_timestamp(), inet_client_port(), TG_TABLE_NAME);
    RETURN NULL;
END $$;
"""
WRITTEN = ("checkpoints", "record_hashes", "stream_runs", "dead_letters", "run_lock")


def _folder(root: Path, name: str, url: str, schema: str) -> Workspace:
    workspace = Workspace(root / name)
    workspace.root.mkdir()
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(20000))
    workspace.job(STATE.format(url=url, schema=schema) + CONTACTS, rate_limit_per_second=4,
                  concurrency=2)
    return workspace


async def _eventually(check: Callable[[], Any], seconds: float, what: str) -> Any:
    for _ in range(int(seconds / 0.05)):
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def _audit(schema: str) -> None:
    """Every committed write to the state's tables, stamped with its time and client port."""
    conn = await connect()
    try:
        await conn.execute(AUDIT.format(s=schema))
        for table in WRITTEN:
            await conn.execute(
                f"CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {schema}.{table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_fn()")
    finally:
        await conn.close()


async def _lock_session(schema: str) -> tuple[int, int] | None:
    """(backend pid, client port) of the session holding the run lock of ``schema`` (once
    its holder row is written: the migration's lock is advisory too)."""
    conn = await connect()
    try:
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.run_lock"):
            return None
        if not await conn.fetchval(f"SELECT count(*) FROM {schema}.run_lock"):
            return None
        row = await conn.fetchrow(
            "SELECT a.pid, a.client_port FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objsubid = 1 AND a.application_name = $1", f"ometria-sync {schema}")
        return None if row is None else (row[0], row[1])
    finally:
        await conn.close()


async def _server_now_then_terminate(pid: int) -> dt.datetime:
    conn = await connect()
    try:
        now: dt.datetime = await conn.fetchval("SELECT clock_timestamp()")
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        return now
    finally:
        await conn.close()


async def _fetch(query: str, *args: Any) -> list[Any]:
    conn = await connect()
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _stop(proc: asyncio.subprocess.Process, seconds: float) -> tuple[bytes, bytes]:
    try:
        return await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.communicate()


async def test_a_run_whose_lock_was_lost_unnoticed_stops_sending_and_writing(
        tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    """The first run's lock session goes half-open and is ended by the server; a second run
    takes the lock: the first stops (exit 1, about the run lock) and commits no state write
    after the release; the emulator never counts more than 4 arrivals in a second."""
    async with emulator(rate=4) as emu, PgProxy.running() as proxy:
        first = _folder(tmp_path, "a", proxy.dsn, pg_schema)
        second = _folder(tmp_path, "b", DSN, pg_schema)
        run_a = await first.start("run", "job.toml", url=emu.url)
        try:
            holder = await _eventually(lambda: _lock_session(pg_schema), 30, "a lock holder")
            await _audit(pg_schema)
            await _eventually(lambda: _sent(emu, 6), 30, "the first run sending")
            proxy.freeze(holder[1])  # the lock's connection goes half-open
            proxy.refuse_new = True  # and the first run's host is cut off
            released = await _server_now_then_terminate(holder[0])
            run_b = await second.start("run", "job.toml", url=emu.url)
            try:
                await _eventually(lambda: _holder_pid(pg_schema, run_b.pid), 30,
                                  "the second run holding the lock")
                proxy.refuse_new = False  # the partition heals
                sent_at_take = emu.stats()["requests"]
                _, err_a = await _stop(run_a, 30)
                await _eventually(lambda: _sent(emu, sent_at_take + 8), 30,
                                  "the second run sending")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    run_b.send_signal(signal.SIGTERM)
                await _stop(run_b, 30)
        finally:
            await _stop(run_a, 1)
        stats = emu.stats()
    late = await _fetch(f"SELECT at, port, tbl FROM {pg_schema}.audit WHERE at > $1 "
                        "AND port = ANY($2::int[]) ORDER BY at", released,
                        sorted(proxy.upstream_ports))
    assert late == [], f"the first run wrote state after its lock was released: {late[:5]}"
    assert run_a.returncode == 1, err_a.decode()[-2000:]
    assert "run lock" in err_a.decode(), err_a.decode()[-2000:]
    assert stats["max_requests_in_any_second"] <= 4, stats


async def _sent(emu: Any, count: int) -> bool:
    return bool(emu.stats()["requests"] >= count)


async def _holder_pid(schema: str, pid: int) -> bool:
    rows = await _fetch(f"SELECT pid FROM {schema}.run_lock")
    return any(row[0] == pid for row in rows)
