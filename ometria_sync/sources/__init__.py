"""Sources: producers of raw records with resume positions (files, PostgreSQL, MySQL,
Magento 2, Omneo).

Every kind of source the job file can name is one member of :data:`SourceSpec`, a tagged
union on ``kind``; :data:`SOURCE_KINDS` are its tags.
"""

from __future__ import annotations

from typing import get_args

from ometria_sync.sources.base import (
    Deletions,
    Position,
    Source,
    SourceConfig,
    SourceItem,
    SourcePart,
)
from ometria_sync.sources.files import CsvSourceConfig, GlobSourceConfig, JsonlSourceConfig
from ometria_sync.sources.files.lines import (
    DEFAULT_MAX_LINE_BYTES,
    LineGroup,
    MaxLineBytes,
    RawLines,
)
from ometria_sync.sources.files.location import resolve_path
from ometria_sync.sources.files.store import SECRET_REFUSED, secret_setting
from ometria_sync.sources.magento2 import Magento2SourceConfig
from ometria_sync.sources.mysql import MysqlSourceConfig
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.settings import check_shared_tenants
from ometria_sync.sources.postgres import PostgresSourceConfig

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "SECRET_REFUSED",
    "SOURCE_KINDS",
    "Deletions",
    "JsonlSourceConfig",
    "LineGroup",
    "MaxLineBytes",
    "Position",
    "RawLines",
    "Source",
    "SourceConfig",
    "SourceItem",
    "SourcePart",
    "SourceSpec",
    "check_shared_tenants",
    "resolve_path",
    "secret_setting",
]

#: ``source = { kind = "..." , ... }`` decodes to one of these.
SourceSpec = (
    JsonlSourceConfig | CsvSourceConfig | GlobSourceConfig | PostgresSourceConfig
    | MysqlSourceConfig | Magento2SourceConfig | OmneoProfilesConfig | OmneoTransactionsConfig
)

#: the ``kind`` tags, derived from the union (the order it lists them in)
SOURCE_KINDS: tuple[str, ...] = tuple(
    str(spec.__struct_config__.tag) for spec in get_args(SourceSpec))
