"""CSV files: mapping, types, grouping of line-item rows, bad rows, resume, and config errors."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files.csv import CsvOptions, CsvPart, CsvSourceConfig
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.mapping import ColumnSpec

ORDERS = CsvOptions(columns={
    "order_id": "id", "created": ColumnSpec("timestamp", "timestamp"),
    "email": "customer.email", "total": ColumnSpec("grand_total", "number"),
    "sku": "lineitems[].sku", "qty": ColumnSpec("lineitems[].quantity", "integer"),
    "price": ColumnSpec("lineitems[].unit_price", "number")}, drop=["notes"],
    constants={"channel": "online", "@merge": True}, timezone="Europe/London")
HEADER = "order_id,created,email,total,sku,qty,price,notes\n"


async def read_all(path: Path, options: CsvOptions, start: Any = None) -> list[SourceItem]:
    items: list[SourceItem] = []
    async for chunk in CsvPart(LocalFile(path), options).read(start):
        items += chunk
    return items


def write(tmp_path: Path, text: str | bytes, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


async def test_rows_become_typed_nested_records(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffid,email,score,vip,joined,notes\r\n"
                           "c1,ann@example.com,4.5,yes,2024-07-01 09:00,x\r\n\r\n"
                           "c2,,3,no,,\r\n")
    options = CsvOptions(columns={"email": "email", "score": ColumnSpec("properties.score",
                                                                         "number"),
                                  "vip": ColumnSpec("properties.vip", "boolean"),
                                  "joined": ColumnSpec("timestamp_acquired", "timestamp")},
                         drop=["notes"], constants={"@collection": "shop"},
                         timezone="Europe/London")
    items = await read_all(path, options)
    assert [i.record for i in items] == [
        {"id": "c1", "email": "ann@example.com", "properties": {"score": 4.5, "vip": True},
         "timestamp_acquired": "2024-07-01T09:00:00+01:00", "@collection": "shop"},
        {"id": "c2", "properties": {"score": 3, "vip": False}, "@collection": "shop"}]
    assert [i.line for i in items] == [2, 4]
    assert items[-1].position == (path.stat().st_size, 4)


async def test_line_item_rows_group_into_one_order(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER
                 + "o1,2024-03-01 10:00,ann@example.com,20.5,S1,1,10.5,a\n"
                 + "o1,,,,S2,2,5,b\n"
                 + "o2,2024-03-02T10:00:00+01:00,bob@example.com,12,S3,1,12,\n", "o.csv.gz")
    items = await read_all(path, ORDERS)
    assert [i.record for i in items] == [
        {"id": "o1", "timestamp": "2024-03-01T10:00:00+00:00",
         "customer": {"email": "ann@example.com"}, "grand_total": 20.5, "channel": "online",
         "@merge": True, "lineitems": [{"sku": "S1", "quantity": 1, "unit_price": 10.5},
                                       {"sku": "S2", "quantity": 2, "unit_price": 5}]},
        {"id": "o2", "timestamp": "2024-03-02T10:00:00+01:00",
         "customer": {"email": "bob@example.com"}, "grand_total": 12, "channel": "online",
         "@merge": True, "lineitems": [{"sku": "S3", "quantity": 1, "unit_price": 12}]}]
    assert [(i.line, i.position[1]) for i in items] == [(2, 3), (4, 4)]


async def test_a_broken_grouping_is_an_error_for_that_order_only(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER
                 + "o1,2024-03-01 10:00,a@example.com,20,S1,1,10,\n"
                 + "o1,2024-03-01 10:00,a@example.com,25,S2,1,10,\n"  # disagrees on the total
                 + "o2,2024-03-01 10:00,b@example.com,5,S1,1,5,\n"
                 + "o3,2024-03-01 10:00,c@example.com,5,S1,1,5,\n"
                 + "o2,2024-03-01 10:00,b@example.com,5,S9,1,5,\n")  # o2 again, not consecutive
    items = await read_all(path, ORDERS)
    assert [(i.line, i.error) for i in items] == [
        (2, "rows of order 'o1' disagree on 'grand_total': 20 at line 2, 25 at line 3"),
        (4, None), (5, None),
        (6, "rows of order 'o2' are not consecutive: it already ended at line 4")]


async def test_bad_rows_are_refused_with_their_line_and_the_file_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode()
                 + b"o1,2024-03-01 10:00,a@example.com,20,S1,1,10,\n"
                 + b"o2,2024-03-01 10:00,a@example.com,twenty,S1,1,10,\n"
                 + b"o3,2024-03-01 10:00,a@example.com,20,S1,1\n"
                 + b"o4,2024-03-01 10:00,\xff@example.com,20,S1,1,10,\n"
                 + b"o5,2024-03-01 10:00,a@example.com,20,S1,1,10,\n")
    items = await read_all(path, ORDERS)
    assert [(i.line, i.record and i.record["id"], i.error) for i in items] == [
        (2, "o1", None),
        (3, None, "column 'total' (grand_total): not a number: 'twenty'"),
        (4, None, "the row has 6 cells, the header has 8"),
        (5, None, 'not valid utf-8: set source.encoding (e.g. "cp1252") if the file is not '
                      'UTF-8, got byte 0xFF at byte 21 of the line'),
        (6, "o5", None)]
    assert all(i.raw for i in items if i.error)


async def test_a_bad_row_inside_an_order_leaves_after_it_in_position_order(
        tmp_path: Path) -> None:
    """The checkpoint never covers rows of an order that was not handed over yet."""
    path = write(tmp_path, HEADER
                 + "o1,2024-03-01 10:00,a@example.com,20,S1,1,10,\n"
                 + "o1,2024-03-01 10:00,a@example.com,20,S2,x,10,\n"
                 + "o1,2024-03-01 10:00,a@example.com,20,S3,1,10,\n"
                 + "o2,2024-03-01 10:00,a@example.com,20,S3,1,10,\n")
    items = await read_all(path, ORDERS)
    assert [(i.line, i.error is None) for i in items] == [(2, True), (3, False), (5, True)]
    assert items[0].record["lineitems"] == [
        {"sku": "S1", "quantity": 1, "unit_price": 10}, {"sku": "S3", "quantity": 1,
                                                         "unit_price": 10}]
    positions = [tuple(i.position) for i in items]
    assert positions == sorted(positions) and positions[0] == positions[1]


async def test_malformed_quoting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,email\nc1,"a@example.com\nc2,b"x"@example.com\nc3,c@x.com\n')
    items = await read_all(path, CsvOptions())
    assert [(i.line, i.error, i.record) for i in items] == [
        (2, "malformed CSV: ',' expected after '\"'", None),
        (4, None, {"id": "c3", "email": "c@x.com"})]


async def test_resuming_from_a_position_reads_exactly_the_rest(tmp_path: Path) -> None:
    rows = "".join(f"o{n},2024-03-01 10:00,a@example.com,{n},S{k},1,1,\n"
                   for n in range(1, 200) for k in range(1, 1 + n % 3 + 1))
    path = write(tmp_path, HEADER + rows, "orders.csv.gz")
    everything = await read_all(path, ORDERS)
    middle = everything[120]
    rest = await read_all(path, ORDERS, start=middle.position)
    assert [i.record for i in rest] == [i.record for i in everything[121:]]
    assert [i.line for i in rest] == [i.line for i in everything[121:]]


async def test_empty_and_header_only_files_have_no_records(tmp_path: Path) -> None:
    assert await read_all(write(tmp_path, "", "a.csv"), CsvOptions()) == []
    assert await read_all(write(tmp_path, "id,email\n", "b.csv"), CsvOptions()) == []


async def test_a_broken_gzip_delivers_what_came_before_then_fails_clearly(
        tmp_path: Path) -> None:
    data = gzip.compress(("id,email\n" + "".join(f"c{n},a@example.com\n" for n in range(5000)))
                         .encode())
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    items: list[SourceItem] = []
    with pytest.raises(SourceError, match=r"broken.csv.gz: unreadable after line \d+"):
        async for chunk in CsvPart(LocalFile(path), CsvOptions()).read(None):
            items += chunk
    assert items and all(i.error is None for i in items)


def test_a_mapped_column_missing_from_the_header_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "id,mail\nc1,a@example.com\n")
    config = CsvSourceConfig(path=str(path), columns={"email": "email"})
    with pytest.raises(ConfigError) as caught:
        config.check("streams[0].source")
    assert str(caught.value) == ("streams[0].source.columns: not in the header: email "
                                 "(the header has: id, mail)")
    with pytest.raises(ConfigError, match="delimiter: must be one character"):
        CsvSourceConfig(path=str(path), delimiter=";;").check("s")
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Base'"):
        CsvSourceConfig(path=str(path), timezone="Mars/Base").check("s")


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(alphabet='ab,"\n\r;é\x00', max_size=200).map(str.encode))
async def test_no_bytes_crash_the_reader(tmp_path: Path, data: bytes) -> None:
    """Whatever the file holds: records, refused rows or a SourceError, never a traceback."""
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"id,email\n" + data)
    try:
        items = await read_all(path, CsvOptions(columns={"email": "email"}))
    except SourceError:
        return
    for item in items:
        assert (item.record is None) != (item.error is None)


async def test_any_column_name_and_field_is_taken_literally(tmp_path: Path) -> None:
    """The compiled mapping treats names and paths as data, whatever characters they hold."""
    path = write(tmp_path, '"a\'b""\\\\n",id\nx,c1\n')
    options = CsvOptions(columns={'a\'b"\\\\n': "prop'\"erties.k\\\\ey"},
                         constants={"\"q": ["v"]})
    (item,) = await read_all(path, options)
    assert item.record == {"prop'\"erties": {"k\\\\ey": "x"}, "id": "c1", "\"q": ["v"]}
