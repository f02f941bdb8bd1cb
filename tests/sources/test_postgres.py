"""The PostgreSQL source against the machine's server: keyset pages, resume, mapping, errors."""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import msgspec
import pytest

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.postgres import PostgresQuery, PostgresSourceConfig
from tests.pg import DSN, QUERY, fill

pytestmark = pytest.mark.postgres

Table = tuple[asyncpg.Connection, str]


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DSN", DSN)


def config(table: str, **options: Any) -> PostgresSourceConfig:
    options.setdefault("query", QUERY.format(t=table))
    options.setdefault("cursor", ["updated_at", "seq"])
    options.setdefault("drop", ["updated_at", "seq"])
    return PostgresSourceConfig(dsn_env="SOURCE_DSN", **options)


async def read_all(source: PostgresSourceConfig, start: Any = None) -> list[SourceItem]:
    items: list[SourceItem] = []
    async for chunk in PostgresQuery(source).read(start):
        items += chunk
    return items


async def test_rows_become_records_in_cursor_order_across_pages(pg_table: Table) -> None:
    conn, table = pg_table
    await fill(conn, table, 95)
    items = await read_all(config(table, page_size=10, timezone="Europe/London"))
    assert [i.record["id"] for i in items] == [str(n) for n in range(1, 96)]
    assert items[0].record == {"id": "1", "customer": {"email": "user1@example.com"},
                               "grand_total": 1.99, "currency": "GBP",
                               "timestamp": "2024-01-01T00:01:00+00:00"}
    assert items[9].position == {"after": ["2024-06-01T00:00:01+00:00", "10"]}


async def test_resuming_reads_exactly_the_rows_after_the_position(pg_table: Table) -> None:
    """Ties on updated_at are broken by the id, compared as numbers ("9" < "10")."""
    conn, table = pg_table
    await fill(conn, table, 50)
    everything = await read_all(config(table, page_size=7))
    for cut in (8, 9, 10, 33):
        rest = await read_all(config(table, page_size=7, lookback_seconds=0),
                              start=everything[cut].position)
        assert [i.record["id"] for i in rest] == [i.record["id"] for i in everything[cut + 1:]]


async def test_updated_rows_come_again_after_the_checkpoint(pg_table: Table) -> None:
    conn, table = pg_table
    await fill(conn, table, 30)
    first = await read_all(config(table))
    await conn.execute(f"UPDATE {table} SET total = 1, updated_at = now() WHERE id IN (3, 17)")
    again = await read_all(config(table, lookback_seconds=0), start=first[-1].position)
    assert [i.record["id"] for i in again] == ["3", "17"]


async def test_a_json_column_is_the_record_and_nulls_are_left_out(pg_table: Table) -> None:
    conn, table = pg_table
    await fill(conn, table, 4)
    query = f"SELECT id::text AS id, extra AS doc, updated_at, id AS seq FROM {table}"
    items = await read_all(config(table, query=query, json_column=None,
                                  constants={"@type": "order"}))
    assert [i.record for i in items][:3] == [
        {"id": "1", "@type": "order"}, {"id": "2", "@type": "order"},
        {"id": "3", "doc": {"status": "complete"}, "@type": "order"}]
    await conn.execute(f"UPDATE {table} SET extra = '{{\"status\": \"new\"}}'::jsonb")
    items = await read_all(config(table, query=query, json_column="doc"))
    assert items[0].record == {"status": "new", "id": "1"}


