"""JSON Lines files or objects, plain or gzip: one Ometria-shaped JSON object per line, in
UTF-8 or the source's ``encoding``.

Position: ``[offset, line]``, the uncompressed byte offset of the next line and the number of
lines before it, so a resumed run seeks straight there and still reports true line numbers.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar, cast

import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.sources.base import Position, Source, SourceConfig, SourceItem
from ometria_sync.sources.files.encoding import UTF8, shown, undecodable
from ometria_sync.sources.files.encoding import decode_line as decode_text
from ometria_sync.sources.files.lines import (
    DEFAULT_MAX_LINE_BYTES,
    BoundedLines,
    Line,
    LineGroup,
    RawLines,
    group_lines,
    line_ends,
    over_limit,
)
from ometria_sync.sources.files.location import (
    FilePart,
    FileSettings,
    LocalFile,
    Location,
    check_readable_file,
    line_start,
)

_CHUNK_BYTES = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_decode = msgspec.json.Decoder().decode
T = TypeVar("T")
#: reads one chunk from a position: (the chunk, the position after it; offset -1: the end)
_Make = Callable[[BoundedLines, int, int], tuple[list[T], int, int]]


class JsonlSourceConfig(FileSettings, SourceConfig, frozen=True, tag="jsonl"):
    """``source = { kind = "jsonl", path = "data/contacts.jsonl" }``; gzip read transparently.
    ``path`` may be an ``s3://`` or ``gs://`` URL."""

    path: str

    def resolve(self, base_dir: Path) -> JsonlSourceConfig:
        return msgspec.structs.replace(
            self, path=self.location(self.path).resolved(base_dir))

    def check(self, key: str) -> None:
        self.check_encoding(key)
        if self.check_location(key, "path", self.path):
            return
        check_readable_file(f"{key}.path", self.path)

    async def preflight(self, key: str) -> None:
        await self.location(self.path).preflight(f"{key}.path", single=True)

    def open(self) -> Source:
        limit, encoding = self.line_limit, self.codec
        return self.location(self.path).source(
            lambda where: JsonlPart(where, max_line_bytes=limit, encoding=encoding))


def decode_line(raw: bytes | str) -> tuple[object, str | None]:
    """Decode one JSON line (its UTF-8 bytes, or its text): (value, None), or (None, reason)
    when it is not valid JSON."""
    try:
        return _decode(raw), None
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:  # DecodeError: ValidationError too
        return None, _why_not_json(raw, exc)
    except RecursionError:
        return None, "invalid JSON: nested too deeply"


def _why_not_json(raw: bytes | str, exc: Exception) -> str:
    """The reason a line is not JSON, found in the line itself.

    Invalid UTF-8 is checked here rather than told apart by the exception: msgspec up to 0.22
    raises ``UnicodeDecodeError`` for it, 0.23 a ``DecodeError``, and neither names the byte
    in the line."""
    if isinstance(raw, bytes):
        try:
            raw.decode(UTF8)
        except UnicodeDecodeError as bad:
            return undecodable(UTF8, bad)
    return f"invalid JSON: {exc}"


def decode_encoded(raw: bytes, encoding: str) -> tuple[object, str | bytes, str | None]:
    """Decode one JSON line in a text encoding other than UTF-8: (value, text, None), or
    (None, what to show of the line, reason)."""
    text, reason = decode_text(raw, encoding)
    if reason is not None:
        return None, shown(text, encoding), reason
    value, reason = decode_line(text)
    return value, text, reason


def _read_lines(lines: BoundedLines, hint: int
                ) -> tuple[list[bytes | Line], BaseException | None]:
    """About ``hint`` bytes of whole lines, and the read error that stopped it, if any: a
    truncated gzip still yields every line before the break."""
    try:
        return lines.read(hint), None
    except (EOFError, OSError, zlib.error) as exc:
        return [], exc


