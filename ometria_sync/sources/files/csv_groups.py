"""CSV rows in groups, not mapped: where rows end (change detection's fast path for nightly
full exports, ``pipeline/line_groups.py``).

A row spans lines when a quoted field holds a newline, so a group of lines may only end where
a row ends. In a read without the quote character every line is a row (or a row refused with
an error: the csv module ends it with its line too), and one search of the read's bytes says
so. Otherwise the rows go through the csv module itself, as when the file is read row by row
(the same dialect, each line decoded on its own), not mapped: the lines each row took are where
rows end, errors and the field size limit included. When few lines hold the quote, only the
rows starting at those do: a line without it that starts a row is that row. Only the last row
of a read may be unfinished (a quoted field still open): it waits for the next read. A line
over the limit ends its row, as it does when the file is read row by row (the reader restarts
after it).

Groups end where the lines say (after a row whose last line's Adler-32 says so, as for JSON
Lines, or at the first row end past :data:`~.lines.GROUP_MAX` lines) and never at the end of
a read: the lines after the last cut wait for the next read, so a group's bytes depend on its
own lines only, and a row changed or inserted moves no other group's boundary.
"""

from __future__ import annotations

import asyncio
import csv
import zlib
from collections.abc import AsyncIterator
from typing import cast
from zlib import adler32

from ometria_sync.errors import SourceError
from ometria_sync.sources.files.lines import (
    GROUP_LINES,
    GROUP_MAX,
    BoundedLines,
    Line,
    LineGroup,
    line_size,
)
from ometria_sync.sources.files.location import Location

_CHUNK_BYTES = 256 * 1024
_MASK = GROUP_LINES - 1
#: a read where at most one line in this many holds the quote parses only the rows at those
_FEW_QUOTED = 4


class RowCutter:
    """Cuts the lines of one CSV file, read in order, into groups of whole rows.

    ``head`` (the header's column names) goes with every group: it shapes the records its
    rows make, so a reordered header makes every group new."""

    def __init__(self, *, quotechar: str, delimiter: str, encoding: str, head: bytes,
                 start: tuple[int, int]) -> None:
        self._quote = quotechar.encode(encoding)
        # built once: making it costs more than reading a row
        self._dialect = csv.reader((), delimiter=delimiter, quotechar=quotechar,
                                   strict=True).dialect
        self._encoding = encoding
        self._head = head
        #: the lines read after the last cut (whole rows, and the start of one), from ``start``
        self._pending: list[bytes | Line] = []
        self.start = start

    def cut(self, lines: list[bytes | Line]) -> list[LineGroup]:
        """The groups that end in ``lines`` (read after everything before)."""
        lines = self._pending + lines if self._pending else lines
        cuts = self._cuts(lines)
        groups: list[LineGroup] = []
        first = 0
        for cut in cuts:
            taken = lines[first:cut]
            groups.append(self._group(taken, self.start,
                                      plain=set(map(type, taken)) == {bytes}))
            self.start, first = groups[-1].end, cut
        self._pending = lines[first:]
        return groups

    def _cuts(self, lines: list[bytes | Line]) -> list[int]:
        """Where groups end in ``lines`` (counted in lines from their start)."""
        if set(map(type, lines)) == {bytes} and self._quote not in b"".join(
                lines):  # type: ignore[arg-type]
            return _line_cuts(lines)  # type: ignore[arg-type]
        ends = self._row_ends(lines)
        plain = len(ends) == len(lines) and set(map(type, lines)) == {bytes}
        return _line_cuts(lines) if plain else _row_cuts(lines, ends)  # type: ignore[arg-type]

    def finish(self) -> list[LineGroup]:
        """At the end of the file: what is left, as one group (a last row without its closing
        quote is refused when decoded, so its group is never kept)."""
        lines, self._pending = self._pending, []
        if not lines:
            return []
        return [self._group(lines, self.start, plain=set(map(type, lines)) == {bytes})]

    def _row_ends(self, lines: list[bytes | Line]) -> list[int]:
        """For each row that surely ends in ``lines``, the number of lines up to its end."""
        if set(map(type, lines)) == {bytes}:
            return self._parsed(lines)
        ends: list[int] = []
        first = 0
        for i, raw in enumerate(lines):
            if not isinstance(raw, bytes):  # over the limit, or the last line: a row's end
                ends += [first + n for n in self._parsed(lines[first:i])]
                ends.append(i + 1)
                first = i + 1
        if first < len(lines):
            ends += [first + n for n in self._parsed(lines[first:])]
        return ends

    def _parsed(self, lines: list[bytes | Line]) -> list[int]:
        """Where rows end in ``lines`` (read from a row's start; none special), counted in
        lines; a row ended by the lines' end (perhaps unfinished) is left out. A line
        without the quote is a row when it starts one: when few lines hold it, only the rows
        starting at those go through the csv module."""
        joined = b"\n".join(lines)  # type: ignore[arg-type]
        if joined.count(self._quote) * _FEW_QUOTED > 2 * len(lines):
            return self._parsed_all(lines)  # many (a quoted cell has two)
        quoted = _quoted_lines(joined, self._quote)
        if len(quoted) * _FEW_QUOTED > len(lines):
            return self._parsed_all(lines)
        ends: list[int] = []
        feed = _Feed(cast(list[bytes], lines), self._encoding)
        reader = csv.reader(feed, self._dialect)
        at = 0  # a row starts at this line
        for i in quoted:
            if i < at:  # taken by a row that started on an earlier line
                continue
            ends += range(at + 1, i + 1)
            feed.at = i
            try:
                next(reader, None)
            except csv.Error:  # the row ends with the line it failed on ...
                if feed.at == len(lines):  # ... or it goes on past them
                    return ends
            at = feed.at
            ends.append(at)
        ends += range(at + 1, len(lines) + 1)
        return ends

    def _parsed_all(self, lines: list[bytes | Line]) -> list[int]:
        """:meth:`_parsed`, every row through the csv module."""
        encoding = self._encoding
        text = [raw.decode(encoding, "surrogateescape") + "\n"
                for raw in cast(list[bytes], lines)]
        reader = csv.reader(text, self._dialect)
        ends: list[int] = []
        failed = 0
        while True:
            try:
                for _ in reader:
                    ends.append(reader.line_num)
                break
            except csv.Error:  # the row ends with the line it failed on
                failed = reader.line_num
                ends.append(failed)
        # failed on the last line: perhaps a quoted field the next read closes (the csv
        # module's "unexpected end of data"); the next read finds where that row ends
        if failed == len(lines):
            ends.pop()
        return ends

    def _group(self, lines: list[bytes | Line], start: tuple[int, int], *,
               plain: bool) -> LineGroup:
        size = sum(map(len, lines)) + len(lines) if plain else sum(map(line_size, lines))
        end = (start[0] + size, start[1] + len(lines))
        return LineGroup(lines, start, end, plain=plain, head=self._head)


