"""CSV files, plain or gzip, UTF-8 (a BOM is fine), mapped to records by the stream's mapping.

Position: ``[offset, line]`` after the last row (or the last row of an order) handed over, so a
resumed run reads the header, seeks straight to the offset and still reports true line numbers.
A row that cannot be read (wrong number of cells, bad quoting, invalid UTF-8, a cell that does
not coerce) is dead-lettered with its line and the reason; the file goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import (
    LazyPartSource,
    Position,
    SinglePartSource,
    Source,
    SourceConfig,
    SourceItem,
    SourcePart,
)
from ometria_sync.sources.csv_lines import read_header
from ometria_sync.sources.csv_options import CsvOptions
from ometria_sync.sources.csv_rows import CsvRowReader
from ometria_sync.sources.files import (
    LocalFile,
    check_readable_file,
    resolve_path,
)
from ometria_sync.sources.mapping import load_zone, plan_columns
from ometria_sync.sources.object_parts import (
    ObjectPart,
    finished,
    head_stream,
    mark_end,
    nothing,
    object_info,
    open_object,
    preflight_objects,
)
from ometria_sync.sources.objects import ObjectInfo, ObjectUrl, is_object_url
from ometria_sync.sources.rows import RowMapper

#: CsvOptions is the CSV source's too (declared apart so the line and row readers can take it)
__all__ = ["CsvFile", "CsvObject", "CsvOptions", "CsvSourceConfig", "check_header",
           "check_object_header"]


class CsvSourceConfig(CsvOptions, SourceConfig, frozen=True, tag="csv"):
    """``source = { kind = "csv", path = "data/orders.csv.gz", columns = {...} }``"""

    path: str = ""

    def resolve(self, base_dir: Path) -> CsvSourceConfig:
        if is_object_url(self.path):
            return self
        return msgspec.structs.replace(self, path=resolve_path(base_dir, self.path))

    def check(self, key: str) -> None:
        if self.check_location(key, "path", self.path):
            self.check_csv(key)
            return
        check_readable_file(f"{key}.path", self.path)
        self.check_csv(key)
        check_header(key, Path(self.path), self)

    async def preflight(self, key: str) -> None:
        if is_object_url(self.path):
            first, head_bytes = await preflight_objects(f"{key}.path", self.path, self.store,
                                                        single=True)
            await check_object_header(key, "path", first, head_bytes, self)

    def open(self) -> Source:
        if is_object_url(self.path):
            url, store = ObjectUrl.parse(self.path), self.store

            async def part() -> SourcePart:
                return CsvObject(await object_info(url, store), self)
            return LazyPartSource(part)
        return SinglePartSource(CsvFile(Path(self.path), self))


def check_header(key: str, path: Path, options: CsvOptions) -> None:
    """ConfigError before anything is sent when a mapped column is not in the header."""
    try:
        header, _, _ = read_header(path, options)
    except SourceError as exc:
        raise ConfigError(f"{key}.path", str(exc)) from exc
    if header:
        plan_columns(key, options, header)


async def check_object_header(key: str, field: str, info: ObjectInfo, head_bytes: bytes,
                              options: CsvOptions) -> None:
    """ConfigError before anything is sent when a mapped column is not in an object's header,
    read from its first bytes (``head_bytes``), or from the object when they hold no line."""
    def header_from(opener: Callable[[], IO[bytes]]) -> list[str]:
        return read_header(Path(info.url.key), options, opener, str(info.url))[0]

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
        plan_columns(key, options, header)


class CsvFile(LocalFile):
    """One CSV file of a stream."""

    def __init__(self, path: Path, options: CsvOptions, key: str = "") -> None:
        super().__init__(path, key)
        self._options = options
        self._zone: dt.tzinfo = load_zone("timezone", options.timezone)

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        header, offset, line = await asyncio.to_thread(
            read_header, self._path, self._options, lambda: self._open_at(0), self.label)
        if not header:
            return
        try:
            columns = plan_columns("columns", self._options, header)
        except ConfigError as exc:
            raise SourceError(f"{self.label}: {exc}") from exc
        mapper = RowMapper(columns, self._options.constants, self._zone, len(header))
        if start:
            offset, line = self._start(start)
        reader = CsvRowReader(self.label, self._options, header, mapper)
        try:
            await asyncio.to_thread(reader.open_at, self._open_at, offset, line)
            while True:
                # Chunks are parsed on the event loop's own thread, a few milliseconds each:
                # parsing in a worker thread measured a third slower (the GIL, and records
                # built on one core and validated on the other). Objects in a store are
                # parsed in one: the network must never stall the event loop.
                if self.blocking_reads:
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


class CsvObject(ObjectPart, CsvFile):
    """One CSV object in a store, parsed like a local file."""

    def __init__(self, info: ObjectInfo, options: CsvOptions, key: str = "") -> None:
        super().__init__(Path(info.url.key), options, key)
        self._info, self._store = info, options.store

    def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        """As a file's; a checkpoint after the last item skips the object unread."""
        return nothing() if finished(start) else mark_end(super().read(start))
