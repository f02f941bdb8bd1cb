"""CSV rows folded into orders, in groups of whole orders (change detection's fast path for
nightly exports with one row per line item, ``pipeline/line_groups.py``).

A group skipped undecoded must hold whole orders: an order split across two groups would be
sent with part of its line items. So :class:`OrderCutter` cuts after a row whose last line's
Adler-32 says so, at least :data:`ORDER_GROUP_MIN` lines in (the lines before are not hashed:
a group takes about :data:`ORDER_GROUP_LINES`), or :data:`ORDER_GROUP_MAX` lines in, moved
forward to the first row end where the order id changes: between two rows whose ids differ,
each mapped fine (so the row-by-row read takes both into orders: the one before ends there,
the one after starts another). A cut depends on the row after it, so it is made only once
that row is read; each group starts where an order starts. An order still going on
:data:`ORDER_MAX_LINES` lines into a group is cut inside: the groups on both sides are never
plain (always decoded), and the first leaves its last order open for the second
(``open_end``).

Refusing an order whose rows are not consecutive takes the ids of every order before it,
skipped ones included. When change detection gives a group's ids as the state holds them
(``LineGroup.held``: the hashes of the orders' ids, which are the ids as read when no
transform runs), :class:`SkippedOrders` keeps only those hashes, with the ids of the orders
decoded: a group holding an id seen before is decoded (and its order refused with the usual
message), and a row of an order of a skipped group, read later, first has that group read
again from the file for its orders' ids and lines (a file whose orders are not consecutive:
rare), so the refusal's message is the one the row-by-row read gives. No line of a skipped
group is split. Otherwise :meth:`OrderIds.orders` reads a skipped group's order ids (each
line's bytes split up to its id cell when the group holds neither the quote character nor a
carriage return, in UTF-8 or a single-byte encoding; else the ``csv`` module) for
``OrderGrouper.passed``, which declines to skip a group reusing an id seen before.
"""

from __future__ import annotations

import csv
from bisect import bisect_left
from collections.abc import Callable, Sequence
from hashlib import blake2b
from itertools import compress, count, islice, repeat
from operator import and_, ne, not_
from typing import Any
from zlib import adler32

from ometria_sync.sources.files.csv_groups import RowCutter
from ometria_sync.sources.files.lines import GROUP_LINES, GROUP_MAX, Line, LineGroup

#: a group of orders takes about this many lines (four times a group of other lines: an
#: order takes a few rows, and so many fewer groups cost the state less): it ends after a row
#: at least ORDER_GROUP_MIN lines in whose last line's Adler-32 says so (one line in
#: ORDER_GROUP_LINES - ORDER_GROUP_MIN; the lines before are never hashed, and a line added
#: or removed moves the next cut only when a line it then passes says so) ...
ORDER_GROUP_LINES = 4 * GROUP_LINES
ORDER_GROUP_MIN = ORDER_GROUP_LINES * 3 // 4
#: the bits of the Adler-32 that say so: of its sum weighted by place (its low bits, a plain
#: sum of the bytes, vary little from one line of an export to the next)
_MASK = (ORDER_GROUP_LINES - ORDER_GROUP_MIN - 1) << 16
#: ... and at the first order's end after this many
ORDER_GROUP_MAX = 4 * GROUP_MAX
#: an order this many lines into a group without ending is cut inside (both sides decoded)
ORDER_MAX_LINES = 4 * ORDER_GROUP_MAX

#: Python's names of the encodings whose bytes for ASCII characters are never part of another
#: character: UTF-8 and single-byte ones
_BYTE_SAFE = ("utf-8", "ascii", "latin-1", "cp437", "cp850", "cp858", "koi8-r", "koi8-u")
_BYTE_SAFE_FAMILIES = ("iso8859-", "cp125", "mac-")