def _quoted_lines(joined: bytes, quote: bytes) -> list[int]:
    """The numbers (from 0) of the lines of ``joined`` holding ``quote``, found quote by
    quote (a read with few quotes: fewer steps than its lines)."""
    found: list[int] = []
    line, before = 0, 0
    at = joined.find(quote)
    while at >= 0:
        line += joined.count(b"\n", before, at)
        found.append(line)
        before = joined.find(b"\n", at) + 1
        if not before:
            break
        line += 1
        at = joined.find(quote, before)
    return found


class _Feed:
    """Lines as text for one csv reader, from where :attr:`at` is set: the reader reads one
    row at a time from any line (it starts each row afresh)."""

    def __init__(self, lines: list[bytes], encoding: str) -> None:
        self._lines, self._encoding = lines, encoding
        self.at = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        at = self.at
        if at >= len(self._lines):
            raise StopIteration
        self.at = at + 1
        return self._lines[at].decode(self._encoding, "surrogateescape") + "\n"


async def cut_file(location: Location, cutter: RowCutter, limit: int,
                   label: str) -> AsyncIterator[list[LineGroup]]:
    """The groups of the file at ``location`` from ``cutter.start`` (``limit``: the line cap).
    A read error fails the part at the end of the last group handed over: the rows after it
    were not read."""
    fh = await asyncio.to_thread(location.open_at, cutter.start[0])  # a gzip seek may be long
    lines = BoundedLines(fh, limit)
    try:
        while True:
            try:
                read = lines.read(_CHUNK_BYTES)
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"{label}: unreadable after line {cutter.start[1]} "
                                  f"(byte {cutter.start[0]}): {exc}") from exc
            groups = cutter.cut(read) if read else cutter.finish()
            if groups:
                yield groups
            if not read:
                return
            await asyncio.sleep(0)
    finally:
        fh.close()


def _line_cuts(lines: list[bytes]) -> list[int]:
    """Where groups end when every line is a row: after a line whose Adler-32 says so, or
    after GROUP_MAX lines (the lines after the last cut wait for the next read)."""
    cuts: list[int] = []
    first = 0
    for cut in [i for i, raw in enumerate(lines, 1) if not adler32(raw) & _MASK]:
        while cut - first > GROUP_MAX:
            first += GROUP_MAX
            cuts.append(first)
        cuts.append(cut)
        first = cut
    while len(lines) - first >= GROUP_MAX:
        first += GROUP_MAX
        cuts.append(first)
    return cuts


def _row_cuts(lines: list[bytes | Line], ends: list[int]) -> list[int]:
    """:func:`_line_cuts` when rows may span lines: at a row's end only, and after every
    special line (its group is not plain)."""
    cuts: list[int] = []
    first = 0
    for end in ends:
        last = lines[end - 1]
        if (not isinstance(last, bytes) or end - first >= GROUP_MAX
                or not adler32(last) & _MASK):
            cuts.append(end)
            first = end
    return cuts
