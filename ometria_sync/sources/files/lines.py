"""Lines of a file, each capped: memory stays flat whatever the input.

``readline()`` and ``readlines()`` hold a whole line, and a 51 MB line without a newline took
530 MB. :class:`BoundedLines` reads blocks and splits them itself: it never holds more than one
block plus ``limit`` bytes of one line. A line comes out as its bytes without the ``\n`` (the
common case, fast: it takes ``len + 1`` bytes in the file), or as a :class:`Line` when it is
special: longer than the limit (``over``: only its first :data:`PREFIX_BYTES` and its full
length; the rest was skipped block by block), or the last line, without a newline. So byte
offsets, and the positions and checkpoints made of them, stay exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import IO, Annotated, NamedTuple, cast
from zlib import adler32

import msgspec

from ometria_sync.sources.base import SourceItem

#: the default of ``[run] max_line_bytes``: Ometria takes 60 KB per record, so 1 MB is generous
DEFAULT_MAX_LINE_BYTES = 1 << 20
#: the setting's type: at least 1 KB (a record is rarely smaller), at most 1 GB
MaxLineBytes = Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)]
#: bytes read at a time
BLOCK_BYTES = 256 * 1024
#: how much of an over-long line is kept (for the dead letter)
PREFIX_BYTES = 1024


class Line(NamedTuple):
    """One line: ``body`` without its ``\\n`` (only the first PREFIX_BYTES when ``over``),
    ``size`` the bytes it takes in the file, ``length`` the body's full length."""

    body: bytes
    size: int
    length: int
    over: bool = False


def over_limit(length: int, limit: int) -> str:
    """``line is 53477376 bytes, over the 1 MB limit``."""
    return f"line is {length} bytes, over the {format_bytes(limit)} limit"


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def line_size(line: bytes | Line) -> int:
    """The bytes a line takes in the file, its ending included."""
    return len(line) + 1 if isinstance(line, bytes) else line.size


