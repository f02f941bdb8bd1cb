"""A folder of nightly drops: every file matching a glob pattern, in name order.

Each file is its own part, with its own checkpoint (keyed by its path) and fingerprint: files
finished on an earlier night are skipped with a seek to their end, a new file is read from the
top, and a file rewritten under the same name (a new fingerprint) is read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.base import Source, SourceConfig, SourcePart
from ometria_sync.sources.files.csv import CsvPart, check_header, check_object_header
from ometria_sync.sources.files.csv_rows import CsvOptions
from ometria_sync.sources.files.jsonl import JsonlPart
from ometria_sync.sources.files.location import FileSettings, LocalPath, check_readable_file

#: the keys only CSV files take (a glob of JSON Lines refuses them): CsvOptions' own
_CSV_ONLY = tuple(name for name in CsvOptions.__struct_fields__
                  if name not in FileSettings.__struct_fields__)


class GlobSourceConfig(CsvOptions, SourceConfig, frozen=True, tag="glob"):
    """``source = { kind = "glob", pattern = "drops/contacts-*.csv.gz", columns = {...} }``;
    ``format`` is ``jsonl`` or ``csv`` (by default from the pattern's suffix)."""

    pattern: str = ""
    format: Literal["jsonl", "csv"] | None = None

    def parts_read_together(self) -> bool:
        return True

    def resolve(self, base_dir: Path) -> GlobSourceConfig:
        return msgspec.structs.replace(
            self, pattern=self.location(self.pattern).resolved(base_dir))

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        name = self.pattern.lower().removesuffix(".gz")
        return "csv" if name.endswith((".csv", ".tsv")) else "jsonl"

    def files(self) -> list[Path]:
        """The matching regular files, in name (path) order."""
        return LocalPath(self.pattern).files()

    def check(self, key: str) -> None:
        self.check_encoding(key)
        if not self.pattern:
            raise ConfigError(f"{key}.pattern", "is required")
        if self.check_location(key, "pattern", self.pattern):
            if self.file_format == "csv":
                self.check_csv(key)
            else:
                self._check_jsonl(key)
            return
        files = self.files()
        if not files:
            raise ConfigError(f"{key}.pattern", f"matches no file: {self.pattern}")
        if self.file_format == "csv":
            self.check_csv(key)
            for path in files:
                check_readable_file(f"{key}.pattern", str(path))
                check_header(key, path, self)
            return
        self._check_jsonl(key)

    async def preflight(self, key: str) -> None:
        """An object pattern: listed, and the first object's first bytes (its header) read."""
        found = await self.location(self.pattern).preflight(f"{key}.pattern", single=False)
        if found is not None and self.file_format == "csv":
            await check_object_header(key, "pattern", *found, self)

    def _check_jsonl(self, key: str) -> None:
        default = CsvOptions()
        for name in _CSV_ONLY:
            if getattr(self, name) != getattr(default, name):
                raise ConfigError(f"{key}.{name}", "only applies to CSV files (format = \"csv\")")

    def open(self) -> Source:
        return GlobSource(self)


class GlobSource:
    """The files matching the pattern when the stream starts."""

    def __init__(self, config: GlobSourceConfig) -> None:
        self._config = config

    async def parts(self) -> list[SourcePart]:
        config = self._config
        found = await config.location(config.pattern).matching()
        if config.file_format == "csv":
            return [CsvPart(where, config, key=key) for key, where in found]
        return [JsonlPart(where, key=key, max_line_bytes=config.line_limit,
                          encoding=config.codec) for key, where in found]

    async def aclose(self) -> None:
        return None
