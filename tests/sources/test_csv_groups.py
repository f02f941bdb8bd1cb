"""CSV rows in groups for change detection's fast path (``sources/files/csv_groups.py``): groups
end where rows end, and decoding them gives exactly what reading the file row by row gives."""

from __future__ import annotations

import csv
import io
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.csv_groups import RowCutter, _ends_row, _quoted_lines
from ometria_sync.sources.files.lines import GROUP_MAX, BoundedLines, Line, LineGroup
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.mapping import ColumnSpec

CONTACTS = CsvOptions(columns={"email": "email", "note": "properties.note",
                               "score": ColumnSpec("properties.score", "number")},
                      constants={"@collection": "shop"})
HEADER = b"id,email,note,score\n"
ORDERS = CsvOptions(columns={"order_id": "id", "sku": "lineitems[].sku"})

#: cells as exports write them, and as they go wrong: quoted with delimiters, newlines and
#: doubled quotes inside, a quote in the middle of a field, a carriage return, a character
#: after a closing quote, a quote never closed
CELLS = ["ann@example.com", "", "12", "x.5", '"a,b"', '"two\nlines"', '"say ""hi"""',
         'ab"c', '"q" x', '"\n"', 'a\rb', '"open', '"', '""', '"multi\n\nline,"', "é",
         '"a\r\nb"']


PLAIN = ["ann@example.com", "", "12", "x"]


def _row(rnd: random.Random, n: int, quoted: float) -> bytes:
    """A row whose cells are those of CELLS with odds ``quoted``, else plain ones."""
    cells = CELLS if rnd.random() < quoted else PLAIN
    row = [f"c{n}"] + [rnd.choice(cells) for _ in range(rnd.choice((2, 3, 3, 3, 4)))]
    return (",".join(row) + rnd.choice(("\n", "\n", "\r\n", "\n\n"))).encode()


def _file(seed: int, rows: int, quoted: float = 1.0) -> bytes:
    rnd = random.Random(seed)
    return HEADER + b"".join(_row(rnd, n, quoted) for n in range(rows))


async def _slow(path: Path, options: CsvOptions) -> list[SourceItem]:
    return [i async for chunk in CsvPart(LocalFile(path), options).read(None) for i in chunk]


async def _fast(path: Path, options: CsvOptions) -> tuple[list[SourceItem], list[LineGroup]]:
    """The items of the groups (decoded) and of the chunks read the usual way, in order."""
    part = CsvPart(LocalFile(path), options)
    chunks = part.read_groups(None)
    assert chunks is not None
    items: list[SourceItem] = []
    groups: list[LineGroup] = []
    async for chunk in chunks:
        for got in chunk:
            if isinstance(got, LineGroup):
                groups.append(got)
                items += part.decode(got)
            else:
                items.append(got)
    return items, groups


def _same(a: list[SourceItem], b: list[SourceItem]) -> None:
    assert [(i.record, i.position, i.line, i.raw, i.error, i.id) for i in a] == \
           [(i.record, i.position, i.line, i.raw, i.error, i.id) for i in b]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), rows=st.integers(0, 300),
       quoted=st.sampled_from([0.02, 0.1, 0.3, 1.0]))
