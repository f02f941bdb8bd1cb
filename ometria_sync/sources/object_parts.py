"""What the JSON Lines and CSV parts of an object in a store share, and the preflight.

The parsing is the local files' own (:class:`~ometria_sync.sources.jsonl.JsonlFile`,
:class:`~ometria_sync.sources.csv_files.CsvFile`); :class:`ObjectPart` only changes where the
bytes come from, the label, the fingerprint, and that chunks are read in a worker thread.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import zlib
from collections.abc import AsyncIterator
from typing import IO, cast

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.object_reader import ObjectChanged, ObjectReader
from ometria_sync.sources.object_store import (
    GZIP_MAGIC,
    describe,
    head,
    is_gzip_object,
    list_matching,
    probe,
)
from ometria_sync.sources.objects import ObjectInfo, ObjectUrl, StoreOptions


class _GzipObject(gzip.GzipFile):
    """A gzip object: closing it closes the stream under it too."""

    def __init__(self, raw: ObjectReader) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_object(info: ObjectInfo, options: StoreOptions, offset: int,
                gz: bool | None = None) -> IO[bytes]:
    """The object's (uncompressed) bytes from ``offset``, blocking.

    Uncompressed: one ranged GET from ``offset``. Gzip: a deflate stream cannot be entered
    mid-way, so it is read and decompressed from the top and the first ``offset`` bytes are
    skipped (breaks during the read still resume by a ranged GET on the compressed bytes).
    ``gz``: whether it is gzip, when already known."""
    if gz is None:
        gz = is_gzip_object(info, options)
    if gz:
        fh = _GzipObject(ObjectReader(info, options, 0))
        if offset:
            try:
                fh.seek(offset)
            except BaseException:
                fh.close()
                raise
        return cast(IO[bytes], fh)
    return cast(IO[bytes], ObjectReader(info, options, offset))


class ObjectPart:
    """What the JSON Lines and CSV parts of an object share with each other (the parsing
    they share with local files): its label, fingerprint, size and opening at an offset."""

    #: reading waits on the network: chunks are read in a worker thread
    blocking_reads = True
    _info: ObjectInfo
    _store: StoreOptions
    _gzip: bool | None = None  # known after the first look at its first bytes

    def _is_gzip(self) -> bool:
        if self._gzip is None:
            self._gzip = is_gzip_object(self._info, self._store)
        return self._gzip

    @property
    def label(self) -> str:
        return str(self._info.url)

    async def fingerprint(self) -> str | None:
        """ETag (or generation) and size, as listed when the stream started."""
        return self._info.fingerprint

    async def size(self) -> int | None:
        """Bytes to read, for progress estimates: None for gzip (its uncompressed size is
        unknown). Told by the suffix until the first read has seen the magic number: this
        costs no request, so a finished object is not touched."""
        gz = self._gzip if self._gzip is not None else self._info.url.key.endswith(".gz")
        return None if gz else self._info.size

    def _open_at(self, offset: int) -> IO[bytes]:
        try:
            return open_object(self._info, self._store, offset, self._is_gzip())
        except ObjectChanged:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{self.label}: cannot open at byte {offset}: "
                              f"{describe(exc)}") from exc
        except Exception as exc:  # the store's own errors
            raise SourceError(f"{self.label}: {describe(exc)}") from exc


#: the third element of the last item's position: a rerun skips the object without a GET
END = "end"


def finished(start: Position | None) -> bool:
    """True when a checkpoint was taken after the last item of its object."""
    return isinstance(start, list | tuple) and len(start) == 3 and start[2] == END


async def mark_end(chunks: AsyncIterator[list[SourceItem]]) -> AsyncIterator[list[SourceItem]]:
    """``chunks`` one behind, the last item's position marked with :data:`END`: once that
    item is checkpointed, later runs skip the object without reading it (a finished gzip
    object would otherwise be downloaded and decompressed again to skip to its end)."""
    held: list[SourceItem] = []
    try:
        async for chunk in chunks:
            if held:
                yield held
            held = chunk
    except Exception:
        if held:
            yield held  # the items before a read error still count
        raise
    if held:
        last = held[-1]
        if isinstance(last.position, tuple):  # a file's (offset, line), as the parts make it
            last.position = (*last.position, END)
        yield held


async def nothing() -> AsyncIterator[list[SourceItem]]:
    return
    yield


async def object_info(url: ObjectUrl, options: StoreOptions) -> ObjectInfo:
    """Size and version of one object; SourceError when it cannot be had."""
    try:
        return await asyncio.to_thread(head, url, options)
    except Exception as exc:
        raise SourceError(f"{url}: {describe(exc)}") from exc


async def matching_objects(pattern: ObjectUrl, options: StoreOptions) -> list[ObjectInfo]:
    """The objects matching ``pattern``, in key order; SourceError when it cannot be listed."""
    try:
        return await asyncio.to_thread(list_matching, pattern, options)
    except Exception as exc:
        raise SourceError(f"{pattern}: {describe(exc)}") from exc


async def preflight_objects(key: str, url: str, options: StoreOptions, *,
                            single: bool) -> tuple[ObjectInfo, bytes]:
    """List the pattern (or find the object) and read the first bytes of the first object:
    a missing bucket or object, a refused credential or an empty pattern is a ConfigError
    naming ``key`` and the URL. Returns the first object and its first bytes."""
    parsed = ObjectUrl.parse(url)
    try:
        if single:
            first = await asyncio.to_thread(head, parsed, options)
        else:
            found = await asyncio.to_thread(list_matching, parsed, options)
            if not found:
                raise ConfigError(key, f"matches no object: {url}")
            first = found[0]
        head_bytes = await asyncio.to_thread(probe, first, options)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(key, f"{url}: {describe(exc)}") from exc
    return first, head_bytes


def head_stream(head_bytes: bytes) -> IO[bytes]:
    """An object's first bytes as a file (decompressed if gzip): its first lines, without
    another request. Reading past them raises EOFError (gzip) or ends early."""
    raw = io.BytesIO(head_bytes)
    if head_bytes.startswith(GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw
