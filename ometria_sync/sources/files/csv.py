"""CSV files or objects, plain or gzip, UTF-8 (a BOM is fine) or the source's ``encoding``,
mapped to records by the stream's mapping.

Position: ``[offset, line]`` after the last row (or the last row of an order) handed over, so a
resumed run reads the header, seeks straight to the offset and still reports true line numbers.
A row that cannot be read (wrong number of cells, bad quoting, bytes not valid in the encoding,
a cell that does not coerce) is dead-lettered with its line and the reason; the file goes on.
A line not valid in the encoding is refused with one reason naming the encoding and the option
(:mod:`.encoding`).

Reading the rows themselves (the options, the header, the blocking row reader) is
:mod:`.csv_rows`; cutting a file into groups of raw rows for change detection, :mod:`.csv_groups`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from itertools import islice
from pathlib import Path
from typing import IO

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import Position, Source, SourceConfig, SourceItem
from ometria_sync.sources.columns import plan_columns
from ometria_sync.sources.files.csv_groups import RowCutter, cut_file
from ometria_sync.sources.files.csv_orders import OrderCutter, OrderIds, SkippedOrders
from ometria_sync.sources.files.csv_rows import (
    CsvOptions,
    CsvRowReader,
    read_header,
)
from ometria_sync.sources.files.lines import BoundedLines, LineGroup
from ometria_sync.sources.files.location import (
    FilePart,
    LocalFile,
    Location,
    check_readable_file,
    head_stream,
    line_start,
    open_object,
)
from ometria_sync.sources.files.store import ObjectInfo
from ometria_sync.sources.mapping import load_zone
from ometria_sync.sources.rows import RowMapper

__all__ = ["CsvOptions", "CsvPart", "CsvSourceConfig", "check_header", "check_object_header",
           "read_header"]


class CsvSourceConfig(CsvOptions, SourceConfig, frozen=True, tag="csv"):
    """``source = { kind = "csv", path = "data/orders.csv.gz", columns = {...} }``"""

    path: str = ""

    def resolve(self, base_dir: Path) -> CsvSourceConfig:
        return msgspec.structs.replace(
            self, path=self.location(self.path).resolved(base_dir))

    def check(self, key: str) -> None:
        self.check_encoding(key)
        if self.check_location(key, "path", self.path):
            self.check_csv(key)
            return
        check_readable_file(f"{key}.path", self.path)
        self.check_csv(key)
        check_header(key, Path(self.path), self)

    async def preflight(self, key: str) -> None:
        found = await self.location(self.path).preflight(f"{key}.path", single=True)
        if found is not None:
            await check_object_header(key, "path", *found, self)

    def open(self) -> Source:
        return self.location(self.path).source(lambda where: CsvPart(where, self))


def check_header(key: str, path: Path, options: CsvOptions) -> None:
    """ConfigError before anything is sent when a mapped column is not in the header."""
    file = LocalFile(path)
    try:
        header, _, _ = read_header(lambda: file.open_at(0), options, file.label)
    except SourceError as exc:
        raise ConfigError(f"{key}.path", str(exc)) from exc
    if header:
        plan_columns(key, options, header, load_zone("timezone", options.timezone))


async def check_object_header(key: str, field: str, info: ObjectInfo, head_bytes: bytes,
                              options: CsvOptions) -> None:
    """ConfigError before anything is sent when a mapped column is not in an object's header,
    read from its first bytes (``head_bytes``), or from the object when they hold no line."""
    def header_from(opener: Callable[[], IO[bytes]]) -> list[str]:
        return read_header(opener, options, str(info.url))[0]

    # a plain head holds the header when it holds a line end (or the whole object); a gzip
    # head cut before the header's end raises EOFError, a SourceError here
    whole = b"\n" in head_bytes or len(head_bytes) == info.size
    header: list[str] | None = None
    try:
        if whole or head_bytes.startswith(b"\x1f\x8b"):
            with contextlib.suppress(SourceError):
                header = await asyncio.to_thread(header_from, lambda: head_stream(head_bytes))
        if header is None:
            header = await asyncio.to_thread(
                header_from, lambda: open_object(info, options.store, 0))
    except SourceError as exc:
        raise ConfigError(f"{key}.{field}", str(exc)) from exc
    if header:
        plan_columns(key, options, header, load_zone("timezone", options.timezone))


class CsvPart(FilePart):
    """One CSV file or object of a stream.

    A local file can also be read as groups of raw rows (:meth:`read_groups`, change
    detection's fast path; :mod:`.csv_groups`), in groups of whole orders when its rows are
    folded into orders whose id is one plain text cell (:mod:`.csv_orders`; other orders are
    read the usual way)."""

    def __init__(self, location: Location, options: CsvOptions, key: str = "") -> None:
        super().__init__(location, key, options.codec)
        self._options = options
        self._zone: dt.tzinfo = load_zone("timezone", options.timezone)
        self._decoder: CsvRowReader | None = None  # the rows of groups read_groups gave
        self._orders: OrderIds | None = None  # their order ids, when folded into orders
        #: the orders of groups skipped by their ids' hashes (when the mapping sets no
        #: collection: an order's id hash is then its id's)
        self._skipped: SkippedOrders | None = None
        self._exact = False  # a group was skipped with its order ids read (OrderIds.orders)

    async def _read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        opened = await self._open(start)
        if opened is None:
            return
        reader, offset, line = opened
        async for chunk in self._rows(reader, offset, line):
            yield chunk

    async def _open(self, start: Position | None) -> tuple[CsvRowReader, int, int] | None:
        """A row reader for the file's header and mapping, and the ``(offset, line)`` to
        read from; None for an empty file."""
        location = self.location
        header, offset, line = await asyncio.to_thread(
            read_header, lambda: location.open_at(0), self._options, self.label)
        if not header:
            return None
        try:
            columns = plan_columns("columns", self._options, header, self._zone)
        except ConfigError as exc:
            raise SourceError(f"{self.label}: {exc}") from exc
        mapper = RowMapper(columns, self._options.constants, self._zone, len(header))
        if start:
            offset, line = line_start(start, self.label)
        return CsvRowReader(self.label, self._options, header, mapper), offset, line

    async def _rows(self, reader: CsvRowReader, offset: int,
                    line: int) -> AsyncIterator[list[SourceItem]]:
        location = self.location
        try:
            await asyncio.to_thread(reader.open_at, location.open_at, offset, line)
            while True:
                # Chunks are parsed on the event loop's own thread, a few milliseconds each:
                # parsing in a worker thread measured a third slower (the GIL, and records
                # built on one core and validated on the other). Objects in a store are
                # parsed in one: the network must never stall the event loop.
                if location.blocking_reads:
                    chunk = await asyncio.to_thread(reader.read_chunk)
                else:
                    chunk = reader.read_chunk()
                if chunk is None:
                    return
                if chunk:
                    yield chunk
                await asyncio.sleep(0)
        finally:
            reader.close()

    def read_groups(self, start: Position | None
                    ) -> AsyncIterator[list[LineGroup] | list[SourceItem]] | None:
        """The rows from ``start`` in groups, not parsed (:meth:`decode` what must be read);
        None for an object in a store. Rows folded into orders whose id is not one plain
        text cell come as items, read the usual way."""
        if not isinstance(self.location, LocalFile):
            return None
        return self._groups(start)

    def decode(self, group: LineGroup) -> list[SourceItem]:
        """The items of a group :meth:`read_groups` gave."""
        assert self._decoder is not None, "decode before read_groups"
        return self._decoder.read_lines(group.lines, *group.start, finish=not group.open_end)

    def skip(self, group: LineGroup) -> bool:
        """Whether a group Ometria holds as it is may be skipped (in read order, instead of
        :meth:`decode`): yes, unless its rows are folded into orders and one of them appeared
        before (decoded, it is refused as not consecutive), an order is being built, or their
        ids are neither given (``group.held``: their hashes, :class:`.csv_orders.SkippedOrders`)
        nor read cheaply. A skipped group's orders are noted for that refusal."""
        if self._orders is None:
            return True
        assert self._decoder is not None, "skip before read_groups"
        if self._decoder.building:
            return False
        skipped = self._skipped
        if skipped is not None and group.held is not None and not self._exact:
            return skipped.passed(group, group.held)
        if skipped is not None and skipped.any:  # the two ways are never mixed
            return False
        orders = self._orders.orders(group.lines, group.start[1])
        passed = orders is not None and self._decoder.passed(orders)
        self._exact |= passed
        return passed

    def _reread(self, start: tuple[int, int], end: tuple[int, int]) -> dict[str, int]:
        """The orders of a group skipped earlier (``SkippedOrders``), read again (blocking:
        rare, and one group's bytes of a local file)."""
        assert self._decoder is not None, "reread before read_groups"
        with self.location.open_at(start[0]) as fh:
            lines = list(islice(BoundedLines(fh, self._options.line_limit), end[1] - start[1]))
        if len(lines) != end[1] - start[1]:
            raise SourceError(f"{self.label}: changed while read (line {start[1]} on)")
        return self._decoder.orders_of(lines, *start)

    async def _groups(self, start: Position | None
                      ) -> AsyncIterator[list[LineGroup] | list[SourceItem]]:
        opened = await self._open(start)
        if opened is None:
            return
        reader, offset, line = opened
        options = self._options
        head = "\x00".join(reader.header).encode("utf-8", "surrogateescape")
        cell = reader.mapper.order_id_cell() if reader.grouped else None
        if reader.grouped and cell is None:  # orders of another id: read the usual way
            async for chunk in self._rows(reader, offset, line):
                yield chunk
            return
        self._decoder = reader
        cutter: RowCutter
        if cell is None:
            cutter = RowCutter(quotechar=options.quotechar, delimiter=options.delimiter,
                               encoding=self.encoding, head=head, start=(offset, line))
        else:
            self._orders = OrderIds(index=cell[0], width=len(reader.header), trim=cell[1],
                                    delimiter=options.delimiter, quotechar=options.quotechar,
                                    encoding=self.encoding,
                                    mapped=lambda cells: reader.mapper.map_row(cells)[0])
            self._skipped, self._exact = None, False
            if not reader.mapper.sets_collection():
                self._skipped = SkippedOrders(self._reread)
                reader.skipped = self._skipped.read
            cutter = OrderCutter(self._orders, quotechar=options.quotechar,
                                 delimiter=options.delimiter, encoding=self.encoding,
                                 head=head, start=(offset, line))
        async for groups in cut_file(self.location, cutter, self._options.line_limit,
                                     self.label):
            yield groups
