"""The keys every file source takes (JSON Lines, CSV, a glob of either), declared once.

msgspec lays a Struct's fields out along one chain of bases: two Structs that both declare
fields cannot both be bases of a third. So :class:`FileSettings` is the root of the file
sources' chain (``FileSettings -> JsonlSourceConfig``, ``FileSettings -> CsvOptions ->
CsvSourceConfig / GlobSourceConfig``), each config adding its own keys after it, and the
field-less :class:`~ometria_sync.sources.base.SourceConfig` (the ``kind`` tag) beside it. Its
keys are keyword-only, so a config's own required keys (``path``) still come first.
"""

from __future__ import annotations

from typing import Self

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.lines import DEFAULT_MAX_LINE_BYTES, MaxLineBytes
from ometria_sync.sources.objects import StoreOptions, check_store_options, is_object_url


class FileSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The line cap, and the store settings of ``s3://`` and ``gs://`` paths."""

    #: a longer line is dead-lettered (with its row); None: the job's ``[run] max_line_bytes``
    max_line_bytes: MaxLineBytes | None = None
    #: an S3-compatible store's (or an emulator's) URL, for s3:// and gs:// paths
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def store(self) -> StoreOptions:
        return StoreOptions(self.endpoint_url, self.region)

    @property
    def line_limit(self) -> int:
        return self.max_line_bytes or DEFAULT_MAX_LINE_BYTES

    def with_run_settings(self, *, max_line_bytes: int) -> Self:
        """The job's ``[run] max_line_bytes`` where the source sets none of its own."""
        if self.max_line_bytes is not None:
            return self
        return msgspec.structs.replace(self, max_line_bytes=max_line_bytes)

    def check_location(self, key: str, field: str, value: str) -> bool:
        """True when ``value`` is a valid s3:// or gs:// URL (ConfigError naming ``key.field``
        when it is not); False for a local path, which takes no store settings."""
        if is_object_url(value):
            check_store_options(f"{key}.{field}", value, self.store)
            return True
        for name, setting in (("endpoint_url", self.endpoint_url), ("region", self.region)):
            if setting is not None:
                raise ConfigError(f"{key}.{name}", "only applies to s3:// and gs:// URLs")
        return False
