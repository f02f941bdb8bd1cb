"""A dead-letter write retried after a lost connection never duplicates rows: a commit whose
reply was lost is written again by the queue's retry, and finds its rows already there."""

from __future__ import annotations

from typing import Any

from ometria_sync.state import open_state
from ometria_sync.state.pg_queue import Op
from ometria_sync.state.pg_state import PostgresState
from tests.pg import DSN, connect


async def test_a_dead_letter_insert_whose_reply_was_lost_is_retried_without_duplicates(
        pg_schema: str) -> None:
    store = await open_state(DSN, pg_schema, job="nightly")
    assert isinstance(store, PostgresState)
    store.retry_delays = (0.01,)
    submit = store.submit
    lost: list[int] = []

    def reply_lost_once(op: Op[Any]) -> Any:
        async def committed_then_lost(conn: Any) -> Any:
            result = await op(conn)  # committed on the server
            if not lost:
                lost.append(1)
                raise ConnectionResetError("the reply to the commit was lost")
            return result

        return submit(committed_then_lost)

    store.submit = reply_lost_once  # type: ignore[method-assign]
    try:
        store.add_dead_letters([("r1", "contacts", "t", '{"line":1}'),
                                ("r1", "contacts", "t", '{"line":2}')])
        await store.flush()
        store.submit = submit  # type: ignore[method-assign]
        assert lost == [1]  # the queue did retry the same write
        assert [e async for e in store.dead_letters()] == [b'{"line":1}', b'{"line":2}']
    finally:
        await store.aclose()
    conn = await connect()
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {pg_schema}.dead_letters") == 2
    finally:
        await conn.close()
