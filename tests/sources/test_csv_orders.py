"""CSV rows folded into orders, in groups of whole orders (``sources/files/csv_orders.py``):
whichever groups are skipped undecoded, the rest give exactly the items of the row-by-row
read, non-consecutive orders refused with the same message."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.pipeline.change_filter import ChangeFilter, hash64, identity
from ometria_sync.pipeline.line_groups import GroupedPart, LineGroups, group_hash
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files import csv_groups
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.csv_orders import ORDER_MAX_LINES, OrderIds, id_hash
from ometria_sync.sources.files.lines import LineGroup
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.mapping import ColumnSpec
from ometria_sync.state import StateStore

ORDERS = CsvOptions(columns={
    "order_id": "id", "email": "customer.email", "sku": "lineitems[].sku",
    "qty": ColumnSpec("lineitems[].quantity", "integer"), "note": "lineitems[].note"})
HEADER = b"order_id,email,sku,qty,note\n"
#: notes as exports write them, and as they go wrong (see test_csv_groups.CELLS)
NOTES = ["", "x", '"a,b"', '"two\nlines"', '"say ""hi"""', 'ab"c', '"q" x', 'a\rb', '"open',
         "\xe9", '"a\r\nb"']


def _order_rows(rnd: random.Random, order_id: str, n: int, notes: float,
                bad: float) -> list[str]:
    email = f"{order_id.strip()}@example.com"
    rows = []
    for i in range(rnd.randint(1, 4)):
        row = [order_id, email if rnd.random() >= bad else "other@example.com", f"s{n}-{i}",
               str(rnd.randint(1, 3)) if rnd.random() >= bad else "x",
               rnd.choice(NOTES) if rnd.random() < notes else "n"]
        if rnd.random() < bad:
            row = row[:3]  # a cell too few
        rows.append(",".join(row) + ("\r\n" if rnd.random() < 0.05 else "\n"))
        if rnd.random() < bad:
            rows.append(rnd.choice(["\n", ",,,,\n"]))  # blank rows
        if rnd.random() < bad:  # refused inside the order: its rows still fold into one
            rows.append(f"x{n}-{i},{email},s,bad,n\n")
    return rows


def orders_file(seed: int, orders: int, notes: float = 0.1, bad: float = 0.03) -> bytes:
    """``orders`` orders of 1 to 4 rows: now and then an order reusing an earlier id (not
    consecutive), an id in spaces (the same order once trimmed), a row that disagrees on the
    email, a bad quantity, a cell too few, a blank row, a bad row of another id inside an
    order; notes with quotes and newlines."""
    rnd = random.Random(seed)
    rows: list[str] = []
    for n in range(orders):
        order_id = f"o{n}"
        if n and rnd.random() < 0.02:
            order_id = f"o{rnd.randrange(n)}"
        elif rnd.random() < 0.02:
            order_id = f" o{n} "
        rows += _order_rows(rnd, order_id, n, notes, bad)
    return HEADER + "".join(rows).encode()


async def _slow(path: Path, options: CsvOptions = ORDERS) -> list[SourceItem]:
    return [i async for chunk in CsvPart(LocalFile(path), options).read(None) for i in chunk]


def _key(items: list[SourceItem]) -> list[tuple[object, ...]]:
    return [(i.record, i.position, i.line, i.raw, i.error, i.id, i.warnings) for i in items]


def _reused(item: SourceItem) -> bool:
    return "are not consecutive" in (item.error or "")


def _within(item: SourceItem, group: LineGroup) -> bool:
    return group.start < item.position <= group.end  # type: ignore[operator]


def _id_hashes(items: list[SourceItem]) -> list[int] | None:
    """The id hashes the state holds for a group of these items, as the batcher computes
    them (``identity``); None when such a group is never kept (an order without an id, or an
    id twice)."""
    if any(i.record is not None and not i.record.get("id") for i in items):
        return None
    ids = [hash64(identity(i.record if i.record is not None else {"id": i.id})) for i in items]
    return ids if len(set(ids)) == len(ids) else None


