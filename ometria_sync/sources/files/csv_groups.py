"""CSV rows in groups, not mapped: where rows end (change detection's fast path for nightly
full exports, ``pipeline/line_groups.py``).

A row spans lines when a quoted field holds a newline, so a group of lines may only end where
a row ends. In a read without the quote character every line is a row (or a row refused with
an error: the csv module ends it with its line too), and one search of the read's bytes says
so. A line starting a row also ends it when its last quote follows a character other than the
quote and the delimiter: that quote closes a quoted field or sits in an unquoted one, so the
csv module is outside a quoted field at the line's end, whatever came before
(:func:`_ends_row`, which also takes a last field ``""`` after such a line's start). A read
whose every line ends that way (``..."x"``, as a fully quoted export writes) is found so from
the lines' last bytes alone. The rows starting at the other lines holding the quote go through
the csv module itself, as when the file is read row by row (the same dialect, each line
decoded on its own), not mapped: the lines each row took are where rows end, errors and the
field size limit included; when most lines are unsure, every row does. That test reads bytes,
so it is made only where the quote and delimiter bytes are those characters wherever they
appear and the byte before a character belongs to the character before (UTF-8 and the
single-byte code pages); in other encodings every line holding the quote is unsure. Only the
last row of a read may be unfinished (a quoted field still open): it waits for the next read.
A line over the limit ends its row, as it does when the file is read row by row (the reader
restarts after it).

Groups end where the lines say (after a row whose last line's Adler-32 says so, as for JSON
Lines, or at the first row end past :data:`~.lines.GROUP_MAX` lines) and never at the end of
a read: the lines after the last cut wait for the next read, so a group's bytes depend on its
own lines only, and a row changed or inserted moves no other group's boundary.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import zlib
from collections.abc import AsyncIterator
from operator import itemgetter
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
#: a read where at most one line in this many is unsure parses only the rows starting at those
_FEW_QUOTED = 4
_NEWLINE = ord("\n")
#: a line's last two bytes, and last three (``"\r`` ending a line of a CRLF file)
_LAST_TWO, _LAST_THREE = itemgetter(slice(-2, None)), itemgetter(slice(-3, None))


class RowCutter:
    """Cuts the lines of one CSV file, read in order, into groups of whole rows.

    ``head`` (the header's column names) goes with every group: it shapes the records its
    rows make, so a reordered header makes every group new."""

    def __init__(self, *, quotechar: str, delimiter: str, encoding: str, head: bytes,
                 start: tuple[int, int]) -> None:
        self._quote = quotechar.encode(encoding)
        self._delimiter = delimiter.encode(encoding)
        # built once: making it costs more than reading a row
        self._dialect = csv.reader((), delimiter=delimiter, quotechar=quotechar,
                                   strict=True).dialect
        #: whether a line's bytes say if it ends its row (:func:`_ends_row`)
        self._bytewise = (_bytewise(encoding) and len(self._quote) == len(self._delimiter) == 1
                          and self._quote != self._delimiter
                          and not {self._quote, self._delimiter} & {b"\r", b"\n"})
        self._encoding = encoding
        self._head = head
        #: the lines read after the last cut (whole rows, and the start of one), from ``start``
        self._pending: list[bytes | Line] = []
        self.start = start

    def cut(self, lines: list[bytes | Line]) -> list[LineGroup]:
        """The groups that end in ``lines`` (read after everything before)."""
        lines = self._pending + lines if self._pending else lines
        raw_only = set(map(type, lines)) == {bytes}
        cuts = self._cuts(lines, raw_only)
        groups: list[LineGroup] = []
        first = 0
        for cut in cuts:
            taken = lines[first:cut]
            groups.append(self._group(taken, self.start,
                                      plain=raw_only or set(map(type, taken)) == {bytes}))
            self.start, first = groups[-1].end, cut
        self._pending = lines[first:]
        return groups

    def _cuts(self, lines: list[bytes | Line], raw_only: bool) -> list[int]:
        """Where groups end in ``lines`` (counted in lines from their start; ``raw_only``: no
        line is special)."""
        if raw_only:
            raws = cast(list[bytes], lines)
            joined = b"\n".join(raws)
            ends = self._parsed(raws, joined) if self._quote in joined else None
            return (_line_cuts(raws) if ends is None or len(ends) == len(lines)
                    else _row_cuts(lines, ends))
        return _row_cuts(lines, self._row_ends(lines))

    def finish(self) -> list[LineGroup]:
        """At the end of the file: what is left, as one group (a last row without its closing
        quote is refused when decoded, so its group is never kept)."""
        lines, self._pending = self._pending, []
        if not lines:
            return []
        return [self._group(lines, self.start, plain=set(map(type, lines)) == {bytes})]

    def _row_ends(self, lines: list[bytes | Line]) -> list[int]:
        """For each row that surely ends in ``lines``, the number of lines up to its end."""
        ends: list[int] = []
        first = 0
        for i, raw in enumerate(lines):
            if not isinstance(raw, bytes):  # over the limit, or the last line: a row's end
                ends += [first + n for n in self._parsed_bytes(lines[first:i])]
                ends.append(i + 1)
                first = i + 1
        if first < len(lines):
            ends += [first + n for n in self._parsed_bytes(lines[first:])]
        return ends

    def _parsed_bytes(self, lines: list[bytes | Line]) -> list[int]:
        """:meth:`_parsed` of lines between special ones (perhaps none)."""
        raws = cast(list[bytes], lines)
        joined = b"\n".join(raws)
        return self._parsed(raws, joined) if self._quote in joined else list(
            range(1, len(raws) + 1))

    def _parsed(self, lines: list[bytes], joined: bytes) -> list[int]:
        """Where rows end in ``lines`` (read from a row's start; none special; ``joined``: them
        joined with ``\\n``), counted in lines; a row ended by the lines' end (perhaps
        unfinished) is left out. A line that surely ends the row it starts is that row; the
        rows starting at the unsure ones go through the csv module."""
        unsure = [] if self._bytewise and self._all_end_rows(lines) else self._unsure(lines,
                                                                                       joined)
        if unsure is None or len(unsure) * _FEW_QUOTED > len(lines):
            return self._parsed_all(lines)
        if not unsure:
            return list(range(1, len(lines) + 1))
        ends: list[int] = []
        feed = _Feed(lines, self._encoding)
        reader = csv.reader(feed, self._dialect)
        at = 0  # a row starts at this line
        for i in unsure:
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

    def _all_end_rows(self, lines: list[bytes]) -> bool:
        """Every line ends with the quote (then ``\\r`` in a CRLF file) after a byte that is
        neither the quote nor the delimiter: each ends the row it starts (:func:`_ends_row`).
        Found from the lines' last bytes, joined: a few steps of C for the whole read."""
        n, quote = len(lines), self._quote
        crlf = lines[0].endswith(b"\r")
        if not lines[0].endswith(quote + b"\r" if crlf else quote):
            return False
        size = 3 if crlf else 2
        tails = b"".join(map(_LAST_THREE if crlf else _LAST_TWO, lines))
        if len(tails) != size * n or tails[1::size].count(quote) != n:
            return False
        if crlf and tails[2::3].count(b"\r") != n:
            return False
        before = tails[0::size]
        return quote not in before and self._delimiter not in before

    def _unsure(self, lines: list[bytes], joined: bytes) -> list[int] | None:
        """The numbers (from 0) of the lines that may not end the row they start, in order;
        None when most lines hold the quote and the bytes cannot tell (every row then goes
        through the csv module)."""
        quote, many = self._quote, joined.count(self._quote) * _FEW_QUOTED > 2 * len(lines)
        if not self._bytewise:
            return None if many else _quoted_lines(joined, quote)
        q, d = quote[0], self._delimiter[0]
        if many:  # (a quoted cell has two)
            return [i for i, raw in enumerate(lines)
                    if (at := raw.rfind(q)) == 0
                    or (at > 0 and raw[at - 1] in (q, d) and not _ends_row(raw, q, d))]
        return _unsure_among_few(joined, lines, q, d)

    def _parsed_all(self, lines: list[bytes]) -> list[int]:
        """:meth:`_parsed`, every row through the csv module."""
        encoding = self._encoding
        text = [raw.decode(encoding, "surrogateescape") + "\n" for raw in lines]
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