class OrderIds:
    """Reads a row's order id as the mapping does: the cell at ``index`` of ``width``,
    trimmed when ``trim``."""

    def __init__(self, *, index: int, width: int, trim: bool, delimiter: str, quotechar: str,
                 encoding: str, mapped: Callable[[list[str]], dict[str, Any]]) -> None:
        self._index, self._width, self._trim = index, width, trim
        self._delimiter, self._quote, self._encoding = delimiter, quotechar, encoding
        self._mapped = mapped
        self._dialect = csv.reader((), delimiter=delimiter, quotechar=quotechar,
                                   strict=True).dialect
        #: rows split as bytes: the delimiter's and the quote's bytes are never part of
        #: another character (UTF-8 or a single-byte encoding, ASCII delimiter and quote)
        self._raw = (encoding in _BYTE_SAFE or encoding.startswith(_BYTE_SAFE_FAMILIES)) and (
            delimiter + quotechar).isascii()
        self._delimiter_byte, self._quote_byte = delimiter.encode(), quotechar.encode()

    def row_id(self, lines: Sequence[bytes | Line]) -> bytes | str | None:
        """A key of the order id of the one row on ``lines``, read from its cell (rows whose
        keys are equal have the same id once mapped); None when the row-by-row read surely
        refuses the row (a special line, bytes not valid in the encoding, a cell too many or
        too few, bad quoting) or it has no id."""
        if self._raw and len(lines) == 1 and isinstance(lines[0], bytes):
            raw = lines[0][:-1] if lines[0].endswith(b"\r") else lines[0]
            if self._quote_byte not in raw and b"\r" not in raw:
                split = raw.split(self._delimiter_byte, self._index + 1)
                if len(split) <= self._index:
                    return None
                cell = split[self._index]
                return (cell.strip() if self._trim else cell) or None
        cells = self._cells(lines)
        return None if cells is None else self._id(cells)

    def taken_id(self, lines: Sequence[bytes | Line]) -> str | None:
        """The order id of the one row on ``lines``, from the row mapped: None unless the
        row-by-row read takes the row into an order with an id."""
        cells = self._cells(lines)
        if cells is None or len(cells) != self._width or not any(cells):
            return None
        try:
            order_id = self._mapped(cells).get("id")
        except ValueError:
            return None
        return order_id if isinstance(order_id, str) and order_id else None

    def _cells(self, lines: Sequence[bytes | Line]) -> list[str] | None:
        try:
            text = [raw.decode(self._encoding) for raw in lines]  # type: ignore[union-attr]
        except (UnicodeDecodeError, AttributeError):
            return None
        if len(text) == 1:
            line = text[0][:-1] if text[0].endswith("\r") else text[0]
            if self._quote not in line and "\r" not in line:
                return line.split(self._delimiter)
        try:
            rows = list(csv.reader([t + "\n" for t in text], self._dialect))
        except csv.Error:
            return None
        return rows[0] if len(rows) == 1 else None

    def _id(self, cells: list[str]) -> str | None:
        if len(cells) != self._width:
            return None
        cell = cells[self._index]
        return (cell.strip() if self._trim else cell) or None

    def orders(self, lines: list[bytes | Line], line: int) -> dict[str, int] | None:
        """The orders of a group's rows (its lines read from after ``line``), in order: each
        one's id and the first line of its last row; None when that is not sure (a row
        without an id, one the row-by-row read refuses, an order whose rows are not
        consecutive): the group is then decoded. Meant for a group Ometria holds, so every
        row was taken when it was kept: rows without the quote are only split to their id
        cell."""
        try:
            joined = b"\n".join(lines)  # type: ignore[arg-type]
        except TypeError:  # a special line
            return None
        if not self._raw or self._quote_byte in joined or b"\r" in joined:
            return self._parsed(lines, line)
        index, delimiter = self._index, self._delimiter_byte
        try:
            cells = [raw.split(delimiter, index + 1)[index]  # type: ignore[union-attr]
                     for raw in lines]
        except IndexError:  # a cell too few
            return self._parsed(lines, line)
        if b"" in cells:  # a blank row, or one without an id
            return self._parsed(lines, line)
        ends = list(compress(count(), map(ne, cells, islice(cells, 1, None))))  # of runs
        ends.append(len(cells) - 1)
        ids = map(bytes.decode, map(cells.__getitem__, ends), repeat(self._encoding))
        try:
            orders = dict(zip(map(str.strip, ids) if self._trim else ids,
                              map((line + 1).__add__, ends), strict=True))
        except UnicodeDecodeError:  # refused when read
            return None
        # an id in two runs: an order whose rows are not consecutive
        return orders if len(orders) == len(ends) and "" not in orders else None

    def _parsed(self, lines: list[bytes | Line], line: int) -> dict[str, int] | None:
        """:meth:`orders` through the ``csv`` module (blank rows left out, as when read)."""
        try:
            text = [raw.decode(self._encoding) + "\n" for raw in lines]  # type: ignore[union-attr]
        except (UnicodeDecodeError, AttributeError):
            return None
        reader = csv.reader(text, self._dialect)
        orders: dict[str, int] = {}
        before, previous = 0, None
        try:
            for cells in reader:
                first, before = before + 1, reader.line_num
                if not any(cells):
                    continue
                cell = self._id(cells)
                if cell is None or (cell != previous and cell in orders):
                    return None
                orders[cell], previous = line + first, cell
        except csv.Error:
            return None
        return orders


