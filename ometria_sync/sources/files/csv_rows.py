"""Reading a CSV file's rows: the options, the header, and :class:`CsvRowReader`, the
blocking half of a part (rows read from an offset, turned into items in chunks).

The csv module takes text lines; :func:`text_lines` feeds it from
:class:`~.lines.BoundedLines`, counting bytes and lines as it goes (the positions), escaping
bytes not valid in the encoding (recorded, so the row is refused with the reason) and raising
:class:`LongLine` for a line over the cap (so the row is refused, never held whole).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.columns import RowError, check_columns
from ometria_sync.sources.files.encoding import UTF8, shown, undecodable
from ometria_sync.sources.files.lines import BoundedLines, Line, over_limit
from ometria_sync.sources.files.location import (
    FileSettings,
)
from ometria_sync.sources.mapping import ColumnSpec, load_zone
from ometria_sync.sources.rows import OrderGrouper, RowMapper

_BOM = "\ufeff"
_ROWS_PER_CHUNK = 500


class CsvOptions(FileSettings, frozen=True):
    """The keys of a CSV source beyond the file's: the mapping from rows to records, and the
    CSV dialect."""

    #: column -> field path (a string) or ``{ field = ..., type = ..., values = ...,
    #: default = ..., expr = ..., on_error = ..., trim = ... }`` (sources/columns.py)
    columns: dict[str, str | ColumnSpec] = msgspec.field(default_factory=dict)
    drop: list[str] = msgspec.field(default_factory=list)
    constants: dict[str, Any] = msgspec.field(default_factory=dict)
    #: zone for timestamps written without an offset (an IANA name)
    timezone: str = "UTC"
    delimiter: str = ","
    quotechar: str = '"'

    def check_csv(self, key: str) -> None:
        if len(self.delimiter) != 1:
            raise ConfigError(f"{key}.delimiter", f"must be one character, got {self.delimiter!r}")
        if len(self.quotechar) != 1:
            raise ConfigError(f"{key}.quotechar", f"must be one character, got {self.quotechar!r}")
        check_columns(key, self.columns, load_zone(f"{key}.timezone", self.timezone))


class LongLine(Exception):
    """A physical line over the limit: the row it is part of is refused, reading goes on
    after it (with a fresh CSV reader: a quote left open in it must not swallow later rows)."""

    def __init__(self, line: Line, limit: int) -> None:
        super().__init__(over_limit(line.length, limit))
        self.prefix = line.body


def text_lines(lines: Iterable[bytes | Line], state: list[int], bad: dict[int, str],
               limit: int, encoding: str = UTF8) -> Iterator[str]:
    """The file's lines as text for the csv module, counting bytes and lines in ``state``
    ([offset, line]); a line not valid in ``encoding`` is recorded in ``bad`` (line -> the
    reason) and its bad bytes escaped; a line over ``limit`` bytes raises :class:`LongLine`
    (with the state already past it)."""
    for line in lines:
        state[1] += 1
        if isinstance(line, bytes):
            state[0] += len(line) + 1
            raw = line + b"\n"
        else:
            state[0] += line.size
            if line.over:
                raise LongLine(line, limit)
            raw = line.body  # the last line, without a newline
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as exc:
            bad[state[1]] = undecodable(encoding, exc)
            yield raw.decode(encoding, "surrogateescape")


def read_header(opener: Callable[[], IO[bytes]], options: CsvOptions,
                name: str) -> tuple[list[str], int, int]:
    """The header's column names and the [offset, line] after it; ([], 0, 0) for an empty
    file. Raises SourceError (starting with ``name``) when the header cannot be read.
    ``opener``: the bytes from the start."""
    try:
        with opener() as fh:
            state = [0, 0]
            bad: dict[int, str] = {}
            lines = BoundedLines(fh, options.line_limit)
            reader = csv.reader(text_lines(lines, state, bad, options.line_limit, options.codec),
                                delimiter=options.delimiter, quotechar=options.quotechar,
                                strict=True)
            header = next(reader, None)
    except (OSError, EOFError, csv.Error, LongLine) as exc:
        raise SourceError(f"{name}: cannot read the CSV header: {exc}") from exc
    if header is None:
        return [], 0, 0
    if bad:
        raise SourceError(f"{name}: the header is {bad[min(bad)]}")
    if header and header[0].startswith(_BOM):
        header[0] = header[0][len(_BOM):]
    names = [name.strip() for name in header]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceError(f"{name}: duplicate columns in the header: {', '.join(duplicates)}")
    return names, state[0], state[1]


def _earlier(position: Position, floor: Position) -> bool:
    """True when the ``(offset, line)`` position lies before ``floor``."""
    return isinstance(position, tuple) and isinstance(floor, tuple) and position < floor


class CsvRowReader:
    """The blocking part: reads rows from an offset and turns them into items.

    Items leave in file order with non-decreasing positions. While an order's rows are being
    grouped, a bad row is held back and leaves after that order, at the order's position:
    a checkpoint never covers rows of an order that was not yet handed over."""

    def __init__(self, path: str, options: CsvOptions, header: list[str],
                 mapper: RowMapper) -> None:
        self._path, self._options, self._header, self._mapper = path, options, header, mapper
        #: the header's column names; the mapping; whether rows are folded into orders
        self.header, self.mapper, self.grouped = header, mapper, mapper.grouped
        self._grouper = OrderGrouper() if mapper.grouped else None
        self._fh: IO[bytes] | None = None
        self._state = [0, 0]
        self._bad: dict[int, str] = {}
        self._encoding = options.codec
        self._held: list[SourceItem] = []
        self._rows: Iterator[list[str]] = iter(())
        self._lines: Iterator[bytes | Line] = iter(())
        self._finish = True  # at the end of the lines, finish the order being built
        #: for an order id read, the orders to note of a group skipped undecoded that held it
        #: (``csv_orders.SkippedOrders.read``), when groups are skipped by their ids' hashes
        self.skipped: Callable[[str], dict[str, int] | None] | None = None
        self._last_id: object = None

    def open_at(self, opener: Callable[[int], IO[bytes]], offset: int, line: int) -> None:
        try:
            self._fh = opener(offset)
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self._path}: cannot open at byte {offset}: {exc}") from exc
        self._state = [offset, line]
        self._lines = BoundedLines(self._fh, self._options.line_limit)
        self._restart()

    def read_lines(self, lines: list[bytes | Line], offset: int, line: int, *,
                   finish: bool = True) -> list[SourceItem]:
        """The items of ``lines``, whole rows read from ``(offset, line)`` (a group of
        :mod:`.csv_groups` or :mod:`.csv_orders`); an order still being built at their end
        is finished, unless ``finish`` is False (it goes on in the next lines read)."""
        self._state, self._bad = [offset, line], {}
        self._lines = iter(lines)
        self._restart()
        self._finish = finish
        items: list[SourceItem] = []
        try:
            while (chunk := self.read_chunk()) is not None:
                items += chunk
        finally:
            self._finish = True
        return items

    def passed(self, orders: dict[str, int]) -> bool:
        """``OrderGrouper.passed``: the orders of a group skipped undecoded."""
        return self._grouper is not None and self._grouper.passed(orders)

    @property
    def building(self) -> bool:
        """An order is being built (its rows may go on in the next lines)."""
        return self._grouper is not None and self._grouper.open

    def orders_of(self, lines: list[bytes | Line], offset: int, line: int) -> dict[str, int]:
        """The orders of ``lines`` (whole orders, read from ``(offset, line)``) as the row-by-row
        read notes them: each id and the first line of its last row (read by a reader of
        their own: this one's state is untouched)."""
        reader = CsvRowReader(self._path, self._options, self._header, self._mapper)
        reader.read_lines(lines, offset, line)
        assert reader._grouper is not None, "orders_of without orders"
        return reader._grouper.seen

    def _restart(self) -> None:
        """A CSV reader from where the lines stand (a new one forgets any open quote)."""
        self._rows = csv.reader(text_lines(self._lines, self._state, self._bad,
                                           self._options.line_limit, self._encoding),
                                delimiter=self._options.delimiter,
                                quotechar=self._options.quotechar, strict=True)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def read_chunk(self) -> list[SourceItem] | None:
        """Up to ``_ROWS_PER_CHUNK`` rows as items; None at the end of the file."""
        items: list[SourceItem] = []
        for _ in range(_ROWS_PER_CHUNK):
            first_line = self._state[1] + 1
            try:
                cells = next(self._rows, None)
            except csv.Error as exc:
                self._refuse(items, first_line, f"malformed CSV: {exc}", b"")
                continue
            except LongLine as exc:
                where = "" if self._state[1] == first_line else f" (line {self._state[1]})"
                self._refuse(items, first_line, f"{exc}{where}", exc.prefix)
                self._restart()
                continue
            except (OSError, EOFError) as exc:
                raise SourceError(f"{self._path}: unreadable after line {self._state[1]} "
                                  f"(byte {self._state[0]}): {exc}") from exc
            if cells is None:
                if self._grouper is not None and self._finish:
                    self._hand_over(items, self._grouper.finish())
                return items or None
            self._take(cells, first_line, items)
        return items

    def _take(self, cells: list[str], first_line: int, items: list[SourceItem]) -> None:
        if not any(cells):
            return  # a blank line
        if self._bad:
            bad = [self._bad.pop(n) for n in range(first_line, self._state[1] + 1)
                   if n in self._bad]
            if bad:  # the undecodable bytes show as U+FFFD in the dead letter
                cells = [shown(c, self._encoding) for c in cells]
                self._refuse(items, first_line, bad[0], self._raw(cells))
                return
        if len(cells) != self._mapper.width:
            self._refuse(items, first_line, f"the row has {len(cells)} cells, the header has "
                                            f"{self._mapper.width}", self._raw(cells))
            return
        try:
            record, item, warnings = self._mapper.map_row(cells)
        except RowError as exc:
            self._refuse(items, first_line, str(exc), self._raw(cells),
                         self._mapper.record_id(cells))
            return
        position = (self._state[0], self._state[1])
        if self._grouper is None:
            items.append(SourceItem(record=record, position=position, line=first_line,
                                    warnings=warnings))
        else:
            order_id = record.get("id")
            if self.skipped is not None and order_id != self._last_id:
                self._last_id = order_id
                found = self.skipped(order_id) if isinstance(order_id, str) else None
                if found:  # as if the skipped group had been read: the row is refused
                    self._grouper.seen.update(found)
            self._hand_over(items, self._grouper.add(record, item, first_line, position,
                                                     cells, warnings))

    def _raw(self, cells: list[str]) -> bytes:
        """A refused row for the dead letter: the cells by column name, as JSON."""
        if len(cells) == len(self._header):
            return msgspec.json.encode(dict(zip(self._header, cells, strict=True)))
        return msgspec.json.encode(cells)

    def _refuse(self, items: list[SourceItem], first_line: int, reason: str, raw: bytes,
                record_id: str | None = None) -> None:
        error = SourceItem(record=None, position=(self._state[0], self._state[1]),
                           line=first_line, raw=raw or None, error=reason, id=record_id)
        if self._grouper is not None and self._grouper.open:
            self._held.append(error)
        else:
            items.append(error)

    def _hand_over(self, items: list[SourceItem], done: list[SourceItem]) -> None:
        """Finished orders, then the bad rows held while they were open."""
        items += done
        if self._held and (done or not (self._grouper and self._grouper.open)):
            floor = done[-1].position if done else None
            for error in self._held:
                if floor is not None and _earlier(error.position, floor):
                    error.position = floor
            items += self._held
            self._held = []