def _bytewise(encoding: str) -> bool:
    """Whether in ``encoding`` an ASCII byte is always that character, and a character's last
    byte is its own (UTF-8, and the code pages of one byte a character)."""
    if codecs.lookup(encoding).name == "utf-8":
        return True
    return len(bytes(range(256)).decode(encoding, "surrogateescape")) == 256


def _ends_row(raw: bytes, quote: int, delimiter: int) -> bool:
    """Whether the csv module (strict, quotes doubled inside quoted fields), reading the line
    ``raw`` from a row's start, is outside a quoted field at its end: the row then ends with
    this line, or failed on it. True when the line's last quote follows a character other
    than the quote and the delimiter: whatever the state before that character, it leaves the
    reader in an unquoted field (the quote is then text), in a quoted one (the quote closes
    it; what follows is the delimiter, the line's end or an error) or failed. True too when
    the last quotes are an empty field ``""`` after a delimiter (or at the line's start) and
    the text before that delimiter leaves the reader outside a quoted field (the same
    question, asked of it). False when unsure: a last quote opening a field at the line's
    start or after a delimiter, or after a run of quotes."""
    end = len(raw)
    while (at := raw.rfind(quote, 0, end)) > 0:
        before = raw[at - 1]
        if before != quote and before != delimiter:
            return True
        if before == delimiter:
            return False
        if at == 1:
            return True
        if raw[at - 2] != delimiter:
            return False
        end = at - 2
    return at < 0


def _unsure_among_few(joined: bytes, lines: list[bytes], quote: int,
                      delimiter: int) -> list[int]:
    """The numbers (from 0) of the lines of ``joined`` that may not end the row they start
    (:func:`_ends_row`), found quote by quote (a read with few quotes: fewer steps than its
    lines); a line's last quote after a byte other than the quote, the delimiter and the
    line's start is enough."""
    found: list[int] = []
    line, before = 0, 0
    at = joined.find(quote)
    while at >= 0:
        line += joined.count(b"\n", before, at)
        end = joined.find(b"\n", at)
        last = joined.rfind(quote, at, len(joined) if end < 0 else end)
        if (last == 0 or joined[last - 1] in (quote, delimiter, _NEWLINE)) and not _ends_row(
                lines[line], quote, delimiter):
            found.append(line)
        if end < 0:
            break
        before, line = end + 1, line + 1
        at = joined.find(quote, before)
    return found


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