class BoundedLines:
    """The lines of ``fh`` from where it stands, none longer than ``limit`` bytes (without its
    line ending). Read errors propagate, after every line before them was handed out."""

    def __init__(self, fh: IO[bytes], limit: int, block: int = BLOCK_BYTES) -> None:
        self._fh = fh
        self._limit = limit
        self._block = block
        read1 = getattr(fh, "read1", None)  # one decompression step at a time for gzip:
        self._read = read1 if read1 is not None else fh.read  # no data lost before an error
        self._ready: deque[bytes | Line] = deque()
        self._ready_bytes = 0
        self._carry = b""  # the start of a line whose end is not read yet (<= limit)
        self._skipped: int | None = None  # bytes so far of an over-long line being skipped
        self._prefix = b""
        self._eof = False
        self._error: Exception | None = None  # raised once the lines before it are out

    def read(self, hint: int) -> list[bytes | Line]:
        """The next lines, about ``hint`` bytes of them (at least one unless at the end); a
        read error is raised by the call after the one that returned the lines before it."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        try:
            while self._ready_bytes < hint and not self._eof:
                self._fill()
        except Exception as exc:
            if not self._ready:
                raise
            self._error = exc
        lines = list(self._ready)
        self._ready.clear()
        self._ready_bytes = 0
        return lines

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> bytes | Line:
        while not self._ready:
            if self._eof:
                raise StopIteration
            self._fill()
        line = self._ready.popleft()
        self._ready_bytes -= line_size(line)
        return line

    def _add(self, line: Line) -> None:
        self._ready.append(line)
        self._ready_bytes += line.size

    def _flag(self, body: bytes) -> bytes | Line:
        n = len(body)
        return Line(body[:PREFIX_BYTES], n + 1, n, True) if n > self._limit else body

    def _fill(self) -> None:
        block = self._read(self._block)
        if not block:
            self._eof = True
            if self._skipped is not None:
                self._add(Line(self._prefix, self._skipped, self._skipped, True))
            elif self._carry:
                self._add(Line(self._carry, len(self._carry), len(self._carry)))
            self._carry, self._skipped = b"", None
            return
        start = 0
        if self._skipped is not None:
            end = block.find(b"\n")
            if end < 0:
                self._skipped += len(block)
                return
            length = self._skipped + end
            self._add(Line(self._prefix, length + 1, length, True))
            self._skipped, start = None, end + 1
        data = block[start:] if start else block
        if self._carry:
            data = self._carry + data
        bodies = data.split(b"\n")
        self._carry = bodies.pop()
        if bodies:
            self._ready_bytes += len(data) - len(self._carry)
            if max(map(len, bodies)) <= self._limit:
                self._ready.extend(bodies)
            else:
                self._ready.extend(self._flag(body) for body in bodies)
        if len(self._carry) > self._limit:
            self._prefix, self._skipped = self._carry[:PREFIX_BYTES], len(self._carry)
            self._carry = b""


# -------------------------------------------------------------------------------------------------
# Lines in groups, not decoded: the change filter's fast path for nightly full exports.
#
# A group ends after a line whose checksum says so (Adler-32's low bits: about one line in
# GROUP_LINES, whatever the lines look like), or after GROUP_MAX lines: where a group ends
# depends only on its own lines, so a line inserted or changed in an export moves no boundary
# but its own group's (and a capped run's), and every other group is byte for byte the one
# read the night before. ``plain`` is False for a group
# holding a line that cannot be taken as it is (over the limit, or the last line without its
# newline): such a group is always decoded.
# -------------------------------------------------------------------------------------------------

#: a group ends after about one line in this many (a power of two) ...
GROUP_LINES = 32
#: ... and after this many lines at most
GROUP_MAX = 128


class LineGroup(msgspec.Struct, gc=False):
    """Consecutive lines as read (``bytes``, or :class:`Line` when special), the ``(offset,
    line)`` positions before and after them."""

    lines: list[bytes | Line]
    start: tuple[int, int]
    end: tuple[int, int]
    plain: bool = True
    #: what else shapes the records of these lines (a CSV file's header), hashed with them
    head: bytes = b""
    #: the last rows are of an order that goes on in the next group (a CSV file whose rows
    #: are folded into orders, cut inside a long order: never plain)
    open_end: bool = False
    #: set by change detection before asking to skip a group Ometria holds: the id hashes of
    #: the records its lines made when it was kept, when those are the ids as read (no
    #: transform); else None
    held: Sequence[int] | None = None


def group_lines(lines: list[bytes | Line], offset: int, line: int) -> list[LineGroup]:
    """``lines`` (read from ``(offset, line)``) cut into groups; the last group ends with
    them (a group never spans two reads: a read ends on a line boundary)."""
    if set(map(type, lines)) != {bytes}:
        return _group_special(lines, offset, line)
    mask = GROUP_LINES - 1
    plain = cast(list[bytes], lines)
    cuts = [i for i, raw in enumerate(plain, 1) if not adler32(raw) & mask]
    if not cuts or cuts[-1] != len(plain):
        cuts.append(len(plain))
    groups: list[LineGroup] = []
    start, first = (offset, line), 0
    for cut in cuts:
        while cut - first > GROUP_MAX:
            start = _add(groups, lines, first, first + GROUP_MAX, start)
            first += GROUP_MAX
        start = _add(groups, lines, first, cut, start)
        first = cut
    return groups


def _add(groups: list[LineGroup], lines: list[bytes | Line], first: int, cut: int,
         start: tuple[int, int]) -> tuple[int, int]:
    """Add the plain group ``lines[first:cut]``; the position after it."""
    taken = lines[first:cut]
    end = (start[0] + sum(map(len, taken)) + len(taken), start[1] + len(taken))
    groups.append(LineGroup(taken, start, end))
    return end


def _group_special(lines: list[bytes | Line], offset: int, line: int) -> list[LineGroup]:
    """:func:`group_lines` when a line is special: a group ends with it, not plain."""
    groups: list[LineGroup] = []
    start, first = (offset, line), 0
    for i, raw in enumerate(lines):
        if isinstance(raw, Line):
            if i > first:
                start = _add(groups, lines, first, i, start)
            end = (start[0] + raw.size, start[1] + 1)
            groups.append(LineGroup([raw], start, end, plain=False))
            start, first = end, i + 1
    if first < len(lines):
        groups.extend(group_lines(lines[first:], *start))
    return groups


class RawLines(msgspec.Struct, gc=False):
    """Whole lines of a JSON Lines file handed over undecoded, for the batcher's typed lane
    (``schemas/typed_lane.py``): ``bodies`` as read (no ``\n``; a ``\r`` or a blank line is
    left for the lane to refuse), ``ends`` the position after each (``(offset, line)``, as
    the line's item would carry), and ``decode(first, last)`` the usual items of the lines
    ``bodies[first:last]``, for lines the lane refuses."""

    bodies: list[bytes]
    ends: list[tuple[int, int]]
    decode: Callable[[int, int], list[SourceItem]]


def line_ends(lines: list[bytes], offset: int, line: int) -> list[tuple[int, int]]:
    """The ``(offset, line)`` after each of ``lines`` (whole lines, read from ``(offset,
    line)``), without a Python step per line."""
    offsets = accumulate(map((1).__add__, map(len, lines)), initial=offset)
    next(offsets)
    return list(zip(offsets, range(line + 1, line + 1 + len(lines)), strict=True))
