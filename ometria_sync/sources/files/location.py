"""Where a file source's bytes come from: a local file or an object in a store.

A location is read the same way whatever it is: :meth:`~LocalFile.open_at` gives its
(uncompressed) bytes from an offset, gzip read transparently (the suffix is not trusted: the
magic number is); ``fingerprint``, ``size`` and ``label`` describe it; ``blocking_reads`` says
whether reading may wait on the network (chunks are then read in a worker thread). The formats
(:mod:`.jsonl`, :mod:`.csv`) parse any location; :func:`location_for` is the one place that
tells a path from an ``s3://`` or ``gs://`` URL.

Objects are read in place (see :mod:`.store` for the guarantees); a checkpoint taken after an
object's last item is marked :data:`END`, so a later run skips the object without a GET.

:class:`FileSettings` declares the keys every file source takes. msgspec lays a Struct's fields
out along one chain of bases: two Structs that both declare fields cannot both be bases of a
third. So it is the root of the file sources' chain (``FileSettings -> JsonlSourceConfig``,
``FileSettings -> CsvOptions -> CsvSourceConfig / GlobSourceConfig``), each config adding its
own keys after it, and the field-less :class:`~ometria_sync.sources.base.SourceConfig` (the
``kind`` tag) beside it. Its keys are keyword-only, so a config's own required keys (``path``)
still come first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Self, cast

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import (
    LazyPartSource,
    LinePosition,
    Position,
    SinglePartSource,
    Source,
    SourceItem,
    SourcePart,
    checkpoint_as,
)
from ometria_sync.sources.files.encoding import UTF8, codec_name, encoding_fingerprint
from ometria_sync.sources.files.lines import DEFAULT_MAX_LINE_BYTES, MaxLineBytes
from ometria_sync.sources.files.store import (
    GZIP_MAGIC,
    SCHEMES,
    ObjectChanged,
    ObjectInfo,
    ObjectReader,
    ObjectUrl,
    StoreOptions,
    check_store_options,
    describe,
    head,
    is_gzip_object,
    list_matching,
    probe,
)

_HEAD_BYTES = 64 * 1024

#: what a format does with a location: chunks of items from a position
Chunks = Callable[[Position | None], AsyncIterator[list[SourceItem]]]


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic number (the suffix is not trusted)."""
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, decompressing gzip transparently.

    ``tell()`` and ``seek()`` on the result count *uncompressed* bytes, so positions mean the same
    thing for both kinds; seeking in a gzip file decompresses up to the target.
    """
    if is_gzip(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def fingerprint(path: Path) -> str:
    """Size, modification time and a hash of the first 64 KiB: a different file, or the same
    name rewritten, gets a different fingerprint, and is read from the beginning."""
    st = os.stat(path)
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(_HEAD_BYTES)).hexdigest()[:16]
    return f"{st.st_size}:{st.st_mtime_ns}:{head}"


def resolve_path(base_dir: Path, value: str) -> str:
    """``value`` made absolute against the job file's folder (``~`` expanded)."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path))


