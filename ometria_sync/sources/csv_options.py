"""The keys of a CSV source beyond the file's: the mapping from rows to records, the dialect."""

from __future__ import annotations

from typing import Any

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.file_settings import FileSettings
from ometria_sync.sources.mapping import ColumnSpec, load_zone


class CsvOptions(FileSettings, frozen=True):
    """The mapping from rows to records, and the CSV dialect."""

    #: column -> field path (a string) or ``{ field = ..., type = ... }``
    columns: dict[str, str | ColumnSpec] = msgspec.field(default_factory=dict)
    drop: list[str] = msgspec.field(default_factory=list)
    constants: dict[str, Any] = msgspec.field(default_factory=dict)
    #: zone for timestamps written without an offset (an IANA name)
    timezone: str = "UTC"
    delimiter: str = ","
    quotechar: str = '"'

    def check_csv(self, key: str) -> None:
        if len(self.delimiter) != 1:
            raise ConfigError(f"{key}.delimiter", f"must be one character, got {self.delimiter!r}")
        if len(self.quotechar) != 1:
            raise ConfigError(f"{key}.quotechar", f"must be one character, got {self.quotechar!r}")
        load_zone(f"{key}.timezone", self.timezone)