def id_hash(order_id: str) -> int:
    """The change index's hash of an order's id (``change_filter.hash64`` of its
    ``identity``: an order has no collection)."""
    return int.from_bytes(blake2b(order_id.encode(), digest_size=8).digest(), "little",
                          signed=True)


class SkippedOrders:
    """The orders of the groups skipped undecoded, known by their ids' hashes only, and of
    the rows decoded (see the module's docstring). ``reread``: the orders of a skipped group
    (each id and the first line of its last row) from its ``(offset, line)`` before and after,
    read from the file."""

    def __init__(self, reread: Callable[[tuple[int, int], tuple[int, int]], dict[str, int]]
                 ) -> None:
        self._reread = reread
        #: the id hashes read so far: of the groups skipped, of the rows decoded, and of the
        #: groups not skipped for holding one read before (decoded: their rows add them anyway)
        self._known: set[int] = set()
        #: each skipped group's id hashes and where it is (None once read again)
        self._skipped: list[tuple[Sequence[int], tuple[int, int], tuple[int, int]] | None] = []
        #: id hash -> its skipped group, made when an id is first read again (rare)
        self._index: dict[int, int] | None = None

    @property
    def any(self) -> bool:
        """A group was skipped."""
        return bool(self._skipped)

    def passed(self, group: LineGroup, held: Sequence[int]) -> bool:
        """Whether a group whose orders' id hashes are ``held`` (each once) may be skipped:
        none of them was read before, in a group skipped or decoded (a hash met again is
        taken for the same id: the group is decoded). Noted when it may."""
        known = self._known
        before = len(known)
        known.update(held)
        if len(known) - before != len(held):
            return False
        if self._index is not None:
            self._index.update(dict.fromkeys(held, len(self._skipped)))
        self._skipped.append((held, group.start, group.end))
        return True

    def read(self, order_id: str) -> dict[str, int] | None:
        """A decoded row of ``order_id``, before it is grouped: the orders of the skipped
        group that held its hash (once: then they are noted), else None."""
        try:
            h = id_hash(order_id)
        except UnicodeEncodeError:
            return None
        if h not in self._known:
            self._known.add(h)
            return None
        if self._index is None:
            self._index = {i: n for n, skipped in enumerate(self._skipped)
                           if skipped is not None for i in skipped[0]}
        n = self._index.pop(h, -1)
        skipped = self._skipped[n] if n >= 0 else None
        if skipped is None:
            return None
        self._skipped[n] = None
        return self._reread(skipped[1], skipped[2])


