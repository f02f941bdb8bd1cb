"""The MySQL source against the machine's MariaDB: keyset pages, ties, resume, look back,
MySQL's values (zero dates, DECIMAL, TINYINT(1), latin1), a read-only user, secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
import pytest

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.keyset import describe
from ometria_sync.sources.mysql import MysqlDriver, MysqlQuery, MysqlSourceConfig
from tests.mysql import QUERY, Database, fill

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("SHOP_DSN", my_db.dsn)


def config(**options: Any) -> MysqlSourceConfig:
    options.setdefault("query", QUERY)
    options.setdefault("cursor", ["updated_at", "seq"])
    options.setdefault("drop", ["updated_at", "seq"])
    return msgspec.convert({"dsn_env": "SHOP_DSN", **options}, MysqlSourceConfig)


async def read_all(source: MysqlSourceConfig, start: Any = None) -> list[SourceItem]:
    items: list[SourceItem] = []
    async for chunk in MysqlQuery(source).read(start):
        items += chunk
    return items


def ids(items: list[SourceItem]) -> list[str]:
    return [i.record["id"] for i in items]


async def test_rows_become_records_in_cursor_order_across_pages(my_db: Database) -> None:
    """DECIMAL 1.9900 is 1.99 and 2.0000 is 2; a DATETIME is read in `timezone`; TINYINT(1)
    stays an integer; a latin1 column arrives as text."""
    await fill(my_db, 95)
    items = await read_all(config(page_size=10, timezone="Europe/London"))
    assert ids(items) == [str(n) for n in range(1, 96)]
    assert items[0].record == {"id": "1", "customer": {"email": "user1@example.com"},
                               "grand_total": 1.99, "quantity": 2, "currency": "GBP",
                               "timestamp": "2024-01-01T00:01:00+00:00", "is_guest": 1}
    assert type(items[0].record["quantity"]) is int
    assert items[9].position == {"after": ["2024-06-01T00:00:01", "10"]}
    await my_db.execute("UPDATE orders SET placed_at = '2024-07-01 12:00:00' WHERE id = 1")
    summer = await read_all(config(query=QUERY + " WHERE id = 1", timezone="Europe/London"))
    assert summer[0].record["timestamp"] == "2024-07-01T12:00:00+01:00"


async def test_resuming_reads_exactly_the_rows_after_the_position(my_db: Database) -> None:
    """Ties on updated_at are broken by the id, compared as numbers ("9" < "10")."""
    await fill(my_db, 50)
    everything = await read_all(config(page_size=7))
    for cut in (8, 9, 10, 33):
        rest = await read_all(config(page_size=7, lookback_seconds=0),
                              start=everything[cut].position)
        assert ids(rest) == ids(everything[cut + 1:])


async def test_rows_that_tie_on_the_cursor_are_all_read_across_pages(my_db: Database) -> None:
    await fill(my_db, 95)
    await my_db.execute("UPDATE orders SET updated_at = '2024-05-01' WHERE id BETWEEN 41 AND 45")
    for size in (1, 2, 3, 7, 10, 11, 200):
        items = await read_all(config(cursor=["updated_at"], page_size=size))
        assert sorted(int(i) for i in ids(items)) == list(range(1, 96)), size


async def test_a_tie_group_larger_than_a_page_is_streamed_in_chunks_of_a_page(
        my_db: Database) -> None:
    await fill(my_db, 60)
    await my_db.execute("UPDATE orders SET updated_at = '2024-07-01' WHERE id <= 35")
    source = config(cursor=["updated_at"], page_size=4)
    chunks = [chunk async for chunk in MysqlQuery(source).read(None)]
    assert max(len(c) for c in chunks) <= 4
    assert sorted(int(i.record["id"]) for c in chunks for i in c) == list(range(1, 61))


async def test_a_checkpoint_never_falls_inside_a_tie_group(my_db: Database) -> None:
    await fill(my_db, 45)  # groups of ten share updated_at (the first of nine)
    source = config(cursor=["updated_at"], page_size=4, lookback_seconds=0)
    everything = await read_all(source)
    assert everything[0].position == {"after": None}
    assert everything[8].position == {"after": ["2024-06-01T00:00:00"]}
    for cut in range(len(everything)):
        rest = await read_all(source, start=everything[cut].position)
        assert set(ids(everything[:cut + 1])) | set(ids(rest)) == set(ids(everything)), cut


async def test_lookback_catches_rows_committed_late_behind_the_checkpoint(
        my_db: Database) -> None:
    await fill(my_db, 40)  # updated_at from 2024-06-01 00:00:00 to 00:00:04
    checkpoint = (await read_all(config()))[-1].position
    await my_db.execute("UPDATE orders SET total = 7, updated_at = '2024-06-01 00:00:02.5' "
                        "WHERE id = 5")
    assert await read_all(config(lookback_seconds=0), start=checkpoint) == []
    late = await read_all(config(lookback_seconds=3), start=checkpoint)
    assert "5" in ids(late) and "1" not in ids(late)
    by_default = await read_all(config(), start=checkpoint)  # 300 s for a timestamp cursor
    assert sorted(int(i) for i in ids(by_default)) == list(range(1, 41))
    with pytest.raises(ConfigError, match="lookback_seconds: needs a timestamp as the first "
                                          "cursor column; seq is bigint"):
        await config(cursor=["seq"], lookback_seconds=3).preflight("s")


async def test_mysql_values_zero_dates_decimal_tinyint_latin1_json(my_db: Database) -> None:
    await my_db.execute("SET SESSION sql_mode = ''")  # lets the zero dates in, as old shops did
    await my_db.execute(
        "CREATE TABLE v (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, "
        "part DATE, qty DECIMAL(12,4), amount DECIMAL(12,4), flag TINYINT(1), small TINYINT, "
        "l VARCHAR(20) CHARACTER SET latin1, u VARCHAR(20) CHARACTER SET utf8mb4, "
        "doc JSON, e ENUM('a','b'), t TIME, f DOUBLE)")
    await my_db.execute(
        "INSERT INTO v VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', "
        "'2024-00-10', 2.0000, 10.5000, 1, 7, 'café', 'café', '{\"a\": [1]}', 'b', "
        "'10:30:00', 0.25), (2, '2024-02-29', '2024-02-29 23:59:59', '2024-02-29 23:59:59', "
        "NULL, 1.5000, 0, 0, -3, 'Ærø', 'Ærø 😀', NULL, NULL, '25:00:00', NULL)")
    source = config(query="SELECT * FROM v", cursor=["id"], drop=[], timezone="America/New_York")
    first, second = (i.record for i in await read_all(source))
    # MariaDB's JSON is LONGTEXT (MySQL 8's own JSON type is parsed): text unless json_column
    assert first == {"id": 1, "qty": 2, "amount": 10.5, "flag": 1, "small": 7, "l": "café",
                     "u": "café", "doc": '{"a": [1]}', "e": "b", "t": "10:30:00", "f": 0.25}
    assert second == {"id": 2, "d": "2024-02-29", "dt": "2024-02-29T23:59:59-05:00",
                      "ts": "2024-02-29T23:59:59+00:00", "qty": 1.5, "amount": 0, "flag": 0,
                      "small": -3, "l": "Ærø", "u": "Ærø 😀",
                      "t": dt.timedelta(hours=25)}  # no time of day: validation refuses it
    types = await _types(source)
    assert (types["flag"], types["small"], types["qty"], types["l"]) == (
        "tinyint(1)", "tinyint(4)", "decimal(14,4)", "text")


async def _types(source: MysqlSourceConfig) -> dict[str, str]:
    return await describe(MysqlDriver, source)


async def test_bytes_stay_for_validation_and_a_bad_json_column_is_the_rows_error(
        my_db: Database) -> None:
    """A BLOB has no one JSON form: the record keeps the bytes and validation refuses the row
    with the field's path (e2e: tests/e2e/test_mysql_sync.py); a json_column that is not JSON
    makes that row an error item, not the run's."""
    await fill(my_db, 3)
    await my_db.execute("UPDATE orders SET extra = 'not json' WHERE id = 2")
    query = ("SELECT CAST(id AS CHAR) AS id, updated_at, id AS seq, UNHEX('00FF') AS raw, "
             "COALESCE(extra, '{}') AS doc FROM orders")
    items = await read_all(config(query=query, json_column="doc"))
    assert items[0].record["raw"] == b"\x00\xff"
    assert items[1].record is None and "column 'doc' is not JSON" in (items[1].error or "")
    assert items[1].id == "2"  # the dead letter names the refused row's record
    assert items[2].record == {"status": "complete", "id": "3", "raw": b"\x00\xff"}


