"""A state connection lost without the client noticing (half-open: a partition, a load balancer
that dropped it) answers nothing; the PostgreSQL store treats an operation that answered nothing
for ``op_timeout`` as a lost connection, so a run never hangs on a frozen socket."""

from __future__ import annotations

import asyncio
import uuid

from ometria_sync.state import open_state
from ometria_sync.state.pg_state import PostgresState
from tests.pg import connect
from tests.pg_proxy import PgProxy


async def test_a_write_on_a_frozen_connection_is_retried_on_a_new_one() -> None:
    """The writer's socket is frozen after its first write: the next checkpoint is written on
    a fresh connection within the timeout instead of waiting forever."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    async with PgProxy.running() as proxy:
        store = await open_state(proxy.dsn, schema, job="frozen")
        assert isinstance(store, PostgresState)
        store.op_timeout = 1.0
        store.retry_delays = (0.05, 0.05)
        try:
            store.save("products", "", [100, 1], "fp", 1)
            await store.flush()
            for port in proxy.upstream_ports:  # every connection so far goes silent
                proxy.freeze(port)
            store.save("products", "", [200, 2], "fp", 1)
            await asyncio.wait_for(store.flush(), 15)  # hung forever before op_timeout
            checkpoint = await asyncio.wait_for(store.load("products", ""), 15)
        finally:
            store.op_timeout = 0.5
            await asyncio.wait_for(store.aclose(), 15)
            conn = await connect()
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()
    assert checkpoint is not None
    assert checkpoint.position == [200, 2]