async def test_decoded_groups_are_the_rows_read_one_by_one(tmp_path: Path, seed: int,
                                                           rows: int, quoted: float) -> None:
    """Whatever the cells (quoted newlines, stray and unclosed quotes, carriage returns, bad
    rows; in few rows or in most), the groups' items are the file's items: same records,
    errors, lines, positions."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(_file(seed, rows, quoted))
    fast, groups = await _fast(path, CONTACTS)
    _same(fast, await _slow(path, CONTACTS))
    assert all(a.end == b.start for a, b in itertools.pairwise(groups))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), rows=st.integers(1, 400), reads=st.integers(1, 50),
       quoted=st.sampled_from([0.02, 0.1, 0.3, 1.0]))
def test_groups_end_where_the_csv_module_ends_a_row(seed: int, rows: int, reads: int,
                                                    quoted: float) -> None:
    """Lines handed over in reads of any size: the groups are the lines in order, each ends
    where the csv module ends a row, and a group has at most GROUP_MAX lines unless a row
    runs past it."""
    data = _file(seed, rows, quoted)[len(HEADER):]
    lines = BoundedLines(io.BytesIO(data), 1 << 20).read(1 << 30)
    cutter = RowCutter(quotechar='"', delimiter=",", encoding="utf-8", head=b"h",
                       start=(0, 1))
    rnd = random.Random(seed)
    groups: list[LineGroup] = []
    rest = list(lines)
    while rest:
        n = rnd.randint(1, max(1, len(rest) // reads + 1))
        groups += cutter.cut(rest[:n])
        rest = rest[n:]
    groups += cutter.finish()
    assert [raw for g in groups for raw in g.lines] == lines
    row_ends = _row_ends(data)
    for group in groups[:-1]:
        assert group.end[1] - 1 in row_ends
        assert (group.plain and len(group.lines) <= GROUP_MAX) or _spans(group, row_ends)
    assert groups[-1].end == (len(data), 1 + len(lines))


def _row_ends(data: bytes) -> set[int]:
    """The line numbers (from 1) after which the csv module starts a new row."""
    text = data.decode().split("\n")  # lines as the reader is given them: split on \n only
    reader = csv.reader((line + "\n" for line in text[:-1]), strict=True)
    ends = set()
    while True:
        try:
            next(reader)
        except StopIteration:
            return ends
        except csv.Error:
            pass
        ends.add(reader.line_num)


def _spans(group: LineGroup, row_ends: set[int]) -> bool:
    """The group's last row started before its GROUP_MAX-th line."""
    first = group.start[1] + 1
    return not any(n in row_ends for n in range(first + GROUP_MAX - 1, group.end[1] - 1))


def test_a_row_inserted_or_changed_moves_no_other_groups_boundary() -> None:
    data = _file(3, 3000)[len(HEADER):]
    lines = data.split(b"\n")[:-1]
    edited = [*lines[:1500], b'new,"x\ny",1', *lines[1500:]]
    edited[2500] = edited[2500] + b"x"

    def cut(lines: list[bytes]) -> set[bytes]:
        cutter = RowCutter(quotechar='"', delimiter=",", encoding="utf-8", head=b"h",
                       start=(0, 1))
        groups = [*cutter.cut(list(lines[:1000])), *cutter.cut(list(lines[1000:])),
                  *cutter.finish()]
        return {b"\n".join(g.lines) for g in groups}  # type: ignore[arg-type]

    before, after = cut(lines), cut(edited)
    assert len(after - before) <= 4 and len(before) > 50


async def test_a_quoted_field_over_the_field_limit_ends_its_row_there(tmp_path: Path) -> None:
    """The csv module stops a field at its size limit (an error, the row ends with that
    line): the groups end where it does, and give the same items."""
    limit = csv.field_size_limit(2000)
    try:
        path = tmp_path / "contacts.csv"
        long = "\n".join(["y" * 90] * 40)
        path.write_bytes(HEADER + b"".join(
            f'c{n},a@example.com,"{long if n == 300 else "x"}",1\n'.encode() for n in range(600)))
        fast, groups = await _fast(path, CONTACTS)
        _same(fast, await _slow(path, CONTACTS))
        assert groups[-1].end[1] > 600  # grouped to the end
        assert any("field larger than field limit" in (i.error or "") for i in fast)
    finally:
        csv.field_size_limit(limit)


async def test_orders_come_in_groups_of_whole_orders(tmp_path: Path) -> None:
    """Rows folded into orders come in groups too, each holding whole orders
    (``csv_orders.py``; its own tests go further)."""
    path = tmp_path / "orders.csv"
    path.write_bytes(b"order_id,sku\n" + b"".join(b"o%d,s%d\no%d,t\n" % (n, n, n)
                                                    for n in range(100)))
    fast, groups = await _fast(path, ORDERS)
    assert len(groups) > 1 and len(fast) == 100
    assert all(len(g.lines) % 2 == 0 for g in groups)
    _same(fast, await _slow(path, ORDERS))


