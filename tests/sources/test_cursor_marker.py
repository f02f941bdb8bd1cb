"""``{cursor_after}``: the query places the keyset predicate itself (both SQL sources); the
pages are those of the wrapped query, and an order whose items alone changed comes again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from ometria_sync.errors import ConfigError
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.keyset import KeysetQuery, Statements
from ometria_sync.sources.mysql import MysqlDriver, MysqlQuery, MysqlSourceConfig
from ometria_sync.sources.postgres import PostgresDriver, PostgresQuery, PostgresSourceConfig
from tests.mysql import Database, fill
from tests.pg import DSN
from tests.pg import fill as pg_fill

pytestmark = [pytest.mark.mysql, pytest.mark.postgres]


async def read_all(query: KeysetQuery, start: Any = None) -> list[SourceItem]:
    return [item async for chunk in query.read(start) for item in chunk]


def ids(items: list[SourceItem]) -> list[Any]:
    return [i.record["id"] for i in items]


def test_the_marker_expands_in_place_and_only_order_by_and_limit_are_appended() -> None:
    query = "SELECT id, updated_at FROM orders WHERE status = 'x' AND {cursor_after}"
    mysql = Statements(MysqlDriver(MysqlSourceConfig(dsn_env="D", query=query,
                                                     cursor=["updated_at", "id"])),
                       {"updated_at": "datetime", "id": "bigint"})
    assert mysql.following.text == (
        "SELECT id, updated_at FROM orders WHERE status = 'x' AND ((`updated_at` > %s OR "
        "(`updated_at` = %s AND (`id` > %s)))) ORDER BY `updated_at`, `id` LIMIT %s")
    assert mysql.args(mysql.following, ["T", 7, 101]) == ["T", "T", 7, 101]
    assert mysql.first.text.endswith("AND (1 = 1) ORDER BY `updated_at`, `id` LIMIT %s")
    assert mysql.equal.text.endswith("AND ((`updated_at`, `id`) = (%s, %s))")
    postgres = Statements(PostgresDriver(PostgresSourceConfig(
        dsn_env="D", query=query, cursor=["updated_at", "id"])),
        {"updated_at": "timestamptz", "id": "int8"})
    assert postgres.following.text == (
        "SELECT id, updated_at FROM orders WHERE status = 'x' AND ((\"updated_at\", \"id\") > "
        "(($1::text)::timestamptz, ($2::text)::int8)) ORDER BY \"updated_at\", \"id\" LIMIT $3")
    assert postgres.looking_back.text == (
        "SELECT id, updated_at FROM orders WHERE status = 'x' AND (\"updated_at\" >= "
        "(($1::text)::timestamptz - make_interval(secs => $2::float8))) ORDER BY "
        "\"updated_at\", \"id\" LIMIT $3")
    wrapped = Statements(PostgresDriver(PostgresSourceConfig(
        dsn_env="D", query="SELECT 1 AS id", cursor=["id"])), {"id": "int4"})
    assert wrapped.first.text == 'SELECT * FROM (SELECT 1 AS id) AS src WHERE 1 = 1 ORDER BY ' \
                                 '"id" LIMIT $1'


def test_another_marker_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"s.query: the only marker is \{cursor_after\}"):
        MysqlSourceConfig(dsn_env="D", query="SELECT 1 WHERE {cursor_before}",
                          cursor=["id"]).check("s")


async def test_mysql_pages_with_the_marker_equal_the_wrapped_query(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DSN", my_db.dsn)
    await fill(my_db, 95)
    await my_db.execute("UPDATE orders SET updated_at = '2024-05-01' WHERE id BETWEEN 41 AND 45")
    placed = "SELECT id, email, updated_at FROM orders WHERE id > 0 AND {cursor_after}"
    for size in (1, 3, 10, 200):
        for cursor in (["updated_at", "id"], ["updated_at"]):
            def source(query: str, cursor: list[str] = cursor, size: int = size) -> MysqlQuery:
                return MysqlQuery(MysqlSourceConfig(dsn_env="SHOP_DSN", query=query,
                                                    cursor=cursor, page_size=size,
                                                    lookback_seconds=0))
            marked = await read_all(source(placed))
            wrapped = await read_all(source(placed.replace(" AND {cursor_after}", "")))
            assert sorted(ids(marked)) == list(range(1, 96))
            assert ids(marked) == ids(wrapped) and [i.position for i in marked] == [
                i.position for i in wrapped]
            rest = await read_all(source(placed), start=marked[50].position)
            assert set(ids(rest)) >= set(ids(marked[51:]))


ITEMS = """
CREATE TABLE items (id INT PRIMARY KEY, order_id BIGINT NOT NULL, sku VARCHAR(20) NOT NULL,
                    updated_at TIMESTAMP(6) NOT NULL, KEY by_order (order_id))"""
#: the docs' example (docs/sql-sources.md): an order comes again when only an item changed
ORDERS_WITH_ITEMS = """
SELECT o.id, MAX(i.sku) AS sku, GREATEST(o.updated_at, MAX(i.updated_at)) AS changed_at
FROM orders o JOIN items i ON i.order_id = o.id
GROUP BY o.id, o.updated_at
HAVING {cursor_after}"""


async def assert_the_changed_item_brings_its_order_again(
        query: Callable[[], KeysetQuery], touch_item_7: Callable[[], Awaitable[Any]]) -> None:
    first = await read_all(query())
    assert sorted(ids(first)) == list(range(1, 31))
    await touch_item_7()
    again = await read_all(query(), start=first[-1].position)
    assert [(i.record["id"], i.record["sku"]) for i in again] == [(7, "new")]


CHANGED = {"page_size": 4, "cursor": ["changed_at", "id"], "drop": ["changed_at"],
           "lookback_seconds": 0}


async def test_an_order_whose_item_alone_changed_comes_again_mysql(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DSN", my_db.dsn)
    await fill(my_db, 30)
    await my_db.execute(ITEMS)
    await my_db.execute("INSERT INTO items SELECT seq, seq, CONCAT('sku-', seq), "
                        "'2024-06-01' FROM seq_1_to_30")
    source = MysqlSourceConfig(dsn_env="SHOP_DSN", query=ORDERS_WITH_ITEMS, **CHANGED)
    await assert_the_changed_item_brings_its_order_again(
        lambda: MysqlQuery(source),
        lambda: my_db.execute("UPDATE items SET sku = 'new', updated_at = '2024-07-01' "
                              "WHERE order_id = 7"))


async def test_an_order_whose_item_alone_changed_comes_again_postgres(
        pg_table: tuple[asyncpg.Connection, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL does not see select-list aliases in HAVING: the marker goes in an outer
    query over the grouped one."""
    monkeypatch.setenv("SOURCE_DSN", DSN)
    conn, table = pg_table
    await pg_fill(conn, table, 30)
    items = f"{table}_items"
    await conn.execute(f"CREATE TABLE {items} AS SELECT id AS order_id, 'sku-' || id AS sku, "
                       "timestamptz '2024-06-01 00:00+00' AS updated_at FROM " + table)
    try:
        query = (f"SELECT * FROM (SELECT o.id, max(i.sku) AS sku, greatest(o.updated_at, "
                 f"max(i.updated_at)) AS changed_at FROM {table} o JOIN {items} i ON "
                 "i.order_id = o.id GROUP BY o.id) AS grouped WHERE {cursor_after}")
        source = PostgresSourceConfig(dsn_env="SOURCE_DSN", query=query, **CHANGED)
        await assert_the_changed_item_brings_its_order_again(
            lambda: PostgresQuery(source),
            lambda: conn.execute(f"UPDATE {items} SET sku = 'new', updated_at = "
                                 "timestamptz '2024-07-01 00:00+00' WHERE order_id = 7"))
    finally:
        await conn.execute(f"DROP TABLE {items}")