async def test_a_read_only_user_reads_and_its_password_is_never_shown(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(my_db, 30)
    user = f"ro_{my_db.name[2:10]}"
    await my_db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-s3cret'")
    try:
        await my_db.execute(f"GRANT SELECT ON {my_db.name}.* TO '{user}'@'%'")
        monkeypatch.setenv("SHOP_DSN", f"mariadb://{user}:pw-s3cret@127.0.0.1:3306/{my_db.name}")
        await config().preflight("streams[0].source")
        assert len(await read_all(config(page_size=7))) == 30
        monkeypatch.setenv("SHOP_DSN", f"mysql://{user}:wrong-pw-9@127.0.0.1:3306/{my_db.name}")
        with pytest.raises(ConfigError) as refused:
            await config().preflight("streams[0].source")
        assert "cannot connect to MySQL (SHOP_DSN)" in str(refused.value)
        assert "wrong-pw-9" not in str(refused.value)
        with pytest.raises(SourceError) as failed:
            await read_all(config())
        assert "wrong-pw-9" not in str(failed.value)
        monkeypatch.setenv("SHOP_DSN", f"postgresql://{user}:wrong-pw-9@127.0.0.1/x")
        with pytest.raises(ConfigError) as scheme:
            config().check_credentials("streams[0].source")
        assert "mysql:// or mariadb://" in str(scheme.value)
        assert "wrong-pw-9" not in str(scheme.value)
    finally:
        await my_db.execute(f"DROP USER '{user}'@'%'")


async def test_preflight_names_what_is_wrong_before_anything_is_sent(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(my_db, 1)
    await config().preflight("streams[0].source")
    with pytest.raises(ConfigError) as caught:
        await config(cursor=["changed_at", "seq"], drop=[]).preflight("streams[0].source")
    assert str(caught.value).startswith("streams[0].source.cursor: the query has no column "
                                        "changed_at (its columns: id, customer.email,")
    with pytest.raises(ConfigError, match=r"streams\[0\].source.query: the query does not run"):
        await config(query="SELECT nope FROM nowhere").preflight("streams[0].source")
    monkeypatch.delenv("SHOP_DSN")
    config().check("streams[0].source")  # the job file is fine: status needs no DSN
    with pytest.raises(ConfigError, match="SHOP_DSN is not set"):
        await config().preflight("streams[0].source")


async def test_the_fingerprint_changes_with_query_cursor_and_column_types(
        my_db: Database) -> None:
    await fill(my_db, 1)

    async def fingerprint(**options: Any) -> str | None:
        return await MysqlQuery(config(**options)).fingerprint()

    same = await fingerprint()
    assert same == await fingerprint() and same is not None and same.startswith("mysql:")
    others = {await fingerprint(cursor=["seq"]), await fingerprint(query=QUERY + " WHERE 1"),
              await fingerprint(cursor=["customer.email"])}
    await my_db.execute("ALTER TABLE orders MODIFY total DOUBLE NOT NULL")
    others.add(await fingerprint())
    assert same not in others and len(others) == 4


async def test_a_percent_sign_in_the_query_is_text_not_a_parameter(my_db: Database) -> None:
    await fill(my_db, 12)
    items = await read_all(config(query=QUERY + " WHERE email LIKE '%1@example.com'",
                                  page_size=1))
    assert ids(items) == ["1", "11"]


async def test_a_checkpoint_of_another_cursor_width_is_a_source_error(my_db: Database) -> None:
    await fill(my_db, 3)
    with pytest.raises(SourceError, match="holds 1 cursor values but the cursor has 2"):
        await read_all(config(), start={"after": ["3"]})


async def test_each_page_is_one_snapshot_and_none_is_held_between_pages(
        my_db: Database) -> None:
    """The session is UTC, utf8mb4 and REPEATABLE READ; a page is read inside a transaction,
    and while the pipeline holds a page no transaction of the source is open."""
    await fill(my_db, 30)
    query = ("SELECT id, updated_at, @@in_transaction AS in_trx, @@session.time_zone AS tz, "
             "@@character_set_client AS cs, @@tx_isolation AS iso FROM orders")
    source = config(query=query, cursor=["updated_at", "id"], drop=["updated_at"],
                    page_size=10)
    pages = 0
    async for chunk in MysqlQuery(source).read(None):
        assert {(i.record["in_trx"], i.record["tz"], i.record["cs"], i.record["iso"])
                for i in chunk} == {(1, "+00:00", "utf8mb4", "REPEATABLE-READ")}
        await asyncio.sleep(0.15)  # INNODB_TRX is a cache refreshed every 0.1 s
        open_ones = await my_db.rows(
            "SELECT t.trx_id FROM information_schema.INNODB_TRX t JOIN "
            "information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            f"WHERE p.DB = '{my_db.name}' AND p.ID <> CONNECTION_ID()")
        assert open_ones == []
        pages += 1
    assert pages == 3


async def test_zero_dates_in_the_cursor_sort_first_and_a_resume_from_one_loses_nothing(
        my_db: Database) -> None:
    """A zero updated_at is a cursor value like any other (before every real date); a resumed
    read whose checkpoint is a zero date looks back from the top (a zero date less 300 s is
    NULL in MySQL: a plain `>` would have read nothing)."""
    await fill(my_db, 20)
    await my_db.execute("SET SESSION sql_mode = ''")
    await my_db.execute("ALTER TABLE orders MODIFY updated_at DATETIME NOT NULL")
    await my_db.execute("UPDATE orders SET updated_at = '0000-00-00 00:00:00' WHERE id <= 5")
    everything = await read_all(config(page_size=2))
    assert ids(everything)[:5] == ["1", "2", "3", "4", "5"]
    assert everything[2].position == {"after": ["0000-00-00 00:00:00", "3"]}
    for lookback in (0, 300):
        rest = await read_all(config(page_size=2, lookback_seconds=lookback),
                              start=everything[2].position)
        assert set(ids(rest)) >= {str(n) for n in range(4, 21)}, lookback



async def test_result_columns_take_the_column_options_by_name(my_db: Database) -> None:
    """The mapping's options on MySQL's own values, as on PostgreSQL's and CSV's: a value map
    on a TINYINT code, type = "boolean" on a TINYINT(1) flag, expr on a DECIMAL and on text, a
    field list, a computed column reading the row; a zero DATETIME reads as NULL (default
    applies); a zero date held as text is refused by type = "date" unless on_error = "omit"."""
    await my_db.execute("SET SESSION sql_mode = ''")  # lets the zero dates in
    await my_db.execute(
        "CREATE TABLE c (id INT PRIMARY KEY, gender TINYINT, subscribed TINYINT(1), "
        "total DECIMAL(12,4), currency CHAR(3), phone VARCHAR(20), seen DATETIME, "
        "dob VARCHAR(10))")
    await my_db.execute(
        "INSERT INTO c VALUES (1, 1, 1, 1.9900, 'GBP', '07700 900123', '2024-03-01 10:00:00', "
        "'1990-05-17'), (2, 2, 0, 20.0000, 'EUR', 'n/a', '0000-00-00 00:00:00', "
        "'0000-00-00'), (3, 9, NULL, 0.5000, 'USD', NULL, NULL, NULL)")
    columns: dict[str, Any] = {
        "id": {"field": ["id", "customer_id"], "type": "string"},
        "gender": {"field": "gender", "values": {"1": "m", "2": "f"}, "default": "o"},
        "subscribed": {"field": "marketing_optin", "type": "boolean"},
        "total": {"field": "properties.discount", "expr": "-value"},
        "currency": {"field": "properties.currency", "expr": "lower(value)"},
        "phone": {"field": "phone_number", "expr": "e164(value, 'GB')", "on_error": "omit"},
        "seen": {"field": "properties.seen", "default": "never"},
        "dob": {"field": "date_of_birth", "type": "date", "on_error": "omit"},
        "label": {"field": "properties.label", "expr": "row['currency'] + '-' + str(row['id'])"}}
    source = config(query="SELECT * FROM c", cursor=["id"], drop=[], columns=columns)
    source.check("s")
    await source.preflight("s")  # the computed column (label) is no column of the query
    items = await read_all(source)
    assert [i.record for i in items] == [
        {"id": "1", "customer_id": "1", "gender": "m", "marketing_optin": True,
         "phone_number": "+447700900123", "date_of_birth": "1990-05-17",
         "properties": {"discount": -1.99, "currency": "gbp",
                        "seen": "2024-03-01T10:00:00+00:00", "label": "GBP-1"}},
        {"id": "2", "customer_id": "2", "gender": "f", "marketing_optin": False,
         "properties": {"discount": -20, "currency": "eur", "seen": "never",
                        "label": "EUR-2"}},
        {"id": "3", "customer_id": "3", "gender": "o",
         "properties": {"discount": -0.5, "currency": "usd", "seen": "never",
                        "label": "USD-3"}}]
    assert [type(i.record.get("marketing_optin")) for i in items if i.record] == [
        bool, bool, type(None)]  # True == 1: the list above cannot tell
    assert [[w.path for w in i.warnings or []] for i in items] == [
        [], ["phone_number", "date_of_birth"], []]
    assert "a zero date" in (items[1].warnings or [])[1].message
    refusing = config(query="SELECT * FROM c", cursor=["id"], drop=[],
                      columns={"dob": {"field": "date_of_birth", "type": "date"}})
    refused = await read_all(refusing)
    assert [i.record is None for i in refused] == [False, True, False]
    assert "column 'dob' (date_of_birth): a zero date" in (refused[1].error or "")
    assert refused[1].id == "2"


async def test_a_mapped_column_the_query_lacks_and_a_line_item_path_are_config_errors(
        my_db: Database) -> None:
    await fill(my_db, 1)
    with pytest.raises(ConfigError, match=r"s.columns: the query has no column nope \(its "):
        await config(columns={"nope": "properties.nope"}).preflight("s")
    with pytest.raises(ConfigError, match=r"s.columns.currency: lineitems\[\] paths group CSV"):
        config(columns={"currency": "lineitems[].currency"}).check("s")


async def test_rows_are_read_again_by_id_as_they_are_now(my_db: Database) -> None:
    """The ledger's re-read (KeysetQuery.read_ids), as for PostgreSQL: the rows whose id
    column is one of the ids, as they are now, in one statement per thousand ids (each a
    parameter); a query with the marker and a ``%`` of its own; none without an id column."""
    await fill(my_db, 30)
    await my_db.execute("UPDATE orders SET currency = 'EUR' WHERE id = 7")
    query = QUERY + " WHERE email LIKE '%@example.com' AND {cursor_after}"
    items = await MysqlQuery(config(query=query)).read_ids(["7", "12", "999"])
    assert items is not None
    assert {i.record["id"]: i.record["currency"] for i in items} == {"7": "EUR", "12": "GBP"}
    assert all(i.position == {"after": None} for i in items)
    many = await MysqlQuery(config()).read_ids([str(n) for n in range(1, 2501)])
    assert many is not None and len(many) == 30
    by_seq = config(drop=["updated_at", "id"], columns={"seq": {"field": "id", "type": "string"}})
    again = await MysqlQuery(by_seq).read_ids(["9"])
    assert again is not None and [i.record["id"] for i in again] == ["9"]
    assert await MysqlQuery(config(drop=["updated_at", "seq", "id"])).read_ids(["7"]) is None