async def test_the_header_goes_with_every_group(tmp_path: Path) -> None:
    """Its column names shape the records: every group carries them."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"id,note,email,score\n" + b"c1,x,a@example.com,1\n" * 50)
    _, groups = await _fast(path, CONTACTS)
    assert {g.head for g in groups} == {b"id\x00note\x00email\x00score"}


async def test_a_line_over_the_limit_is_in_a_group_never_skipped(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(HEADER + b"c1,\"a\n" + b"z" * 3000 + b"\nc2,b@example.com,,1\n")
    options = CsvOptions(columns=CONTACTS.columns, max_line_bytes=1024)
    fast, groups = await _fast(path, options)
    _same(fast, await _slow(path, options))
    assert any(isinstance(raw, Line) for g in groups if not g.plain for raw in g.lines)


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.sampled_from([b"", b'"', b'a"b', b"abc", b'""', b"x,y"]), max_size=30))
def test_the_lines_holding_the_quote_are_found_quote_by_quote(lines: list[bytes]) -> None:
    assert _quoted_lines(b"\n".join(lines), b'"') == [
        i for i, raw in enumerate(lines) if b'"' in raw]


#: (delimiter, quotechar, encoding, a character of several bytes or of one not ASCII): in
#: Shift_JIS the second byte of "ポ" is "|" (its bytes cannot tell; the csv module decides)
DIALECTS = [(",", '"', "utf-8", "é"), (";", "'", "cp1252", "€"), ("\t", '"', "latin-1", "ÿ"),
            ("|", '"', "shift_jis", "ポ"), (",", "|", "shift_jis", "ポ"), (",", '"', "utf-8", "ポ")]


def _pieces(delimiter: str, quote: str, other: str) -> list[str]:
    """Mostly quotes and delimiters: the lines where the order of a few decides."""
    return ["a", "bc", quote, quote, quote, delimiter, delimiter, quote * 2, "\r", "\x00",
            other]


@st.composite
def _lines(draw: st.DrawFn, delimiter: str, quote: str, encoding: str,
           other: str) -> list[bytes]:
    """Lines as exports write them (every cell or some quoted, newlines and quotes in cells,
    CRLF) and as they go wrong (pieces at random: stray, unclosed and doubled quotes, carriage
    returns, NUL, bytes not valid in the encoding)."""
    pieces = _pieces(delimiter, quote, other)
    cell = st.lists(st.sampled_from(["x", "y z", other, delimiter, quote, "\n", "\r\n"]),
                    max_size=6).map("".join)
    lines: list[bytes] = []
    for kind in draw(st.lists(st.sampled_from(["all", "minimal", "pieces", "bad"]),
                              min_size=1, max_size=8)):
        if kind == "pieces":
            text = "".join(draw(st.lists(st.sampled_from(pieces), max_size=10)))
            lines.append(text.encode(encoding))
        elif kind == "bad":
            lines.append(b"\xff" + quote.encode() + b"\x81" + delimiter.encode())
        else:
            out = io.StringIO()
            quoting = csv.QUOTE_ALL if kind == "all" else csv.QUOTE_MINIMAL
            end = draw(st.sampled_from(["\n", "\r\n"]))
            writer = csv.writer(out, delimiter=delimiter, quotechar=quote, quoting=quoting,
                                lineterminator=end)
            for _ in range(draw(st.integers(1, 4))):
                writer.writerow(draw(st.lists(cell, min_size=1, max_size=4)))
            lines += out.getvalue().encode(encoding).split(b"\n")[:-1]
    return lines


def _csv_row_ends(lines: list[bytes], delimiter: str, quote: str, encoding: str) -> set[int]:
    """The lines (from 1) after which the csv module surely starts a new row, whatever follows:
    read with one more line that would go on with a quoted field still open."""
    text = [raw.decode(encoding, "surrogateescape") + "\n" for raw in [*lines, b"x"]]
    reader = csv.reader(text, delimiter=delimiter, quotechar=quote, strict=True)
    ends = set()
    while True:
        try:
            next(reader)
        except StopIteration:
            return {n for n in ends if n <= len(lines)}
        except csv.Error:
            pass
        ends.add(reader.line_num)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), dialect=st.sampled_from(DIALECTS),
       limit=st.sampled_from([None, None, 4, 12]))
def test_row_ends_are_where_the_csv_module_ends_rows(data: st.DataObject,
                                                     dialect: tuple[str, str, str, str],
                                                     limit: int | None) -> None:
    """Whatever the lines (and the field size limit), the row ends found are the csv module's:
    each one it surely ends (the last line's may wait for the next read), and no other."""
    delimiter, quote, encoding, other = dialect
    lines = data.draw(_lines(delimiter, quote, encoding, other))
    cutter = RowCutter(quotechar=quote, delimiter=delimiter, encoding=encoding, head=b"h",
                       start=(0, 1))
    before = csv.field_size_limit(limit) if limit else None
    try:
        found = cutter._row_ends(list(lines))
        expected = _csv_row_ends(lines, delimiter, quote, encoding)
    finally:
        if before is not None:
            csv.field_size_limit(before)
    assert found == sorted(set(found))
    assert set(found) <= expected
    assert expected - {len(lines)} <= set(found)


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), dialect=st.sampled_from([d for d in DIALECTS if d[2] != "shift_jis"]))
def test_a_line_said_to_end_its_row_does(data: st.DataObject,
                                         dialect: tuple[str, str, str, str]) -> None:
    """The test on a line's bytes alone never says a row ends where the csv module goes on."""
    delimiter, quote, encoding, other = dialect
    pieces = data.draw(st.lists(st.sampled_from(_pieces(delimiter, quote, other)), max_size=12))
    line = "".join(pieces).encode(encoding)
    if _ends_row(line, quote.encode()[0], delimiter.encode()[0]):
        assert 1 in _csv_row_ends([line], delimiter, quote, encoding)


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), dialect=st.sampled_from([d for d in DIALECTS if d[2] != "shift_jis"]))
def test_lines_found_from_their_last_bytes_end_their_rows(
        data: st.DataObject, dialect: tuple[str, str, str, str]) -> None:
    """When the lines' last bytes say every line ends its row (a read of a fully quoted
    export), the csv module ends a row with each."""
    delimiter, quote, encoding, other = dialect
    pieces = _pieces(delimiter, quote, other)
    ending = st.sampled_from([quote, quote + "\r", "", "\r"])
    lines = [("".join(body) + end).encode(encoding) for body, end in data.draw(st.lists(
        st.tuples(st.lists(st.sampled_from(pieces), max_size=6), ending), min_size=1,
        max_size=4))]
    cutter = RowCutter(quotechar=quote, delimiter=delimiter, encoding=encoding, head=b"h",
                       start=(0, 1))
    if cutter._all_end_rows(lines):
        assert all(1 in _csv_row_ends([line], delimiter, quote, encoding) for line in lines)


