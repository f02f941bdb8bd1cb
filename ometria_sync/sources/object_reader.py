"""One object's stored bytes as a blocking binary file, streamed and resumed where it broke.

Every GET carries ``If-Match`` with the ETag the object was listed with (an overwrite while it
is read is :class:`ObjectChanged`, never a mix of two versions); a break mid-stream is retried
with backoff by a ranged GET from the byte it broke at, up to :data:`RETRIES` times in a row.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import obstore
from obstore.exceptions import (
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from ometria_sync.sources.object_store import describe, get_options, store_for
from ometria_sync.sources.objects import ObjectInfo, StoreOptions

#: a break mid-stream is retried this many times in a row before the read fails
RETRIES = 6
#: bytes asked of the stream at a time
STREAM_CHUNK_BYTES = 256 * 1024

Sleep = Callable[[float], None]


class ObjectChanged(OSError):
    """The object was overwritten while it was being read."""


class ObjectReader(io.RawIOBase):
    """The stored bytes of one object from ``start``, as a blocking binary file.

    Streams with one GET (a ranged one from ``start > 0``); a break mid-stream is retried
    with backoff by a ranged GET from the byte it broke at, so nothing is read twice or
    skipped. ``requests`` counts the GETs made."""

    def __init__(self, info: ObjectInfo, options: StoreOptions, start: int = 0, *,
                 retries: int = RETRIES, backoff: float = 0.5,
                 sleep: Sleep = time.sleep) -> None:
        super().__init__()
        self._info, self._options = info, options
        self._pos = start
        self._retries, self._backoff, self._sleep = retries, backoff, sleep
        self._stream: Iterator[Any] | None = None
        self._chunk = memoryview(b"")
        self.requests = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read1(self, size: int = -1) -> bytes:
        if not self._chunk and not self._next_chunk():
            return b""
        n = len(self._chunk) if size < 0 else min(size, len(self._chunk))
        out, self._chunk = bytes(self._chunk[:n]), self._chunk[n:]
        self._pos += n
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read1(), b""))
        parts, wanted = [], size
        while wanted > 0:
            data = self.read1(wanted)
            if not data:
                break
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        self._stream, self._chunk = None, memoryview(b"")
        super().close()

    def _next_chunk(self) -> bool:
        """Fill ``_chunk``; False at the end of the object."""
        failures = 0
        while self._pos < self._info.size:
            try:
                if self._stream is None:
                    self._stream = self._open()
                chunk = next(self._stream, None)
                if chunk is None:  # the body ended before the object's size
                    raise ConnectionResetError(
                        f"stream ended at byte {self._pos} of {self._info.size}")
                self._chunk = memoryview(chunk)
                if self._chunk:
                    return True
            except PreconditionError as exc:
                raise ObjectChanged(f"{self._info.url} changed while being read "
                                    f"(its ETag is no longer {self._info.etag})") from exc
            except (NotFoundError, PermissionDeniedError, UnauthenticatedError) as exc:
                raise OSError(f"{self._info.url}: {describe(exc)}") from exc
            except Exception as exc:  # resets, timeouts, 5xx and throttling after obstore's
                self._stream = None   # own retries: again from where it broke
                failures += 1
                if failures > self._retries:
                    raise OSError(f"{self._info.url}: read failed at byte {self._pos} after "
                                  f"{failures} attempts: {describe(exc)}") from exc
                self._sleep(min(self._backoff * 2 ** (failures - 1), 30.0))
        return False

    def _open(self) -> Iterator[Any]:
        self.requests += 1
        result = obstore.get(store_for(self._info.url, self._options), self._info.url.key,
                             options=get_options(self._info, self._pos))
        return iter(result.stream(min_chunk_size=STREAM_CHUNK_BYTES))
