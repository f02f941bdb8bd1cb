"""A folder of nightly drops: every file matching a glob pattern, in name order.

Each file is its own part, with its own checkpoint (keyed by its path) and fingerprint: files
finished on an earlier night are skipped with a seek to their end, a new file is read from the
top, and a file rewritten under the same name (a new fingerprint) is read again.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.base import Source, SourceConfig, SourcePart
from ometria_sync.sources.csv_files import CsvFile, CsvOptions, check_header
from ometria_sync.sources.files import check_readable_file, resolve_path
from ometria_sync.sources.jsonl import JsonlFile

_CSV_ONLY = ("columns", "drop", "constants", "timezone", "delimiter", "quotechar")


class GlobSourceConfig(CsvOptions, SourceConfig, frozen=True, tag="glob"):
    """``source = { kind = "glob", pattern = "drops/contacts-*.csv.gz", columns = {...} }``;
    ``format`` is ``jsonl`` or ``csv`` (by default from the pattern's suffix)."""

    pattern: str = ""
    format: Literal["jsonl", "csv"] | None = None

    def resolve(self, base_dir: Path) -> GlobSourceConfig:
        return msgspec.structs.replace(self, pattern=resolve_path(base_dir, self.pattern))

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        name = self.pattern.lower().removesuffix(".gz")
        return "csv" if name.endswith((".csv", ".tsv")) else "jsonl"

    def files(self) -> list[Path]:
        """The matching regular files, in name (path) order."""
        return [Path(p) for p in sorted(glob.glob(self.pattern)) if Path(p).is_file()]

    def check(self, key: str) -> None:
        if not self.pattern:
            raise ConfigError(f"{key}.pattern", "is required")
        files = self.files()
        if not files:
            raise ConfigError(f"{key}.pattern", f"matches no file: {self.pattern}")
        if self.file_format == "csv":
            self.check_csv(key)
            for path in files:
                check_readable_file(f"{key}.pattern", str(path))
                check_header(key, path, self)
            return
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
        files = self._config.files()
        if self._config.file_format == "csv":
            return [CsvFile(p, self._config, key=str(p)) for p in files]
        return [JsonlFile(p, key=str(p), max_line_bytes=self._config.line_limit)
                for p in files]

    async def aclose(self) -> None:
        return None
