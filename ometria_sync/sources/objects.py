"""Objects in S3, Google Cloud Storage or an S3-compatible store, read in place.

A ``s3://bucket/key`` or ``gs://bucket/key`` stands wherever a file source takes a path. An
object is streamed (ranged GETs through obstore), never downloaded whole:
:class:`~.object_reader.ObjectReader` is a plain binary file object over the stream, so the JSON
Lines and CSV readers and :class:`~ometria_sync.sources.lines.BoundedLines` are the same as for
local files. It blocks, so parts read it from a worker thread.

Guarantees:
- every GET carries ``If-Match`` with the ETag the object was listed with: an object
  overwritten while it is read is an error, never a mix of two versions;
- a break mid-stream (reset, timeout, 5xx, throttling) is retried with backoff from the byte
  where the stream broke (a ranged GET on the stored bytes: for gzip objects too, under the
  decompressor), up to :data:`~.object_reader.RETRIES` times in a row;
- credentials come from the environment or the machine's identity, never from the job file
  (:func:`secret_setting`).

This module reads URLs and the job file's store settings; :mod:`.object_store` lists and
probes objects, :mod:`.object_reader` streams one, and the parts and checks built on them are in
:mod:`ometria_sync.sources.object_parts`.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from ometria_sync.errors import ConfigError
from ometria_sync.net.urls import redact_url

SCHEMES = ("s3://", "gs://")
#: job-file keys that would hold a credential: refused, with where credentials go instead
_SECRET_WORDS = ("secret", "password", "session_token", "credential", "access_key", "private_key",
                 "account_key", "service_account")


def is_object_url(value: str) -> bool:
    """True for ``s3://...`` and ``gs://...``."""
    return value.startswith(SCHEMES)


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