async def test_preflight_names_what_is_wrong_before_anything_is_sent(
        pg_table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    _, table = pg_table
    await config(table).preflight("streams[0].source")  # a good query passes
    with pytest.raises(ConfigError) as caught:
        await config(table, cursor=["changed_at", "seq"], drop=[]).preflight("streams[0].source")
    assert str(caught.value).startswith("streams[0].source.cursor: the query has no column "
                                        "changed_at (its columns: id, customer.email,")
    with pytest.raises(ConfigError, match=r"streams\[0\].source.query: the query does not run"):
        await config(table, query="SELECT nope FROM nowhere").preflight("streams[0].source")
    monkeypatch.setenv("SOURCE_DSN", "postgresql://postgres:secret-pw@127.0.0.1:1/test")
    with pytest.raises(ConfigError) as refused:
        await config(table).preflight("streams[0].source")
    assert "cannot connect to PostgreSQL (SOURCE_DSN)" in str(refused.value)
    assert "secret-pw" not in str(refused.value)
    monkeypatch.delenv("SOURCE_DSN")
    config(table).check("streams[0].source")  # the job file is fine: status needs no DSN
    with pytest.raises(ConfigError, match="SOURCE_DSN is not set"):
        config(table).check_credentials("streams[0].source")
    with pytest.raises(ConfigError, match="SOURCE_DSN is not set"):
        await config(table).preflight("streams[0].source")


async def test_lookback_catches_rows_committed_late_behind_the_checkpoint(
        pg_table: Table) -> None:
    """A row stamped before the checkpoint (its transaction committed late) is missed by a
    plain keyset read and caught by lookback_seconds, which is 300 s by default for a
    timestamp cursor."""
    conn, table = pg_table
    await fill(conn, table, 40)  # updated_at from 2024-06-01 00:00:00 to 00:00:04
    everything = await read_all(config(table))
    checkpoint = everything[-1].position
    await conn.execute(f"UPDATE {table} SET total = 7, updated_at = "
                       "timestamptz '2024-06-01 00:00:02.5+00' WHERE id = 5")
    assert await read_all(config(table, lookback_seconds=0), start=checkpoint) == []
    late = await read_all(config(table, lookback_seconds=3), start=checkpoint)
    assert "5" in [i.record["id"] for i in late]
    by_default = await read_all(config(table), start=checkpoint)
    assert sorted(int(i.record["id"]) for i in by_default) == list(range(1, 41))
    with pytest.raises(ConfigError, match="lookback_seconds: needs a timestamp as the first "
                                          "cursor column; seq is int8"):
        await config(table, cursor=["seq"], lookback_seconds=3).preflight("s")


def ids(items: list[SourceItem]) -> list[str]:
    return [i.record["id"] for i in items]


async def test_rows_that_tie_on_the_cursor_are_all_read_across_pages(pg_table: Table) -> None:
    """Five rows with one updated_at and page_size 2: all five come (a plain keyset read gave
    two), each once, and so do the groups of ten of fill() on updated_at alone."""
    conn, table = pg_table
    await fill(conn, table, 95)
    await conn.execute(f"UPDATE {table} SET updated_at = timestamptz '2024-05-01 00:00+00' "
                       "WHERE id BETWEEN 41 AND 45")
    for size in (1, 2, 3, 7, 10, 11, 200):
        items = await read_all(config(table, cursor=["updated_at"], page_size=size))
        assert sorted(int(i) for i in ids(items)) == list(range(1, 96)), size


async def test_a_tie_group_larger_than_a_page_is_streamed_in_chunks_of_a_page(
        pg_table: Table) -> None:
    conn, table = pg_table
    await fill(conn, table, 60)
    await conn.execute(f"UPDATE {table} SET updated_at = timestamptz '2024-07-01 00:00+00' "
                       "WHERE id <= 35")
    source = config(table, cursor=["updated_at"], page_size=4)
    chunks = [chunk async for chunk in PostgresQuery(source).read(None)]
    assert max(len(c) for c in chunks) <= 4
    assert sorted(int(i.record["id"]) for c in chunks for i in c) == list(range(1, 61))


async def test_a_checkpoint_never_falls_inside_a_tie_group(pg_table: Table) -> None:
    """Whatever item a checkpoint is taken at, the items up to it and a resumed read from its
    position hold every row: a row tied with the next carries the position before its group."""
    conn, table = pg_table
    await fill(conn, table, 45)  # groups of ten share updated_at (the first of nine)
    source = config(table, cursor=["updated_at"], page_size=4, lookback_seconds=0)
    everything = await read_all(source)
    assert everything[0].position == {"after": None}  # inside the first group: the top
    assert everything[8].position == {"after": ["2024-06-01T00:00:00+00:00"]}
    assert everything[9].position == everything[8].position
    for cut in range(len(everything)):
        rest = await read_all(source, start=everything[cut].position)
        assert set(ids(everything[:cut + 1])) | set(ids(rest)) == set(ids(everything)), cut


async def test_the_fingerprint_changes_with_query_cursor_and_column_types(
        pg_table: Table) -> None:
    conn, table = pg_table

    async def fingerprint(**options: Any) -> str | None:
        return await PostgresQuery(config(table, **options)).fingerprint()

    same = await fingerprint()
    assert same == await fingerprint() and same is not None and "postgres:" in same
    others = {await fingerprint(cursor=["seq"]), await fingerprint(cursor=["customer.email"]),
              await fingerprint(query=QUERY.format(t=table) + " WHERE id > 0")}
    await conn.execute(f"ALTER TABLE {table} ALTER COLUMN total TYPE float8")
    others.add(await fingerprint())
    assert same not in others and len(others) == 4


async def test_a_checkpoint_of_another_cursor_width_is_a_source_error(pg_table: Table) -> None:
    """Not an asyncpg traceback (stream_run starts over when the fingerprint differs; this
    guards a checkpoint that got here anyway)."""
    conn, table = pg_table
    await fill(conn, table, 3)
    with pytest.raises(SourceError, match="holds 1 cursor values but the cursor has 2"):
        await read_all(config(table), start={"after": ["3"]})


async def test_odd_column_types_become_json_or_stay_for_validation_to_refuse(
        pg_table: Table) -> None:
    """inet/cidr become text, arrays are converted element by element, NaN stays a float NaN
    (validation refuses it), ranges and bit strings are left for validation to name."""
    conn, table = pg_table
    await fill(conn, table, 1)
    query = (f"SELECT id::text AS id, updated_at, id AS seq, inet '10.0.0.1/24' AS ip, "
             "cidr '10.1.0.0/16' AS net, ARRAY[1.5, 'NaN']::numeric[] AS nums, "
             "'NaN'::numeric AS n, 'Infinity'::float8 AS f, int4range(1, 5) AS r, "
             f"B'101' AS b, time '10:30' AS t FROM {table}")
    [item] = await read_all(config(table, query=query))
    record = item.record
    assert (record["ip"], record["net"], record["t"]) == ("10.0.0.1/24", "10.1.0.0/16",
                                                           "10:30:00")
    assert record["nums"][0] == 1.5 and math.isnan(record["nums"][1])
    assert math.isnan(record["n"]) and record["f"] == math.inf
    assert isinstance(record["r"], asyncpg.Range) and isinstance(record["b"], asyncpg.BitString)


async def test_result_columns_take_the_column_options_by_name(pg_table: Table) -> None:
    """values, default, expr, a field list and on_error on a query's columns, as for CSV."""
    conn, table = pg_table
    await fill(conn, table, 3)
    query = (f"SELECT id AS entity_id, email, total, currency, updated_at, id AS seq, "
             f"CASE id WHEN 1 THEN '1' WHEN 2 THEN '2' ELSE '9' END AS gender, "
             f"CASE WHEN id = 2 THEN '07700 900123' ELSE 'n/a' END AS phone FROM {table}")
    columns: dict[str, Any] = {
        "entity_id": {"field": ["id", "customer_id"], "type": "string"},
        "total": {"field": "properties.discount", "type": "number", "expr": "-value"},
        "gender": {"field": "gender", "values": {"1": "m", "2": "f"}, "default": "o"},
        "phone": {"field": "phone_number", "expr": "e164(value, 'GB')", "on_error": "omit"},
        "currency": {"field": "currency", "expr": "lower(value)"}}
    source = msgspec.convert({"dsn_env": "SOURCE_DSN", "query": query,
                              "cursor": ["updated_at", "seq"], "drop": ["updated_at", "seq"],
                              "columns": columns}, PostgresSourceConfig)
    source.check("s")
    await source.preflight("s")
    items = await read_all(source)
    assert [i.record for i in items] == [
        {"id": "1", "customer_id": "1", "email": "user1@example.com",
         "properties": {"discount": -1.99}, "currency": "gbp", "gender": "m"},
        {"id": "2", "customer_id": "2", "email": "user2@example.com",
         "properties": {"discount": -2.99}, "currency": "gbp", "gender": "f",
         "phone_number": "+447700900123"},
        {"id": "3", "customer_id": "3", "email": "user3@example.com",
         "properties": {"discount": -3.99}, "currency": "gbp", "gender": "o"}]
    assert [[w.path for w in i.warnings or []] for i in items] == [
        ["phone_number"], [], ["phone_number"]]


async def test_a_mapped_column_the_query_lacks_is_a_config_error(pg_table: Table) -> None:
    _, table = pg_table
    source = config(table, columns={"nope": "properties.nope"})
    with pytest.raises(ConfigError, match=r"s.columns: the query has no column nope"):
        await source.preflight("s")


async def test_rows_are_read_again_by_id_as_they_are_now(pg_table: Table) -> None:
    """The ledger's re-read (KeysetQuery.read_ids): the rows whose id column is one of the
    ids, mapped as a read maps them, in one statement per thousand ids; an id not there is
    absent; the column ``columns`` maps to ``id`` is the one compared; none without one."""
    conn, table = pg_table
    await fill(conn, table, 30)
    await conn.execute(f"UPDATE {table} SET currency = 'EUR' WHERE id = 7")
    items = await PostgresQuery(config(table)).read_ids(["7", "12", "999"])
    assert items is not None
    assert sorted(i.record["id"] for i in items) == ["12", "7"]
    assert {i.record["id"]: i.record["currency"] for i in items} == {"7": "EUR", "12": "GBP"}
    assert all(i.position == {"after": None} for i in items)
    many = await PostgresQuery(config(table)).read_ids([str(n) for n in range(1, 2501)])
    assert many is not None and len(many) == 30
    by_seq = msgspec.convert({"dsn_env": "SOURCE_DSN", "query": QUERY.format(t=table),
                              "cursor": ["updated_at", "seq"], "drop": ["updated_at", "id"],
                              "columns": {"seq": {"field": "id", "type": "string"}}},
                             PostgresSourceConfig)
    again = await PostgresQuery(by_seq).read_ids(["9"])
    assert again is not None and [i.record["id"] for i in again] == ["9"]
    no_id = config(table, drop=["updated_at", "seq", "id"])
    assert await PostgresQuery(no_id).read_ids(["7"]) is None
