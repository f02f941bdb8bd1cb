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
from ometria_sync.sources.csv_files import (
    CsvFile,
    CsvObject,
    CsvOptions,
    check_header,
    check_object_header,
)
from ometria_sync.sources.file_settings import FileSettings
from ometria_sync.sources.files import check_readable_file, resolve_path
from ometria_sync.sources.jsonl import JsonlFile, JsonlObject
from ometria_sync.sources.object_parts import (
    matching_objects,
    preflight_objects,
)
from ometria_sync.sources.objects import (
    ObjectUrl,
    is_object_url,
)

#: the keys only CSV files take (a glob of JSON Lines refuses them): CsvOptions' own
_CSV_ONLY = tuple(name for name in CsvOptions.__struct_fields__
                  if name not in FileSettings.__struct_fields__)


class GlobSourceConfig(CsvOptions, SourceConfig, frozen=True, tag="glob"):
    """``source = { kind = "glob", pattern = "drops/contacts-*.csv.gz", columns = {...} }``;
    ``format`` is ``jsonl`` or ``csv`` (by default from the pattern's suffix)."""

    pattern: str = ""
    format: Literal["jsonl", "csv"] | None = None

    def resolve(self, base_dir: Path) -> GlobSourceConfig:
        if is_object_url(self.pattern):
            return self
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
        if not is_object_url(self.pattern):
            return
        first, head_bytes = await preflight_objects(f"{key}.pattern", self.pattern, self.store,
                                                    single=False)
        if self.file_format == "csv":
            await check_object_header(key, "pattern", first, head_bytes, self)

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
        if is_object_url(config.pattern):
            found = await matching_objects(ObjectUrl.parse(config.pattern), config.store)
            if config.file_format == "csv":
                return [CsvObject(info, config, key=str(info.url)) for info in found]
            return [JsonlObject(info, config.store, key=str(info.url),
                                max_line_bytes=config.line_limit) for info in found]
        files = self._config.files()
        if self._config.file_format == "csv":
            return [CsvFile(p, self._config, key=str(p)) for p in files]
        return [JsonlFile(p, key=str(p), max_line_bytes=self._config.line_limit)
                for p in files]

    async def aclose(self) -> None:
        return None
