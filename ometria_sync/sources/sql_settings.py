"""The job file's table of a SQL source (``kind = "postgres"``, ``kind = "mysql"``): the keys
both share, checked once at start-up, the ``{cursor_after}`` marker's rules, and what a position
and the fingerprint of a read are made of.

    source = { kind = "mysql", dsn_env = "SHOP_DSN", query = "SELECT ... WHERE {cursor_after}",
               cursor = ["updated_at", "id"] }

Without the marker the query is wrapped (``SELECT * FROM (query) AS src WHERE (cursor) > (...)
ORDER BY cursor LIMIT n``); with it, the query places the keyset predicate itself and only
``ORDER BY cursor LIMIT n`` is appended (:mod:`ometria_sync.sources.keyset` says what it
expands to).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from typing import Any

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.sources.base import Deletions, SourceConfig
from ometria_sync.sources.columns import LINEITEMS_NEED_CSV, check_columns, computed_only
from ometria_sync.sources.mapping import LINEITEM_PREFIX, ColumnSpec, load_zone

#: where the query places the keyset predicate itself (see the module doc)
MARKER = "{cursor_after}"
#: ``lookback_seconds`` when it is not set and the first cursor column is a timestamp
DEFAULT_LOOKBACK_SECONDS = 300.0


def dsn_missing(dsn_env: str) -> str:
    return f"the environment variable {dsn_env} is not set (it holds the connection string)"


class SqlSourceConfig(SourceConfig, frozen=True):
    """The keys of every SQL source; each driver's config adds its tag (and nothing else the
    reader depends on)."""

    dsn_env: str
    query: str
    cursor: list[str]
    page_size: int = 5000
    json_column: str | None = None
    #: column -> field path or ``{ field, type, values, default, expr, on_error, trim }``,
    #: as for CSV (docs/mapping.md); columns not named keep their name as the path
    columns: dict[str, str | ColumnSpec] = msgspec.field(default_factory=dict)
    drop: list[str] = msgspec.field(default_factory=list)
    constants: dict[str, Any] = msgspec.field(default_factory=dict)
    #: zone for timestamps without a zone (PostgreSQL ``timestamp``, MySQL ``DATETIME``)
    timezone: str = "UTC"
    connect_timeout: float = 10.0
    #: on resume, also re-read rows whose first cursor column (a timestamp) lies this many
    #: seconds before the checkpoint: rows of transactions that committed late. Not set:
    #: DEFAULT_LOOKBACK_SECONDS when the first cursor column is a timestamp, else 0
    lookback_seconds: float | None = None
    #: ``on_missing``: the ids deleted since a cursor (a soft-delete flag, an audit table),
    #: read by keyset on ``deleted_cursor`` like ``query``; a column ``id``
    deleted_query: str | None = None
    deleted_cursor: list[str] = msgspec.field(default_factory=list)
    #: ``on_missing``: every current id (a column ``id``), read whole every ``sweep_every``
    #: ("7d", "12h", "30m")
    keys_query: str | None = None
    sweep_every: str = "7d"

    def deletions(self) -> Deletions:
        """The deleted and keys queries as sources of their own (same database, ids only)."""
        keep = {k: v for k, v in self.constants.items() if k == "@collection"}
        plain = msgspec.structs.replace(self, columns={}, drop=[], constants=keep,
                                        json_column=None, deleted_query=None, keys_query=None,
                                        lookback_seconds=0.0)
        deleted = keys = None
        if self.deleted_query:
            deleted = msgspec.structs.replace(plain, query=self.deleted_query,
                                              cursor=self.deleted_cursor)
        if self.keys_query:
            keys = msgspec.structs.replace(plain, query=self.keys_query, cursor=["id"])
        return Deletions(deleted, keys, sweep_seconds(self.sweep_every) or 0.0)

    @property
    def placed(self) -> bool:
        """The query places the keyset predicate itself (``{cursor_after}``)."""
        return MARKER in self.query

    def check_credentials(self, key: str) -> None:
        if not os.environ.get(self.dsn_env):
            raise ConfigError(f"{key}.dsn_env", dsn_missing(self.dsn_env))

    def check(self, key: str) -> None:
        if not self.cursor:
            raise ConfigError(f"{key}.cursor", "name at least one column (e.g. "
                                               "[\"updated_at\", \"id\"])")
        if not 1 <= self.page_size <= 100_000:
            raise ConfigError(f"{key}.page_size", f"must be 1..100000, got {self.page_size}")
        if self.lookback_seconds is not None and not self.lookback_seconds >= 0:
            raise ConfigError(f"{key}.lookback_seconds",
                              f"must be >= 0, got {self.lookback_seconds}")
        if "{cursor" in self.query.replace(MARKER, ""):
            raise ConfigError(f"{key}.query", "the only marker is {cursor_after} (the keyset "
                                              "predicate on the cursor columns)")
        if self.deleted_query and not self.deleted_cursor:
            raise ConfigError(f"{key}.deleted_cursor", "name the columns the deleted_query is "
                                                       "read by (e.g. [\"deleted_at\", \"id\"])")
        if sweep_seconds(self.sweep_every) is None:
            raise ConfigError(f"{key}.sweep_every", f"expected a duration like \"7d\", "
                                                    f"\"12h\" or \"30m\", got "
                                                    f"{self.sweep_every!r}")
        check_columns(key, self.columns, load_zone(f"{key}.timezone", self.timezone))
        for name, spec in self.columns.items():
            fields = [spec] if isinstance(spec, str) else spec.fields
            if any(f.startswith(LINEITEM_PREFIX) for f in fields):
                raise ConfigError(f"{key}.columns.{name}", LINEITEMS_NEED_CSV)

    def check_result(self, key: str, columns: dict[str, str], times: frozenset[str]) -> None:
        """The described result must have the cursor, dropped, JSON and mapped columns (a
        computed column excepted); a lookback needs a timestamp (one of ``times``) first."""
        for field, names in (("cursor", [*self.cursor, *self.drop,
                                         *filter(None, [self.json_column])]),
                             ("columns", [c for c, spec in self.columns.items()
                                          if not computed_only(spec)])):
            missing = [c for c in names if c not in columns]
            if missing:
                raise ConfigError(f"{key}.{field}", f"the query has no column "
                                                    f"{', '.join(missing)} (its columns: "
                                                    f"{', '.join(columns)})")
        if self.lookback_seconds and columns[self.cursor[0]] not in times:
            raise ConfigError(f"{key}.lookback_seconds", f"needs a timestamp as the first cursor "
                                                         f"column; {self.cursor[0]} is "
                                                         f"{columns[self.cursor[0]]}")

    def lookback_for(self, head_type: str | None, stamps: frozenset[str]) -> float:
        """The lookback in seconds, given the first cursor column's type."""
        if self.lookback_seconds is not None:
            return self.lookback_seconds
        return DEFAULT_LOOKBACK_SECONDS if head_type in stamps else 0.0


_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def sweep_seconds(text: str) -> float | None:
    """``7d``, ``12h``, ``30m``, ``45s`` in seconds (None: not such a duration)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhms])", text.strip())
    return float(match[1]) * _UNITS[match[2]] if match else None


# What a SQL source's position and fingerprint are made of: cursor values as text (read back by
# the database as the same values), and a digest of the query, the cursor and the result's types.


def cursor_text(value: Any) -> str:
    """A cursor value as text its database reads back as the same value."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def key_text(key: tuple[Any, ...]) -> list[str]:
    return [cursor_text(v) for v in key]


def _digest(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:12]


def source_fingerprint(kind: str, config: SqlSourceConfig, types: dict[str, str]) -> str:
    """What a position depends on: the query, the cursor columns and the result's types."""
    return (f"{kind}:query={_digest(config.query)}:cursor={','.join(config.cursor)}"
            f":types={_digest(list(types.items()))}")