async def _grouped(path: Path, slow: list[SourceItem], rnd: random.Random, odds: float,
                   options: CsvOptions = ORDERS, *, hashed: bool = False
                   ) -> tuple[list[SourceItem], list[LineGroup], int]:
    """The file read in groups: a group that could have been kept on an earlier night (its
    orders in the row-by-row read are valid records, or refused only for reusing an earlier
    id) is skipped with odds ``odds`` when the part agrees (it must not for a reused id: its
    items, those of the row-by-row read, are spliced in); the others are decoded. Also the
    groups, and how many were skipped. ``hashed``: the group is given its ids' hashes, as
    change detection gives them (``LineGroup.held``)."""
    part = CsvPart(LocalFile(path), options)
    chunks = part.read_groups(None)
    assert chunks is not None
    items: list[SourceItem] = []
    groups: list[LineGroup] = []
    skipped = 0
    async for chunk in chunks:
        for group in chunk:
            assert isinstance(group, LineGroup)
            groups.append(group)
            held = [i for i in slow if _within(i, group)]
            if hashed:
                group.held = _id_hashes(held)
            if (group.plain and held and all(i.record is not None or _reused(i) for i in held)
                    and (not hashed or group.held is not None)
                    and rnd.random() < odds and part.skip(group)):
                assert all(i.record is not None for i in held)
                items += held
                skipped += 1
            else:
                items += part.decode(group)
    return items, groups, skipped


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), orders=st.integers(0, 250),
       notes=st.sampled_from([0.0, 0.02, 0.3, 1.0]), bad=st.sampled_from([0.0, 0.005, 0.05]),
       odds=st.sampled_from([0.0, 0.5, 1.0]), read=st.sampled_from([64, 700, 256 * 1024]))
async def test_groups_give_the_orders_of_the_row_by_row_read(
        tmp_path: Path, seed: int, orders: int, notes: float, bad: float, odds: float,
        read: int) -> None:
    """Whatever the rows (quoted newlines, stray quotes, bad and blank rows, orders reused,
    ids in spaces) and the reads, groups skipped or decoded give the row-by-row read's items:
    every group holds whole orders, and an order reusing the id of one in a skipped group is
    refused with the same message and line."""
    fast, slow, groups = await _both_reads(tmp_path, seed, orders, notes, bad, odds, read)
    assert _key(fast) == _key(slow)
    assert all(a.end == b.start for a, b in itertools.pairwise(groups))


async def _both_reads(tmp_path: Path, seed: int, orders: int, notes: float, bad: float,
                      odds: float, read: int, *, hashed: bool = False
                      ) -> tuple[list[SourceItem], list[SourceItem], list[LineGroup]]:
    """(the grouped read's items, the row-by-row read's, the groups) of a generated file,
    read ``read`` bytes at a time."""
    path = tmp_path / "orders.csv"
    path.write_bytes(orders_file(seed, orders, notes, bad))
    slow = await _slow(path)
    chunk = csv_groups._CHUNK_BYTES
    csv_groups._CHUNK_BYTES = read
    try:
        fast, groups, _ = await _grouped(path, slow, random.Random(seed), odds, hashed=hashed)
    finally:
        csv_groups._CHUNK_BYTES = chunk
    return fast, slow, groups


async def test_an_unchanged_file_is_all_skipped_and_a_reused_id_still_refused(
        tmp_path: Path) -> None:
    """Every group of whole valid orders can be skipped; an order whose id a skipped group
    held is refused as not consecutive, naming the line where that order ended."""
    path = tmp_path / "orders.csv"
    rows = [f"o{n},o{n}@example.com,s{n},1,n\no{n},o{n}@example.com,t{n},2,n\n"
            for n in range(1000)]
    rows.append("o7,o7@example.com,again,1,n\n")
    path.write_bytes(HEADER + "".join(rows).encode())
    slow = await _slow(path)
    fast, groups, skipped = await _grouped(path, slow, random.Random(1), 1.0)
    assert _key(fast) == _key(slow)
    assert skipped == len(groups) - 1 and len(groups) > 10
    assert fast[-1].error == ("rows of order 'o7' are not consecutive: it already ended at "
                              "line 17")


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), orders=st.integers(0, 250),
       notes=st.sampled_from([0.0, 0.02, 0.3, 1.0]), bad=st.sampled_from([0.0, 0.005, 0.05]),
       odds=st.sampled_from([0.5, 1.0]), read=st.sampled_from([64, 700, 256 * 1024]))
