"""The blocking half of a CSV part: rows read from an offset, turned into items in chunks."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO

import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.csv_lines import LongLine, text_lines
from ometria_sync.sources.csv_options import CsvOptions
from ometria_sync.sources.lines import BoundedLines
from ometria_sync.sources.rows import OrderGrouper, RowError, RowMapper

_ROWS_PER_CHUNK = 500


class CsvRowReader:
    """The blocking part: reads rows from an offset and turns them into items.

    Items leave in file order with non-decreasing positions. While an order's rows are being
    grouped, a bad row is held back and leaves after that order, at the order's position:
    a checkpoint never covers rows of an order that was not yet handed over."""

    def __init__(self, path: str, options: CsvOptions, header: list[str],
                 mapper: RowMapper) -> None:
        self._path, self._options, self._header, self._mapper = path, options, header, mapper
        self._grouper = OrderGrouper() if mapper.grouped else None
        self._fh: IO[bytes] | None = None
        self._state = [0, 0]
        self._bad: dict[int, int] = {}
        self._held: list[SourceItem] = []
        self._rows: Iterator[list[str]] = iter(())

    def open_at(self, opener: Callable[[int], IO[bytes]], offset: int, line: int) -> None:
        try:
            self._fh = opener(offset)
        except (OSError, EOFError) as exc:
            raise SourceError(f"{self._path}: cannot open at byte {offset}: {exc}") from exc
        self._state = [offset, line]
        self._lines = BoundedLines(self._fh, self._options.line_limit)
        self._restart()

    def _restart(self) -> None:
        """A CSV reader from where the lines stand (a new one forgets any open quote)."""
        self._rows = csv.reader(text_lines(self._lines, self._state, self._bad,
                                       self._options.line_limit),
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
                if self._grouper is not None:
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
                cells = [c.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                         for c in cells]
                self._refuse(items, first_line, f"invalid UTF-8 (byte {bad[0]} of the line)",
                             self._raw(cells))
                return
        if len(cells) != self._mapper.width:
            self._refuse(items, first_line, f"the row has {len(cells)} cells, the header has "
                                            f"{self._mapper.width}", self._raw(cells))
            return
        try:
            record, item = self._mapper.map_row(cells)
        except RowError as exc:
            self._refuse(items, first_line, str(exc), self._raw(cells))
            return
        position = (self._state[0], self._state[1])
        if self._grouper is None:
            items.append(SourceItem(record=record, position=position, line=first_line))
        else:
            self._hand_over(items, self._grouper.add(record, item, first_line, position,
                                                     cells))

    def _raw(self, cells: list[str]) -> bytes:
        """A refused row for the dead letter: the cells by column name, as JSON."""
        if len(cells) == len(self._header):
            return msgspec.json.encode(dict(zip(self._header, cells, strict=True)))
        return msgspec.json.encode(cells)

    def _refuse(self, items: list[SourceItem], first_line: int, reason: str, raw: bytes) -> None:
        error = SourceItem(record=None, position=(self._state[0], self._state[1]),
                           line=first_line, raw=raw or None, error=reason)
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


def _earlier(position: Position, floor: Position) -> bool:
    """True when the ``(offset, line)`` position lies before ``floor``."""
    return isinstance(position, tuple) and isinstance(floor, tuple) and position < floor
