"""CSV rows folded into orders, in groups of whole orders (change detection's fast path for
nightly exports with one row per line item, ``pipeline/line_groups.py``).

A group skipped undecoded must hold whole orders: an order split across two groups would be
sent with part of its line items. So :class:`OrderCutter` moves each cut a
:class:`~.csv_groups.RowCutter` would make forward to the first row end where the order id
changes: between two rows whose ids differ, each mapped fine (so the row-by-row read takes
both into orders: the one before ends there, the one after starts another). A cut depends on
the row after it, so it is made only once that row is read; each group starts where an order
starts. An order still going on :data:`ORDER_MAX_LINES` lines into a group is cut inside: the
groups on both sides are never plain (always decoded), and the first leaves its last order
open for the second (``open_end``).

Refusing an order whose rows are not consecutive takes the ids of every order before it,
skipped ones included: :meth:`OrderIds.orders` reads a skipped group's order ids (one split
per line when the group holds neither the quote character nor a carriage return, else the
``csv`` module) for ``OrderGrouper.passed``, which declines to skip a group reusing an id
seen before: it is decoded, and its order refused with the usual message.
"""

from __future__ import annotations

import csv
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import compress, count, islice
from operator import ne
from typing import Any
from zlib import adler32

from ometria_sync.sources.files.csv_groups import RowCutter
from ometria_sync.sources.files.lines import GROUP_LINES, GROUP_MAX, Line, LineGroup

_MASK = GROUP_LINES - 1
#: an order this many lines into a group without ending is cut inside (both sides decoded)
ORDER_MAX_LINES = 8 * GROUP_MAX

#: an order's id and the first line of its last row (as ``OrderGrouper`` records it)
Order = tuple[str, int]


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
        other = f"[^{re.escape(delimiter)}\\n]*"
        #: the id cell of each line (a line with fewer cells has no match)
        self._cell = re.compile(f"^(?:{other}{re.escape(delimiter)}){{{index}}}({other})",
                                re.MULTILINE)

    def row_id(self, lines: Sequence[bytes | Line]) -> str | None:
        """The order id of the one row on ``lines``, read from its cell; None when the
        row-by-row read surely refuses the row (a special line, bytes not valid in the
        encoding, a cell too many or too few, bad quoting) or it has no id."""
        cells = self._cells(lines)
        return None if cells is None else self._id(cells)

    def taken_id(self, lines: Sequence[bytes | Line]) -> str | None:
        """:meth:`row_id`, from the row mapped: None unless the row-by-row read takes the row
        into an order with an id."""
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

    def orders(self, lines: list[bytes | Line], line: int) -> list[Order] | None:
        """The orders of a group's rows (its lines read from after ``line``), in order; None
        when that is not sure (a row without an id, or one the row-by-row read refuses):
        the group is then decoded."""
        try:
            text = b"\n".join(lines).decode(self._encoding)  # type: ignore[arg-type]
        except (UnicodeDecodeError, TypeError):
            return None
        if self._quote in text or "\r" in text:
            return self._parsed(text, line)
        cells = self._cell.findall(text)
        n = len(cells)
        if n != text.count("\n") + 1 or "" in cells:  # a short or blank row
            return self._parsed(text, line)
        last = list(compress(count(), map(ne, cells, islice(cells, 1, None))))
        last.append(n - 1)
        if not self._trim:
            return [(cells[i], line + i + 1) for i in last]
        orders = [(cells[i].strip(), line + i + 1) for i in last]
        return None if any(not order for order, _ in orders) else orders

    def _parsed(self, text: str, line: int) -> list[Order] | None:
        """:meth:`orders` through the ``csv`` module (blank rows left out, as when read)."""
        reader = csv.reader([t + "\n" for t in text.split("\n")], self._dialect)
        orders: list[Order] = []
        before = 0
        try:
            for cells in reader:
                first, before = before + 1, reader.line_num
                if not any(cells):
                    continue
                cell = self._id(cells)
                if cell is None:
                    return None
                if orders and orders[-1][0] == cell:
                    orders[-1] = (cell, line + first)
                else:
                    orders.append((cell, line + first))
        except csv.Error:
            return None
        return orders


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

    def _cuts(self, lines: list[bytes | Line]) -> list[int]:
        ends: Sequence[int]
        if set(map(type, lines)) == {bytes} and self._quote not in b"".join(
                lines):  # type: ignore[arg-type]
            ends = range(1, len(lines) + 1)
            marks = [j for j, raw in enumerate(lines)
                     if not adler32(raw) & _MASK]  # type: ignore[arg-type]
        else:
            ends = self._row_ends(lines)
            marks = [j for j, end in enumerate(ends) if isinstance(lines[end - 1], bytes)
                     and not adler32(lines[end - 1]) & _MASK]  # type: ignore[arg-type]
        rows = len(ends)
        cuts: list[int] = []
        first = 0  # the lines before the group being cut
        row = 0  # the first row that may end it
        m = 0
        while True:
            while m < len(marks) and marks[m] < row:
                m += 1
            # where RowCutter would cut: a row whose last line says so, or GROUP_MAX lines in
            wanted = min(marks[m] if m < len(marks) else rows,
                         bisect_left(ends, first + GROUP_MAX, lo=row))
            row, inside = wanted, False
            while row + 1 < rows and not self._boundary(lines, ends, row):
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

    def _boundary(self, lines: list[bytes | Line], ends: Sequence[int], row: int) -> bool:
        """An order ends with row ``row`` and another starts with the next."""
        ids = self._ids
        rows = lines[ends[row - 1] if row else 0:ends[row]], lines[ends[row]:ends[row + 1]]
        here, after = (ids.row_id(r) for r in rows)
        if here is None or after is None or here == after:
            return False
        here, after = (ids.taken_id(r) for r in rows)  # both rows map, with these ids
        return here is not None and after is not None and here != after