async def test_groups_skipped_by_their_ids_hashes_give_the_orders_of_the_row_by_row_read(
        tmp_path: Path, seed: int, orders: int, notes: float, bad: float, odds: float,
        read: int) -> None:
    """Groups skipped knowing only their ids' hashes (no line split), the others decoded,
    give the row-by-row read's items: a group holding an id read before is not skipped, and
    an order reusing the id of one in a skipped group is refused with the same message and
    line (that group read again)."""
    fast, slow, _ = await _both_reads(tmp_path, seed, orders, notes, bad, odds, read,
                                      hashed=True)
    assert _key(fast) == _key(slow)


@pytest.mark.parametrize("collection", [False, True])
async def test_a_reused_id_of_a_group_skipped_by_its_ids_hashes_is_refused_where_it_ended(
        tmp_path: Path, collection: bool) -> None:
    """The skipped group is read again for the message's line; orders with a collection
    (part of their ids' hashes) are skipped with their ids read instead."""
    path = tmp_path / "orders.csv"
    rows = [f"o{n},o{n}@example.com,s{n},1,n,c\no{n},o{n}@example.com,t{n},2,n,c\n"
            for n in range(1000)]
    rows.append("o7,o7@example.com,again,1,n,c\n")
    path.write_bytes(HEADER.replace(b"\n", b",coll\n") + "".join(rows).encode())
    options = CsvOptions(columns={**ORDERS.columns, "coll": "@collection" if collection
                                  else "lineitems[].variant"})
    slow = await _slow(path, options)
    fast, groups, skipped = await _grouped(path, slow, random.Random(1), 1.0, options,
                                           hashed=True)
    assert _key(fast) == _key(slow)
    assert skipped == len(groups) - 1 and len(groups) > 10
    assert fast[-1].error == ("rows of order 'o7' are not consecutive: it already ended at "
                              "line 17")


@given(order_id=st.text())
def test_an_order_ids_hash_is_the_change_indexs(order_id: str) -> None:
    assert id_hash(order_id) == hash64(identity({"id": order_id}))


class _Asking:
    """A part that notes the ``held`` of each group it is asked to skip."""

    def __init__(self) -> None:
        self.held: list[object] = []

    def skip(self, group: LineGroup) -> bool:
        self.held.append(group.held)
        return True


class _Holding:
    async def catch_up(self) -> None:
        return None

    async def held_groups(self, stream_id: int, hashes: list[int]) -> dict[int, list[int]]:
        return {h: [h + 1] for h in hashes}

    def keep_groups(self, *args: object) -> None:
        return None


@pytest.mark.parametrize("ids_as_read", [False, True])
async def test_change_detection_gives_a_group_its_ids_only_when_they_are_the_ids_read(
        ids_as_read: bool) -> None:
    """No transform: a record's id hash is its source id's, and the part may use them."""
    state, part = cast(StateStore, _Holding()), _Asking()
    lines = LineGroups(state, ChangeFilter(state, stream_id=1), cast(GroupedPart, part), b"",
                       ids_as_read=ids_as_read)
    group = LineGroup([b"a"], (0, 0), (2, 1))
    await lines.items([group])
    h = group_hash(b"", [b"a"])
    assert part.held == [[h + 1] if ids_as_read else None]


