"""CSV rows in groups, not parsed: where rows end, found in the bytes (change detection's fast
path for nightly full exports, ``pipeline/line_groups.py``).

A row spans lines when a quoted field holds a newline, so a group of lines may only end where
a row ends. Whether a line ends a row depends on one thing, whether it ends inside a quoted
field, and only a line holding the quote byte can change that: a line without one leaves the
state as it was (the common case is found with one search over the whole read). A line with
one is scanned field by field (:func:`ends_quoted`) the way the csv module reads it (strict,
doubled quotes, no escape character). A row the csv module ends with an error (a stray
character after a closing quote, a carriage return inside an unquoted field) ends at the end
of that line, as here: the module drops the rest of the line and starts the next row afresh.

Groups end where the lines say (an Adler-32 of a row's last line, as for JSON Lines, or at
most about :data:`~.lines.GROUP_MAX` lines) and never at the end of a read: the lines after the
last cut wait for the next read, so a group's bytes depend on its own lines only, and a row
changed or inserted moves no other group's boundary.

When the bytes cannot tell (a quoted field that may reach the csv module's field size limit,
where it stops the row with an error this scan would not see), :meth:`RowCutter.cut` stops
before that row and the caller reads the rest of the file row by row, the usual way.
"""

from __future__ import annotations

import asyncio
import csv
import zlib
from collections.abc import AsyncIterator
from zlib import adler32

from ometria_sync.errors import SourceError
from ometria_sync.sources.files.encoding import UTF8
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


def byte_of(char: str, encoding: str) -> int | None:
    """``char`` (the quote or the delimiter) as the one byte that stands for it and never for
    part of another character: any ASCII byte in UTF-8, one below 0x40 in the double-byte code
    pages (their second bytes are 0x40 or above). None: this file cannot be cut in its bytes."""
    raw = char.encode(encoding)
    if len(raw) != 1 or raw in b"\r\n" or (raw[0] >= 0x40 and encoding != UTF8) or raw[0] > 0x7F:
        return None
    return raw[0]


def ends_quoted(line: bytes, quoted: bool, quote: int, delimiter: int) -> bool:
    """True when the csv module, starting ``line`` inside a quoted field (``quoted``) or at
    the start of a field, ends it still inside a quoted field (the row goes on)."""
    pos, end = 0, len(line)
    while True:
        if not quoted:  # at the start of a field
            if pos < end and line[pos] == quote:
                quoted, pos = True, pos + 1
                continue
            stop = line.find(delimiter, pos)
            cr = line.find(b"\r", pos)
            if stop < 0 or 0 <= cr < stop:  # the row ends (or fails) with this line
                return False
            pos = stop + 1
            continue
        close = line.find(quote, pos)
        if close < 0:
            return True
        after = line[close + 1] if close + 1 < end else None
        if after == quote:  # a doubled quote: still inside
            pos = close + 2
        elif after == delimiter:
            quoted, pos = False, close + 2
        else:  # the line's end, a carriage return, or an error: the row ends
            return False


class RowCutter:
    """Cuts the lines of one CSV file, read in order, into groups of whole rows.

    ``head`` (the header's column names) goes with every group: it shapes the records its
    rows make, so a reordered header makes every group new."""

    def __init__(self, quote: int, delimiter: int, head: bytes, start: tuple[int, int]) -> None:
        self._quote, self._delimiter, self._head = quote, delimiter, head
        self._quote_bytes = bytes([quote])
        #: the lines read after the last cut (whole rows, and the start of one), from ``start``
        self._pending: list[bytes | Line] = []
        self.start = start
        #: the bytes could not tell where rows end from :attr:`start` on
        self.unsure = False
        # the csv module refuses a field this long: a row near it is read the usual way
        self._limit = csv.field_size_limit() - 2

    def cut(self, lines: list[bytes | Line]) -> list[LineGroup]:
        """The groups that end in ``lines`` (read after everything before). When the bytes
        cannot tell where a row ends, the groups before it, and :attr:`unsure` is set: read
        the rest row by row from :attr:`start`."""
        lines = self._pending + lines if self._pending else lines
        if set(map(type, lines)) == {bytes} and self._quote_bytes not in b"".join(
                lines):  # type: ignore[arg-type]
            cuts = _line_cuts(lines)  # type: ignore[arg-type]
        else:
            cuts = _row_cuts(lines, self._row_ends(lines))
        groups: list[LineGroup] = []
        first = 0
        for cut in cuts:
            taken = lines[first:cut]
            groups.append(self._group(taken, self.start,
                                      plain=set(map(type, taken)) == {bytes}))
            self.start, first = groups[-1].end, cut
        self._pending = lines[first:]
        return groups

    def finish(self) -> list[LineGroup]:
        """At the end of the file: what is left, as one group always decoded (its last row
        may lack its newline or its closing quote)."""
        lines, self._pending = self._pending, []
        if not lines:
            return []
        return [self._group(lines, self.start, plain=False)]

    def _row_ends(self, lines: list[bytes | Line]) -> list[int]:
        """For each row that ends in ``lines``, the number of lines up to its end (up to a
        row whose end the bytes cannot tell: then :attr:`unsure`)."""
        ends: list[int] = []
        quoted, row = False, 0
        quote, delimiter = self._quote_bytes, self._delimiter
        for i, raw in enumerate(lines, 1):
            if not isinstance(raw, bytes):  # over the limit (a fresh reader after it), or last
                quoted, row = False, 0
                ends.append(i)
                continue
            row += len(raw) + 1
            if quote in raw:
                quoted = ends_quoted(raw, quoted, self._quote, delimiter)
            if not quoted:
                ends.append(i)
                row = 0
            elif row >= self._limit:
                self.unsure = True
                break
        return ends

    def _group(self, lines: list[bytes | Line], start: tuple[int, int], *,
               plain: bool) -> LineGroup:
        end = (start[0] + sum(map(line_size, lines)), start[1] + len(lines))
        return LineGroup(lines, start, end, plain=plain, head=self._head)


async def cut_file(location: Location, cutter: RowCutter, limit: int,
                   label: str) -> AsyncIterator[list[LineGroup]]:
    """The groups of the file at ``location`` from ``cutter.start`` (``limit``: the line cap),
    until its end or until the cutter is unsure. A read error fails the part at the end of
    the last group handed over: the rows after it were not read."""
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
            if cutter.unsure or not read:
                return
            await asyncio.sleep(0)
    finally:
        fh.close()


_MASK = GROUP_LINES - 1


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
