"""Objects in S3, Google Cloud Storage or an S3-compatible store, read in place.

A ``s3://bucket/key`` or ``gs://bucket/key`` stands wherever a file source takes a path. An
object is streamed (ranged GETs through obstore), never downloaded whole:
:class:`ObjectReader` is a plain binary file object over the stream, so the JSON Lines and CSV
readers and :class:`~.lines.BoundedLines` are the same as for local files. It blocks, so parts
read it from a worker thread.

Guarantees:
- every GET carries ``If-Match`` with the ETag the object was listed with: an object
  overwritten while it is read is an error, never a mix of two versions;
- a break mid-stream (reset, timeout, 5xx, throttling) is retried with backoff from the byte
  where the stream broke (a ranged GET on the stored bytes: for gzip objects too, under the
  decompressor), up to :data:`RETRIES` times in a row;
- credentials come from the environment or the machine's identity, never from the job file
  (:func:`secret_setting`).

This module reads URLs and the job file's store settings, talks to a store (one client per
bucket, listing by pattern, a head, the first bytes, and errors told in a line: access refused,
not found, instead of the store's debug dump) and streams one object's bytes; an object as a
location to read from (:class:`~.location.StoredObject`) is in :mod:`.location`.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import GCSStore, S3Store

from ometria_sync.errors import ConfigError
from ometria_sync.net import redact_url

SCHEMES = ("s3://", "gs://")
#: job-file keys that would hold a credential: refused, with where credentials go instead
_SECRET_WORDS = ("secret", "password", "session_token", "credential", "access_key", "private_key",
                 "account_key", "service_account")


def secret_setting(name: str) -> bool:
    """True when a job-file key names a credential (``aws_secret_access_key``, ...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


SECRET_REFUSED = ("credentials never go in the job file: use the environment "
                  "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS), "
                  "a profile, or the machine's instance or workload identity")


class ObjectUrl(NamedTuple):
    """``s3://bucket/key``: scheme (``s3`` or ``gs``), bucket and key (or key pattern)."""

    scheme: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, value: str) -> ObjectUrl:
        """Raise ValueError saying what is wrong with ``value``."""
        scheme, _, rest = value.partition("://")
        if f"{scheme}://" not in SCHEMES:
            raise ValueError(f"not an s3:// or gs:// URL: {value}")
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {value}")
        if any(c in bucket for c in "*?[]"):
            raise ValueError(f"the bucket cannot be a pattern: {value}")
        if "@" in bucket or ":" in bucket:
            raise ValueError(f"credentials or a port do not go in the URL: {value}")
        if not key or key.endswith("/"):
            raise ValueError(f"no object name in {value}")
        return cls(scheme, bucket, key)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def with_key(self, key: str) -> ObjectUrl:
        return ObjectUrl(self.scheme, self.bucket, key)


class StoreOptions(NamedTuple):
    """The job file's store settings: ``endpoint_url`` for S3-compatible stores (MinIO, R2)
    or an emulator, ``region``. Everything else comes from the environment."""

    endpoint_url: str | None = None
    region: str | None = None


def check_store_options(key: str, url: str, options: StoreOptions) -> ObjectUrl:
    """The parsed URL, or a ConfigError naming ``key``, before anything is read."""
    try:
        parsed = ObjectUrl.parse(url)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    endpoint = options.endpoint_url
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(key.rsplit(".", 1)[0] + ".endpoint_url",
                              f"expected an http(s):// URL, got {redact_url(endpoint)!r}")
        if parts.username or parts.password:
            raise ConfigError(key.rsplit(".", 1)[0] + ".endpoint_url", SECRET_REFUSED)
    return parsed


class ObjectInfo(NamedTuple):
    """One object as listed: its URL, size and version (ETag, or GCS generation)."""

    url: ObjectUrl
    size: int
    etag: str | None
    version: str | None

    @property
    def fingerprint(self) -> str:
        """Size and ETag (and version where the store has one): an overwrite changes it."""
        return f"{self.size}:{self.etag or ''}:{self.version or ''}"


# Talking to a store.