class OrderCutter(RowCutter):
    """:class:`~.csv_groups.RowCutter` for rows folded into orders: groups of whole orders
    (see the module's docstring)."""

    def __init__(self, ids: OrderIds, *, quotechar: str, delimiter: str, encoding: str,
                 head: bytes, start: tuple[int, int]) -> None:
        super().__init__(quotechar=quotechar, delimiter=delimiter, encoding=encoding,
                         head=head, start=start)
        self._ids = ids
        self._inside: set[int] = set()  # the lines after which a cut falls inside an order
        self._open = False  # the next group starts inside an order

    def cut(self, lines: list[bytes | Line]) -> list[LineGroup]:
        return self._mark(super().cut(lines))

    def finish(self) -> list[LineGroup]:
        return self._mark(super().finish())

    def _mark(self, groups: list[LineGroup]) -> list[LineGroup]:
        for group in groups:
            if self._open:
                group.plain = False
            if group.end[1] in self._inside:
                self._inside.discard(group.end[1])
                group.open_end, group.plain = True, False
            self._open = group.open_end
        return groups

    def _cuts(self, lines: list[bytes | Line], raw_only: bool) -> list[int]:
        ends: Sequence[int]
        if raw_only and self._quote not in b"".join(lines):  # type: ignore[arg-type]
            ends = range(1, len(lines) + 1)
            mark = _line_mark
        else:
            ends = self._row_ends(lines)
            mark = _row_mark
        rows = len(ends)
        keys: dict[int, bytes | str | None] = {}  # row -> OrderIds.row_id
        cuts: list[int] = []
        first = 0  # the lines before the group being cut
        row = 0  # the first row that may end it
        while True:
            # a row ORDER_GROUP_MIN lines in whose last line says so, or ORDER_GROUP_MAX in
            last = bisect_left(ends, first + ORDER_GROUP_MAX, lo=row)
            wanted = mark(lines, ends, bisect_left(ends, first + ORDER_GROUP_MIN, lo=row), last)
            row, inside = wanted, False
            while row + 1 < rows and not self._boundary(lines, ends, row, keys):
                if ends[row] - first >= ORDER_MAX_LINES:
                    inside = True
                    break
                row += 1
            if row + 1 >= rows:
                return cuts  # the row after the cut is not read yet
            if inside:
                self._inside.add(self.start[1] + ends[row])
            first = ends[row]
            cuts.append(first)
            row += 1

    def _boundary(self, lines: list[bytes | Line], ends: Sequence[int], row: int,
                  keys: dict[int, bytes | str | None]) -> bool:
        """An order ends with row ``row`` and another starts with the next (``keys``: the
        rows' id keys found so far)."""
        ids = self._ids
        for r in (row, row + 1):
            if r not in keys:
                keys[r] = ids.row_id(lines[ends[r - 1] if r else 0:ends[r]])
        here, after = keys[row], keys[row + 1]
        if here is None or after is None or here == after:
            return False
        rows = lines[ends[row - 1] if row else 0:ends[row]], lines[ends[row]:ends[row + 1]]
        here, after = (ids.taken_id(r) for r in rows)  # both rows map, with these ids
        return here is not None and after is not None and here != after


def _line_mark(lines: list[bytes | Line], ends: Sequence[int], lo: int, hi: int) -> int:
    """The first row from ``lo`` before ``hi`` whose line's Adler-32 says a group may end
    there (every line a row, none special), else ``hi``; the lines after it are not hashed."""
    said = map(not_, map(and_, map(adler32, lines[lo:hi]),  # type: ignore[arg-type]
                         repeat(_MASK)))
    return next(compress(count(lo), said), hi)


def _row_mark(lines: list[bytes | Line], ends: Sequence[int], lo: int, hi: int) -> int:
    """:func:`_line_mark` of rows ending after ``ends``: a row's last line says so."""
    for row in range(lo, hi):
        raw = lines[ends[row] - 1]
        if isinstance(raw, bytes) and not adler32(raw) & _MASK:
            return row
    return hi
