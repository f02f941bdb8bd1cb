"""What every file source shares: opening plain or gzip files, fingerprints, path checks."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import IO, cast

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import LinePosition, Position, checkpoint_as

_GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 64 * 1024


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic number (the suffix is not trusted)."""
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


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


class LocalFile:
    """What every file part shares: its checkpoint key, its label, fingerprint and size, and
    opening at an offset."""

    #: True when reading may wait on the network: chunks are then read in a worker thread
    blocking_reads = False

    def __init__(self, path: Path, key: str = "") -> None:
        self._path = path
        self._key = key

    @property
    def key(self) -> str:
        """'' for a single-file source; the file's path within a glob."""
        return self._key

    @property
    def label(self) -> str:
        return str(self._path)

    async def fingerprint(self) -> str | None:
        return await asyncio.to_thread(fingerprint, self._path)

    def _start(self, start: Position | None) -> LinePosition:
        """Where to resume: the checkpoint's ``[offset, line]``, or the top."""
        if not start:
            return LinePosition(0, 0)
        return checkpoint_as(LinePosition, start, self.label, "a file position ([offset, line])")

    def _open_at(self, offset: int) -> IO[bytes]:
        """The file's (uncompressed) bytes from ``offset`` (blocking: a gzip seek decompresses
        up to it). Raises SourceError."""
        fh = open_binary(self._path)
        if offset:
            try:
                fh.seek(offset)
            except (EOFError, OSError, zlib.error) as exc:
                fh.close()
                raise SourceError(f"{self.label}: cannot seek to byte {offset}: {exc}") from exc
        return fh

    async def size(self) -> int | None:
        """Bytes to read (uncompressed size unknown for gzip: None), for progress estimates."""
        if await asyncio.to_thread(is_gzip, self._path):
            return None
        return self._path.stat().st_size