#: what the preflight reads of an object
PROBE_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@functools.lru_cache(maxsize=64)
def _store(scheme: str, bucket: str, options: StoreOptions) -> Any:
    """One client per bucket and settings (their connection pools are reused)."""
    retry: Any = {"max_retries": 4, "retry_timeout": timedelta(seconds=120),
                  "backoff": {"init_backoff": timedelta(milliseconds=200),
                              "max_backoff": timedelta(seconds=10), "base": 2}}
    client: Any = {"connect_timeout": timedelta(seconds=10), "timeout": timedelta(minutes=30),
                   "allow_http": bool(options.endpoint_url
                                      and options.endpoint_url.startswith("http://"))}
    config: Any = {}
    if scheme == "gs":
        if options.endpoint_url:
            config["base_url"] = options.endpoint_url
        return GCSStore(bucket, config=config, client_options=client,
                        retry_config=retry)
    if options.endpoint_url:
        config["endpoint"] = options.endpoint_url
    if options.region:
        config["region"] = options.region
    return S3Store(bucket, config=config, client_options=client,
                   retry_config=retry)


def store_for(url: ObjectUrl, options: StoreOptions) -> Any:
    return _store(url.scheme, url.bucket, options)


def describe(exc: BaseException) -> str:
    """What went wrong, in a line: ``access refused (403 Forbidden, InvalidAccessKeyId)``,
    ``not found (404 Not Found, NoSuchBucket)``; else the first line of the store's error
    (obstore appends a long debug dump)."""
    if isinstance(exc, PreconditionError):
        return "changed while being read (overwritten since it was listed)"
    text = str(exc)
    status = re.search(r"status code: (\d{3}[^:\n]*)", text)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    detail = ", ".join(m[1].strip() for m in (status, code) if m)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or (
            status and status[1][:3] in ("401", "403")):
        return f"access refused ({detail or text.splitlines()[0]}): check the credentials"
    if isinstance(exc, NotFoundError) or (status and status[1].startswith("404")):
        return f"not found ({detail or text.splitlines()[0]})"
    first = text.strip().split("\n", 1)[0]
    return (first[:300] if first else type(exc).__name__) + (f" ({detail})" if detail else "")


def _segments_match(key: str, pattern: str) -> bool:
    """Glob matching as for local files: ``*`` and ``?`` never cross a ``/``."""
    names, parts = key.split("/"), pattern.split("/")
    return len(names) == len(parts) and all(
        fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts, strict=True))


def list_matching(pattern: ObjectUrl, options: StoreOptions) -> list[ObjectInfo]:
    """The objects whose keys match ``pattern.key``, in key order (blocking).

    Lists under the pattern's longest folder without a wildcard. Raises OSError (from the
    store) when the bucket is missing or access is refused."""
    store = store_for(pattern, options)
    fixed = []
    for part in pattern.key.split("/")[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    prefix = "/".join(fixed) or None
    found = [
        ObjectInfo(pattern.with_key(meta["path"]), meta["size"], meta["e_tag"], meta["version"])
        for batch in obstore.list(store, prefix, chunk_size=1000)
        for meta in batch
        if _segments_match(meta["path"], pattern.key)
    ]
    return sorted(found, key=lambda info: info.url.key)


def head(url: ObjectUrl, options: StoreOptions) -> ObjectInfo:
    """Size and version of one object (blocking; raises the store's error)."""
    meta = obstore.head(store_for(url, options), url.key)
    return ObjectInfo(url, meta["size"], meta["e_tag"], meta["version"])


def probe(info: ObjectInfo, options: StoreOptions, size: int = PROBE_BYTES) -> bytes:
    """The object's first ``size`` bytes (blocking; raises the store's error)."""
    if info.size == 0:
        return b""
    result = obstore.get(store_for(info.url, options), info.url.key,
                         options=get_options(info, 0, min(size, info.size)))
    return bytes(result.bytes())


def get_options(info: ObjectInfo, start: int, end: int | None = None) -> Any:
    options: dict[str, Any] = {"range": {"offset": start} if end is None else (start, end)}
    if info.etag:
        options["if_match"] = info.etag
    return options


def is_gzip_object(info: ObjectInfo, options: StoreOptions) -> bool:
    """True when the object starts with the gzip magic number (the suffix is not trusted)."""
    return probe(info, options, len(GZIP_MAGIC)) == GZIP_MAGIC


# One object's stored bytes as a blocking binary file, streamed and resumed where it broke.

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
