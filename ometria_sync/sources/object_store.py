"""Talking to a store: one client per bucket, listing by pattern, a head, the first bytes, and
errors told in a line (access refused, not found) instead of the store's debug dump."""

from __future__ import annotations

import fnmatch
import functools
import re
from datetime import timedelta
from typing import Any

import obstore
from obstore.exceptions import (
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import GCSStore, S3Store

from ometria_sync.sources.objects import ObjectInfo, ObjectUrl, StoreOptions

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
