"""The machine's MariaDB for tests: a database of each test's own, dropped afterwards.

No skip: a test that needs MariaDB fails when it cannot connect (CI starts the server)."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import pytest
from asyncmy.errors import MySQLError

#: the server as root (no password); a test's database is appended to it
SERVER = os.environ.get("OMETRIA_SYNC_TEST_MYSQL_DSN", "mysql://root@127.0.0.1:3306")

ORDERS_TABLE = """
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    email VARCHAR(120) CHARACTER SET latin1 NOT NULL,
    total DECIMAL(12, 4) NOT NULL,
    quantity DECIMAL(12, 4) NOT NULL,
    currency CHAR(3) NOT NULL,
    placed_at DATETIME NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    is_guest TINYINT(1) NOT NULL,
    extra TEXT,
    KEY by_update (updated_at, id)
) DEFAULT CHARSET = utf8mb4"""

QUERY = ("SELECT CAST(id AS CHAR) AS id, email AS `customer.email`, total AS grand_total, "
         "quantity, currency, placed_at AS timestamp, is_guest, updated_at, id AS seq "
         "FROM orders")


class Database:
    """A connection (as root, autocommit, UTC) to a database of the test's own."""

    def __init__(self, conn: Any, name: str) -> None:
        self.conn = conn
        self.name = name
        self.dsn = f"{SERVER}/{name}"

    async def execute(self, sql: str, *params: Any) -> int:
        async with self.conn.cursor() as cursor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the server's notes (zero dates in sql_mode '')
                count: int = await cursor.execute(sql, params or None)
            return count

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        async with self.conn.cursor() as cursor:
            await cursor.execute(sql)
            return list(await cursor.fetchall())


async def connect(database: str | None = None) -> Any:
    """A root connection to the test server; fails (never skips) when it is down, saying how
    to start it."""
    try:
        conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="",
                                     database=database, autocommit=True, charset="utf8mb4",
                                     connect_timeout=10)
    except (OSError, MySQLError) as exc:
        pytest.fail(f"MariaDB is not reachable at 127.0.0.1:3306: {exc} (start it: "
                    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)")
    async with conn.cursor() as cursor:
        await cursor.execute("SET time_zone = '+00:00'")
    return conn


@pytest.fixture
async def my_db() -> AsyncIterator[Database]:
    """An empty database of this test's own (its orders table made by :func:`fill`)."""
    admin = await connect()
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE {name}")
    conn = await connect(name)
    try:
        yield Database(conn, name)
    finally:
        conn.close()
        async with admin.cursor() as cursor:
            # a session a failed test left open (a reader not closed) would block the drop
            await cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                                 "AND ID <> CONNECTION_ID()", (name,))
            for (session,) in await cursor.fetchall():
                with contextlib.suppress(MySQLError):
                    await cursor.execute(f"KILL CONNECTION {int(session)}")
            await cursor.execute(f"DROP DATABASE {name}")
        admin.close()


async def fill(db: Database, count: int, start: int = 1) -> None:
    """``count`` orders: ids from ``start``, every ten sharing one updated_at (ties)."""
    await db.execute(ORDERS_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
    await db.execute(
        "INSERT INTO orders (id, email, total, quantity, currency, placed_at, updated_at, "
        "is_guest, extra) SELECT seq, CONCAT('user', seq, '@example.com'), "
        "(seq % 500) + 0.99, 2, 'GBP', '2024-01-01' + INTERVAL seq MINUTE, "
        "'2024-06-01' + INTERVAL (seq DIV 10) SECOND, seq % 2, "
        "IF(seq % 3 = 0, '{\"status\": \"complete\"}', NULL) "
        f"FROM seq_{start}_to_{start + count - 1}")