@pytest.mark.parametrize("lines", [
    [b'x"\r', b'"a""', b'b"\r'],  # CRLF, then a line ending in a doubled quote, without \r
    [b'"a""', b'b"'],  # a doubled quote inside a field still open
    [b'x,"', b'b"'],  # the last quote opens a field
    [b'"a,""', b'b"'],  # "" after a delimiter inside an open field
    [b'"', b'b"'],  # a line that is only the quote
    [b'"a', b'b"', b"c", b"d", b"e", b"f", b"g", b"h"],  # few quotes, the first opening a field
])
def test_a_row_the_csv_module_reads_on_is_not_cut(lines: list[bytes]) -> None:
    """Lines that look like rows' ends (a quote last, a quote in few lines) but whose row the
    csv module reads on."""
    cutter = RowCutter(quotechar='"', delimiter=",", encoding="utf-8", head=b"h", start=(0, 1))
    found, expected = cutter._row_ends(list(lines)), _csv_row_ends(lines, ",", '"', "utf-8")
    assert set(found) <= expected and expected - {len(lines)} <= set(found)


def test_a_byte_that_is_part_of_a_character_is_not_the_quote() -> None:
    """In Shift_JIS the second byte of "ポ" is "|": with "|" the quote, the csv module decides
    (the row goes on to the next line)."""
    lines = ["|abポ".encode("shift_jis"), b"x|", b"y"]
    cutter = RowCutter(quotechar="|", delimiter=",", encoding="shift_jis", head=b"h",
                       start=(0, 1))
    assert cutter._row_ends(list(lines)) == [2, 3]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
@pytest.mark.parametrize("every", [1, 10])
def test_quoted_cells_ending_their_lines_need_no_csv_module(
        monkeypatch: pytest.MonkeyPatch, end: bytes, every: int) -> None:
    """Every cell quoted (as ``csv.QUOTE_ALL`` writes), or one quoted cell in some rows: each
    line's last quote closes a field, so every line is a row, found from the bytes alone."""
    rows = [b'"c%d","a%d@example.com","Ann, ""Jr""","","1.5"' % (n, n) if n % every == 0
            else b"c%d,a%d@example.com,Ann,,1.5" % (n, n) for n in range(3000)]
    data = b"".join(row + end for row in rows)
    lines = data.split(b"\n")[:-1]
    cutter = RowCutter(quotechar='"', delimiter=",", encoding="utf-8", head=b"h", start=(0, 1))

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the csv module was used")

    monkeypatch.setattr(csv, "reader", refused)
    groups = [*cutter.cut(lines[:1000]), *cutter.cut(lines[1000:])]
    assert all(g.plain for g in groups) and len(groups) > 10
    cut = [raw for g in groups for raw in g.lines]
    assert cut == lines[:len(cut)]
