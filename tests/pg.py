"""The machine's PostgreSQL for tests: a fresh table per test, dropped afterwards.

No skip: a test that needs PostgreSQL fails when it cannot connect (CI starts the server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

DSN = os.environ.get("OMETRIA_SYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

ORDERS_TABLE = """
CREATE TABLE {t} (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    total numeric(10, 2) NOT NULL,
    currency text NOT NULL,
    placed_at timestamp NOT NULL,
    updated_at timestamptz NOT NULL,
    extra jsonb
)"""


def pg_state(schema: str, *, dead_letter: str | None = None) -> str:
    """A job's ``[state]`` section keeping its state in ``schema``, the server's URL read from
    ``OMETRIA_SYNC_STATE_URL`` (set it to :data:`DSN` in the run's environment)."""
    section = f'\n[state]\ncheckpoint_url_env = "OMETRIA_SYNC_STATE_URL"\nschema = "{schema}"\n'
    return section + (f'dead_letter = "{dead_letter}"\n' if dead_letter else "")


async def connect() -> asyncpg.Connection:
    """A connection to the test server; a test fails (never skips) when it is down, saying how
    to start it."""
    try:
        return await asyncpg.connect(DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {DSN}: {exc} (start it: "
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)")


@pytest.fixture
async def pg_table() -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A connection and the name of an empty orders table of this test's own."""
    conn = await connect()
    table = f"orders_{uuid.uuid4().hex[:10]}"
    await conn.execute(ORDERS_TABLE.format(t=table))
    try:
        yield conn, table
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


async def fill(conn: asyncpg.Connection, table: str, count: int, start: int = 1) -> None:
    """``count`` orders: ids from ``start``, every ten sharing one updated_at (ties)."""
    await conn.execute(
        f"""INSERT INTO {table} (id, email, total, currency, placed_at, updated_at, extra)
            SELECT n, 'user' || n || '@example.com', (n % 500) + 0.99, 'GBP',
                   timestamp '2024-01-01' + n * interval '1 minute',
                   timestamptz '2024-06-01 00:00+00' + (n / 10) * interval '1 second',
                   CASE WHEN n % 3 = 0 THEN jsonb_build_object('status', 'complete') END
            FROM generate_series($1::bigint, $2::bigint) AS n""", start, start + count - 1)


QUERY = ("SELECT id::text AS id, email AS \"customer.email\", total AS grand_total, currency, "
         "placed_at AS timestamp, updated_at, id AS seq FROM {t}")


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """The name of a schema of this test's own (created by whoever uses it), dropped after."""
    conn = await connect()
    schema = f"s_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def terminate_backends(schema: str) -> int:
    """``pg_terminate_backend`` every session of the ometria-sync state in ``schema``."""
    conn = await connect()
    try:
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid()", f"ometria-sync {schema}"))
    finally:
        await conn.close()