class JsonlPart(FilePart):
    """One JSON Lines file or object. Blank lines are skipped; a BOM and CRLF endings are
    accepted."""

    def __init__(self, location: Location, key: str = "",
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, encoding: str = UTF8) -> None:
        super().__init__(location, key, encoding)
        self._broken: BaseException | None = None
        self._limit = max_line_bytes

    async def _read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        async for items in self._chunks(start, self._read_chunk):
            yield items

    def read_groups(self, start: Position | None) -> AsyncIterator[list[LineGroup]] | None:
        """The lines from ``start`` in groups, not decoded (change detection's fast path:
        :meth:`decode` what must be read); None for an object in a store, whose last position
        is marked as its end (``mark_end``) and so is read the usual way."""
        if not isinstance(self.location, LocalFile):
            return None
        return self._chunks(start, self._group_chunk)

    def read_raw(self, start: Position | None
                 ) -> AsyncIterator[RawLines | list[SourceItem]] | None:
        """The lines from ``start`` as :class:`RawLines`, for the batcher's typed lane (a
        first run's fast path); a chunk holding a special line (over the limit, the last one
        without a newline, a BOM) as items. None for another encoding than UTF-8 or an
        object in a store (read as usual)."""
        if not isinstance(self.location, LocalFile) or self.encoding != UTF8:
            return None
        return self._raw(start)

    async def _raw(self, start: Position | None) -> AsyncIterator[RawLines | list[SourceItem]]:
        async for chunk in self._chunks(start, self._raw_chunk):
            first = chunk[0]
            yield first if isinstance(first, RawLines) else cast(list[SourceItem], chunk)

    def _raw_chunk(self, reader: BoundedLines, offset: int, line: int
                   ) -> tuple[list[RawLines | SourceItem], int, int]:
        lines = self._next_lines(reader, offset, line)
        if not lines:
            return [], -1 if lines is None else offset, line
        plain = cast(list[bytes], lines)
        if set(map(type, lines)) != {bytes} or (line == 0 and plain[0].startswith(_BOM)):
            items, offset, line = self._items(lines, offset, line)
            return list(items), offset, line
        ends = line_ends(plain, offset, line)
        def decode(first: int, last: int) -> list[SourceItem]:
            return self._items(lines[first:last], *(ends[first - 1] if first else start))[0]

        start = offset, line
        return [RawLines(plain, ends, decode)], *ends[-1]

    def decode(self, group: LineGroup) -> list[SourceItem]:
        """The items of a group :meth:`read_groups` gave."""
        return self._items(group.lines, *group.start)[0]

    def skip(self, group: LineGroup) -> bool:
        """A group Ometria holds is always skipped: each line is a record of its own."""
        return True

    async def _chunks(self, start: Position | None, make: _Make[T]) -> AsyncIterator[list[T]]:
        offset, line = line_start(start, self.label)
        try:
            fh = await asyncio.to_thread(  # a gzip seek may be long
                self.location.open_at, offset)
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot open: {exc.strerror or exc}") from exc
        lines = BoundedLines(fh, self._limit)
        try:
            while True:
                # Chunks are decoded on the event loop's own thread, a few milliseconds each:
                # a worker thread measured about a fifth slower (the GIL, and records built on
                # one core and validated on the other). Objects in a store are read in one:
                # the network must never stall the event loop.
                if self.location.blocking_reads:
                    chunk, offset, line = await asyncio.to_thread(make, lines, offset, line)
                else:
                    chunk, offset, line = make(lines, offset, line)
                if not chunk:
                    if offset < 0:
                        return
                    continue
                yield chunk
                await asyncio.sleep(0)
        finally:
            fh.close()

    def _next_lines(self, reader: BoundedLines, offset: int,
                    line: int) -> list[bytes | Line] | None:
        """About ``_CHUNK_BYTES`` of whole lines; None at the end of the file."""
        if self._broken is not None:
            raise SourceError(
                f"{self.label}: unreadable after line {line} (byte {offset}): {self._broken}"
            ) from self._broken
        lines, self._broken = _read_lines(reader, _CHUNK_BYTES)
        if not lines and self._broken is None:
            return None
        return lines  # empty after a read error: raised on the next call, with the position

    def _group_chunk(
        self, reader: BoundedLines, offset: int, line: int
    ) -> tuple[list[LineGroup], int, int]:
        lines = self._next_lines(reader, offset, line)
        if not lines:
            return [], -1 if lines is None else offset, line
        groups = group_lines(lines, offset, line)
        return groups, *groups[-1].end

    def _read_chunk(
        self, reader: BoundedLines, offset: int, line: int
    ) -> tuple[list[SourceItem], int, int]:
        """Read about ``_CHUNK_BYTES`` of whole lines. Returns offset -1 at end of file. A line
        over the limit is an item with the error and the line's first bytes."""
        lines = self._next_lines(reader, offset, line)
        if not lines:
            return [], -1 if lines is None else offset, line
        # only blank lines: an empty chunk, so the caller keeps reading
        return self._items(lines, offset, line)

    def _items(self, lines: list[bytes | Line], offset: int, line: int
               ) -> tuple[list[SourceItem], int, int]:
        """The items of ``lines`` read from ``(offset, line)``, and the position after them."""
        items: list[SourceItem] = []
        utf8 = self.encoding == UTF8
        decode = _decode
        for raw in lines:
            line += 1
            if isinstance(raw, bytes):  # a whole line, its "\n" dropped
                offset += len(raw) + 1
                body = raw.rstrip(b"\r")
            else:
                offset += raw.size
                if raw.over:
                    items.append(SourceItem(
                        record=None, position=(offset, line), line=line, raw=raw.body,
                        error=over_limit(raw.length, self._limit)))
                    continue
                body = raw.body.rstrip(b"\r")
            if line == 1 and body.startswith(_BOM):
                body = body[len(_BOM) :]
            if not body or body.isspace():  # blank (as ``not body.strip()``, without a copy)
                continue
            as_read: str | bytes = body
            if utf8:  # the fast path: the bytes go to the JSON decoder as they are
                try:
                    value, error = decode(body), None
                except Exception:  # decode_line says why (or raises what it raised)
                    value, error = decode_line(body)
            else:
                value, as_read, error = decode_encoded(body, self.encoding)
            items.append(
                SourceItem(
                    record=value,
                    position=(offset, line),
                    line=line,
                    raw=as_read,
                    error=error,
                )
            )
        return items, offset, line