async def test_an_order_longer_than_the_cap_is_cut_inside_and_decoded_whole(
        tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    big = "".join(f"o1,a@example.com,s{i},1,n\n" for i in range(ORDER_MAX_LINES * 2 + 50))
    path.write_bytes(HEADER + big.encode() + b"o2,b@example.com,s,1,n\n" * 3)
    slow = await _slow(path)
    fast, groups, _ = await _grouped(path, slow, random.Random(1), 1.0)
    assert _key(fast) == _key(slow)
    assert len(fast[0].record["lineitems"]) == ORDER_MAX_LINES * 2 + 50  # type: ignore[index]
    assert [g.open_end for g in groups][:3] == [True, True, False]
    assert not any(g.plain for g in groups[:3])


@pytest.mark.parametrize("column", [ColumnSpec("id", "integer"), ColumnSpec("id", expr="value"),
                                    ColumnSpec("id", default="x")])
async def test_orders_whose_id_is_not_one_plain_text_cell_are_read_the_usual_way(
        tmp_path: Path, column: ColumnSpec) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(b"order_id,sku\n" + b"".join(b"%d,s%d\n%d,t\n" % (n, n, n)
                                                    for n in range(100)))
    options = CsvOptions(columns={"order_id": column, "sku": "lineitems[].sku"})
    part = CsvPart(LocalFile(path), options)
    chunks = part.read_groups(None)
    assert chunks is not None
    got = [i async for chunk in chunks for i in chunk]
    assert all(isinstance(i, SourceItem) for i in got) and len(got) == 100


def test_an_order_id_cell_is_read_as_the_mapping_reads_it() -> None:
    ids = OrderIds(index=1, width=3, trim=True, delimiter=",", quotechar='"', encoding="utf-8",
                   mapped=lambda cells: {"id": cells[1].strip()})
    assert ids.row_id([b"a, o1 ,b"]) == b"o1"  # a key: equal keys, equal ids
    assert ids.row_id([b'a,"o,1",b']) == "o,1"
    assert ids.row_id([b'a,"o', b'1",b']) == "o\n1"
    assert ids.row_id([b"a,o1,b\r"]) == b"o1"
    assert ids.row_id([b"a,,b"]) is None  # no id
    assert ids.taken_id([b"a, o1 ,b"]) == "o1"
    assert ids.taken_id([b"a,o1"]) is None  # a cell too few
    assert ids.taken_id([b"a,\xff,b"]) is None  # not UTF-8
    assert ids.orders([b"a,o1,b", b"a,o1,c", b"a, o2,b"], 10) == {"o1": 12, "o2": 13}
    assert ids.orders([b"a,o1,b", b"", b"a,o1,c"], 10) == {"o1": 13}  # a blank row
    assert ids.orders([b'a,"o1",b', b"a,o1,c"], 10) == {"o1": 12}
    assert ids.orders([b"a,o1,b", b"a,,c"], 10) is None
    assert ids.orders([b"a,o1,b", b"a,o\xff,c"], 10) is None  # not UTF-8
    assert ids.orders([b"a,o1,b", b"a,o2,c", b"a,o1,c"], 10) is None  # not consecutive
    assert ids.orders([b"a,o1,b", b"a,o2,c", b"a, o1,c"], 10) is None


async def _group_lines(path: Path) -> list[tuple[bytes | object, ...]]:
    chunks = CsvPart(LocalFile(path), ORDERS).read_groups(None)
    assert chunks is not None
    return [tuple(g.lines) async for chunk in chunks for g in chunk
            if isinstance(g, LineGroup)]


async def test_an_order_inserted_changes_only_the_groups_around_it(tmp_path: Path) -> None:
    """Where groups end depends on the lines themselves, counted from the group's start: an
    order inserted mid-file changes its own group and, when a line the shift passes says
    so, the next few (one line in 32 each), not the groups that follow (orders of one row:
    no order boundary absorbs the shift)."""
    rows = [f"o{n},o{n}@example.com,s{n},1,n\n" for n in range(3000)]
    path = tmp_path / "orders.csv"
    path.write_bytes(HEADER + "".join(rows).encode())
    before = await _group_lines(path)
    rows[1500:1500] = ["new,new@example.com,s,1,n\n"]
    path.write_bytes(HEADER + "".join(rows).encode())
    after = await _group_lines(path)
    assert len(before) > 20
    assert len(set(after) - set(before)) <= 3 and len(set(before) - set(after)) <= 3
