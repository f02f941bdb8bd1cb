"""The PostgreSQL change index: a lookup reads only the rows it asks about whatever plan the
server caches for it, and a first run's hashes, copied in, are written once even when the
write is retried after its commit got through."""

from __future__ import annotations

import json
from typing import Any

from ometria_sync.state import open_state
from ometria_sync.state.pg_queue import Op
from ometria_sync.state.pg_state import PostgresState, forget_query, lookup_query
from tests.pg import DSN, connect


async def _store(schema: str) -> PostgresState:
    store = await open_state(DSN, schema, job="nightly")
    assert isinstance(store, PostgresState)
    return store


def _rows_read(plan: dict[str, Any]) -> list[int]:
    """Actual rows of every node of an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan."""
    return [plan["Actual Rows"] * plan["Actual Loops"],
            *(n for child in plan.get("Plans", []) for n in _rows_read(child))]


async def test_a_lookup_under_a_generic_plan_reads_only_the_ids_it_asks_about(
        pg_schema: str) -> None:
    """A cached generic plan is made once, early in a first run (the table nearly empty, no
    statistics): one that finds the stream's rows by ``stream`` alone and filters the ids
    read every row at each lookup, a whole first run quadratic."""
    store = await _store(pg_schema)
    try:
        stream = await store.stream_id("contacts")
        store.remember(stream, [(i, i * 10) for i in range(1, 3001)])
        await store.flush()
        assert await store.lookup(stream, [5, 7, 4000]) == {5: 50, 7: 70}
    finally:
        await store.aclose()
    conn = await connect()
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE lookup (integer, bigint[]) AS {lookup_query(pg_schema)}")
        found = await conn.fetch(f"EXECUTE lookup({stream}, '{{5, 7, 4000}}')")
        assert sorted(tuple(r) for r in found) == [(5, 50), (7, 70)]
        explained = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE lookup({stream}, '{{5, 7, 4000}}')")
        plan = json.loads(explained)[0]["Plan"]
        assert max(_rows_read(plan)) <= 3, plan
    finally:
        await conn.close()


async def test_a_copied_write_whose_reply_was_lost_is_retried_without_failing(
        pg_schema: str) -> None:
    store = await _store(pg_schema)
    store.retry_delays = (0.01,)
    submit = store.submit
    lost: list[int] = []

    def reply_lost_once(op: Op[Any], hashes: int = 0) -> Any:
        async def committed_then_lost(conn: Any) -> Any:
            if lost:
                return await op(conn)
            other = await connect()  # its own session: committed whatever the queue does
            try:
                await op(other)
            finally:
                await other.close()
            lost.append(1)
            raise ConnectionResetError("the reply to the commit was lost")

        return submit(committed_then_lost, hashes)

    try:
        stream = await store.stream_id("contacts")
        store.submit = reply_lost_once  # type: ignore[method-assign]
        store.remember(stream, [(3, 30), (1, 10), (2, 20)])
        await store.flush()
        store.submit = submit  # type: ignore[method-assign]
        assert lost == [1]  # the queue did retry the same write
        assert await store.lookup(stream, [1, 2, 3, 4]) == {1: 10, 2: 20, 3: 30}
    finally:
        await store.aclose()
    conn = await connect()
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {pg_schema}.record_hashes") == 3
    finally:
        await conn.close()


async def test_a_write_of_new_and_written_ids_copies_some_and_replaces_the_others(
        pg_schema: str) -> None:
    store = await _store(pg_schema)
    try:
        stream = await store.stream_id("contacts")
        store.remember(stream, [(5, 50), (6, 60)], [0, 9])
        store.remember(stream, [(7, 70), (5, 51), (8, 80)], [0, 0, 4])
        await store.flush()
        assert await store.lookup(stream, [5, 6, 7, 8]) == {5: 51, 6: 60, 7: 70, 8: 80}
    finally:
        await store.aclose()
    conn = await connect()
    try:
        groups = dict(await conn.fetch(
            f"SELECT id_hash, line_group FROM {pg_schema}.record_hashes"))
        assert groups == {5: None, 6: 9, 7: None, 8: 4}
    finally:
        await conn.close()


async def test_forgetting_ids_under_a_generic_plan_reads_only_their_rows(pg_schema: str) -> None:
    """As a lookup: a delete planned once early in a first run must not read the whole stream
    at each forget."""
    store = await _store(pg_schema)
    try:
        stream = await store.stream_id("contacts")
        store.remember(stream, [(i, i * 10) for i in range(1, 3001)])
        store.forget_ids(stream, [5, 4000])
        await store.flush()
        assert await store.lookup(stream, [5, 7]) == {7: 70}
    finally:
        await store.aclose()
    conn = await connect()
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE forget (integer, bigint) AS {forget_query(pg_schema)}")
        async with conn.transaction():
            explained = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE forget({stream}, 7)")
            plan = json.loads(explained)[0]["Plan"]
            assert max(_rows_read(plan)) <= 1, plan
            assert await conn.fetchval(f"SELECT count(*) FROM {pg_schema}.record_hashes") == 2998
    finally:
        await conn.close()


async def test_every_state_session_plans_each_statement_for_its_own_values(
        pg_schema: str) -> None:
    """The statements that still read ``stream = $1 AND x = ANY($2)`` (line groups, presence,
    the ledger) must never run under a generic plan made while the stream was empty."""
    store = await _store(pg_schema)
    try:
        async def mode(conn: Any) -> str:
            return str(await conn.fetchval("SHOW plan_cache_mode"))

        assert await store.call(mode) == "force_custom_plan"
        assert await store.submit(mode) == "force_custom_plan"
    finally:
        await store.aclose()