def check_readable_file(key: str, value: str) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` is a readable regular file."""
    path = Path(value)
    if not path.exists():
        raise ConfigError(key, f"no such file: {value}")
    if not path.is_file():
        raise ConfigError(key, f"not a regular file: {value}")
    if not os.access(path, os.R_OK):
        raise ConfigError(key, f"file is not readable: {value}")


def line_start(start: Position | None, label: str) -> LinePosition:
    """Where to resume: the checkpoint's ``[offset, line]``, or the top."""
    if not start:
        return LinePosition(0, 0)
    return checkpoint_as(LinePosition, start, label, "a file position ([offset, line])")


class LocalFile:
    """A file on this machine: its label, fingerprint and size, and opening at an offset."""

    #: True when reading may wait on the network: chunks are then read in a worker thread
    blocking_reads = False

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return str(self.path)

    async def fingerprint(self) -> str | None:
        return await asyncio.to_thread(fingerprint, self.path)

    async def size(self) -> int | None:
        """Bytes to read (uncompressed size unknown for gzip: None), for progress estimates."""
        if await asyncio.to_thread(is_gzip, self.path):
            return None
        return self.path.stat().st_size

    def open_at(self, offset: int) -> IO[bytes]:
        """The file's (uncompressed) bytes from ``offset`` (blocking: a gzip seek decompresses
        up to it). Raises SourceError."""
        fh = open_binary(self.path)
        if offset:
            try:
                fh.seek(offset)
            except (EOFError, OSError, zlib.error) as exc:
                fh.close()
                raise SourceError(f"{self.label}: cannot seek to byte {offset}: {exc}") from exc
        return fh

    def read(self, start: Position | None, chunks: Chunks) -> AsyncIterator[list[SourceItem]]:
        """What the format reads from ``start``."""
        return chunks(start)


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


class StoredObject:
    """An object in a store, as listed when the stream started: its label, fingerprint and
    size, and opening at an offset (the parsing is the local files' own)."""

    #: reading waits on the network: chunks are read in a worker thread
    blocking_reads = True

    def __init__(self, info: ObjectInfo, store: StoreOptions) -> None:
        self.info, self.store = info, store
        self._gzip: bool | None = None  # known after the first look at its first bytes

    def _is_gzip(self) -> bool:
        if self._gzip is None:
            self._gzip = is_gzip_object(self.info, self.store)
        return self._gzip

    @property
    def label(self) -> str:
        return str(self.info.url)

    async def fingerprint(self) -> str | None:
        """ETag (or generation) and size, as listed when the stream started."""
        return self.info.fingerprint

    async def size(self) -> int | None:
        """Bytes to read, for progress estimates: None for gzip (its uncompressed size is
        unknown). Told by the suffix until the first read has seen the magic number: this
        costs no request, so a finished object is not touched."""
        gz = self._gzip if self._gzip is not None else self.info.url.key.endswith(".gz")
        return None if gz else self.info.size

    def open_at(self, offset: int) -> IO[bytes]:
        try:
            return open_object(self.info, self.store, offset, self._is_gzip())
        except ObjectChanged:
            raise
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{self.label}: cannot open at byte {offset}: "
                              f"{describe(exc)}") from exc
        except Exception as exc:  # the store's own errors
            raise SourceError(f"{self.label}: {describe(exc)}") from exc

    def read(self, start: Position | None, chunks: Chunks) -> AsyncIterator[list[SourceItem]]:
        """What the format reads from ``start``; a checkpoint after the last item skips the
        object unread."""
        return nothing() if finished(start) else mark_end(chunks(start))


#: a local file or an object in a store
Location = LocalFile | StoredObject


class FilePart:
    """A format's part over a location: its checkpoint key, and the location's label,
    fingerprint (with the encoding it is read in) and size. The format reads chunks from a
    position (``_read``); the location decides whether there is anything to read (an object
    checkpointed after its last item: nothing)."""

    def __init__(self, location: Location, key: str = "", encoding: str = UTF8) -> None:
        self.location = location
        self._key = key
        #: the codec's canonical name (``FileSettings.codec``)
        self.encoding = encoding

    @property
    def key(self) -> str:
        """'' for a single-file source; the file's path (or the object's URL) within a glob."""
        return self._key

    @property
    def label(self) -> str:
        return self.location.label

    async def fingerprint(self) -> str | None:
        """The location's, and the encoding unless UTF-8: another encoding reads from the top."""
        return encoding_fingerprint(await self.location.fingerprint(), self.encoding)

    async def size(self) -> int | None:
        return await self.location.size()

    def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        return self.location.read(start, self._read)

    def _read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        raise NotImplementedError

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


def head_stream(head_bytes: bytes) -> IO[bytes]:
    """An object's first bytes as a file (decompressed if gzip): its first lines, without
    another request. Reading past them raises EOFError (gzip) or ends early."""
    raw = io.BytesIO(head_bytes)
    if head_bytes.startswith(GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


@dataclasses.dataclass(frozen=True)
class LocalPath:
    """A file's path, or a glob pattern, on this machine."""

    path: str

    def resolved(self, base_dir: Path) -> str:
        return resolve_path(base_dir, self.path)

    def files(self) -> list[Path]:
        """The matching regular files, in name (path) order."""
        return [Path(p) for p in sorted(glob.glob(self.path)) if Path(p).is_file()]

    async def preflight(self, key: str, *, single: bool) -> tuple[ObjectInfo, bytes] | None:
        """Nothing beyond the local disk (read when the job file is): None."""
        return None

    def source(self, part: Callable[[Location], SourcePart]) -> Source:
        """The source of the one file: its part made now."""
        return SinglePartSource(part(LocalFile(Path(self.path))))

    async def matching(self) -> list[tuple[str, Location]]:
        """The matching files, each with its checkpoint key (its path)."""
        return [(str(p), LocalFile(p)) for p in self.files()]


@dataclasses.dataclass(frozen=True)
class ObjectPath:
    """An ``s3://`` or ``gs://`` URL of an object, or of a key pattern, and the store settings."""

    path: str
    store: StoreOptions

    def resolved(self, base_dir: Path) -> str:
        return self.path

    async def preflight(self, key: str, *, single: bool) -> tuple[ObjectInfo, bytes] | None:
        """List the pattern (or find the object) and read the first bytes of the first object:
        a missing bucket or object, a refused credential or an empty pattern is a ConfigError
        naming ``key`` and the URL. Returns the first object and its first bytes."""
        parsed = ObjectUrl.parse(self.path)
        try:
            if single:
                first = await asyncio.to_thread(head, parsed, self.store)
            else:
                found = await asyncio.to_thread(list_matching, parsed, self.store)
                if not found:
                    raise ConfigError(key, f"matches no object: {self.path}")
                first = found[0]
            head_bytes = await asyncio.to_thread(probe, first, self.store)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(key, f"{self.path}: {describe(exc)}") from exc
        return first, head_bytes

    def source(self, part: Callable[[Location], SourcePart]) -> Source:
        """The source of the one object: its part made when the stream starts, with the
        object's current version."""
        url, store = ObjectUrl.parse(self.path), self.store

        async def find() -> SourcePart:
            try:
                info = await asyncio.to_thread(head, url, store)
            except Exception as exc:
                raise SourceError(f"{url}: {describe(exc)}") from exc
            return part(StoredObject(info, store))
        return LazyPartSource(find)

    async def matching(self) -> list[tuple[str, Location]]:
        """The objects matching the pattern, in key order, each with its checkpoint key (its
        URL); SourceError when it cannot be listed."""
        pattern = ObjectUrl.parse(self.path)
        try:
            found = await asyncio.to_thread(list_matching, pattern, self.store)
        except Exception as exc:
            raise SourceError(f"{pattern}: {describe(exc)}") from exc
        return [(str(info.url), StoredObject(info, self.store)) for info in found]


def location_for(path: str, store: StoreOptions) -> LocalPath | ObjectPath:
    """``path`` as a place to read from: an object (or key pattern) for ``s3://`` and
    ``gs://`` URLs, else a local path (or glob pattern). The one place that tells them apart."""
    if path.startswith(SCHEMES):
        return ObjectPath(path, store)
    return LocalPath(path)


class FileSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The line cap, the text encoding, and the store settings of ``s3://`` and ``gs://``
    paths."""

    #: a longer line is dead-lettered (with its row); None: the job's ``[run] max_line_bytes``
    max_line_bytes: MaxLineBytes | None = None
    #: the files' text encoding, any Python codec whose newline is the ASCII byte (``cp1252``)
    encoding: str = UTF8
    #: an S3-compatible store's (or an emulator's) URL, for s3:// and gs:// paths
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def store(self) -> StoreOptions:
        return StoreOptions(self.endpoint_url, self.region)

    @property
    def codec(self) -> str:
        """The encoding's canonical codec name (checked by :meth:`check_encoding`)."""
        return UTF8 if self.encoding == UTF8 else codec_name("encoding", self.encoding)

    def check_encoding(self, key: str) -> None:
        """ConfigError naming ``key.encoding`` for an encoding this cannot read."""
        codec_name(f"{key}.encoding", self.encoding)

    @property
    def line_limit(self) -> int:
        return self.max_line_bytes or DEFAULT_MAX_LINE_BYTES

    def location(self, path: str) -> LocalPath | ObjectPath:
        """``path`` as a place to read from, with these store settings."""
        return location_for(path, self.store)

    def with_run_settings(self, *, max_line_bytes: int) -> Self:
        """The job's ``[run] max_line_bytes`` where the source sets none of its own."""
        if self.max_line_bytes is not None:
            return self
        return msgspec.structs.replace(self, max_line_bytes=max_line_bytes)

    def check_location(self, key: str, field: str, value: str) -> bool:
        """True when ``value`` is a valid s3:// or gs:// URL (ConfigError naming ``key.field``
        when it is not); False for a local path, which takes no store settings."""
        if isinstance(self.location(value), ObjectPath):
            check_store_options(f"{key}.{field}", value, self.store)
            return True
        for name, setting in (("endpoint_url", self.endpoint_url), ("region", self.region)):
            if setting is not None:
                raise ConfigError(f"{key}.{name}", "only applies to s3:// and gs:// URLs")
        return False
