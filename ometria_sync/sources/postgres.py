"""A PostgreSQL query read incrementally, by keyset pagination on its cursor columns.

    source = { kind = "postgres", dsn_env = "SOURCE_DSN",
               query = "SELECT ... FROM orders", cursor = ["updated_at", "id"] }

Pages of ``page_size`` rows come from ``SELECT * FROM (query) AS src WHERE (cursor) > (last)
ORDER BY cursor LIMIT n``: no OFFSET, so every page costs the same, and nothing is held open
between pages. The position after a row is ``{"after": [its cursor values as text]}``, so the
checkpoint is the last acknowledged cursor value and a nightly run reads only rows whose
cursor moved past it (``updated_at`` bumped on every change). Cursor columns must be NOT NULL
and should, together, be unique (end them with the primary key).

A cursor that is not unique is still read whole (see :mod:`.postgres_query`): a checkpoint
never falls inside a group of rows that tie on it.

The fingerprint is the query, the cursor and the result's column types: a checkpoint taken on
another query or cursor means nothing here, so a changed source is read from the start.

Rows become records by column name: an alias with dots (``email AS "customer.email"``) fills a
nested field; ``json_column`` names a json/jsonb column holding the record (other columns are
added to it). NULLs leave the field out.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import Source, SourceConfig
from ometria_sync.sources.mapping import load_zone
from ometria_sync.sources.one_part import SinglePartSource
from ometria_sync.sources.postgres_query import PostgresQuery
from ometria_sync.sources.postgres_sql import STAMPS, TIMES, connect, describe, dsn_missing

__all__ = ["DEFAULT_LOOKBACK_SECONDS", "PostgresQuery", "PostgresSourceConfig"]

#: ``lookback_seconds`` when it is not set and the first cursor column is a timestamp
DEFAULT_LOOKBACK_SECONDS = 300.0


class PostgresSourceConfig(SourceConfig, frozen=True, tag="postgres"):
    dsn_env: str
    query: str
    cursor: list[str]
    page_size: int = 5000
    json_column: str | None = None
    drop: list[str] = msgspec.field(default_factory=list)
    constants: dict[str, Any] = msgspec.field(default_factory=dict)
    #: zone for ``timestamp without time zone`` values (an IANA name)
    timezone: str = "UTC"
    connect_timeout: float = 10.0
    #: on resume, also re-read rows whose first cursor column (a timestamp) lies this many
    #: seconds before the checkpoint: rows of transactions that committed late. Not set:
    #: DEFAULT_LOOKBACK_SECONDS when the first cursor column is a timestamp, else 0
    lookback_seconds: float | None = None

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
        load_zone(f"{key}.timezone", self.timezone)

    async def preflight(self, key: str) -> None:
        """Connect and describe the query: its columns must include the cursor columns."""
        self.check_credentials(key)
        try:
            conn = await connect(self)
        except SourceError as exc:
            raise ConfigError(f"{key}.dsn_env", str(exc)) from exc
        try:
            columns = await describe(conn, self)
        except SourceError as exc:
            raise ConfigError(f"{key}.query", str(exc)) from exc
        finally:
            await conn.close()
        missing = [c for c in [*self.cursor, *self.drop, *filter(None, [self.json_column])]
                   if c not in columns]
        if missing:
            raise ConfigError(f"{key}.cursor", f"the query has no column {', '.join(missing)} "
                                               f"(its columns: {', '.join(columns)})")
        if self.lookback_seconds and columns[self.cursor[0]] not in TIMES:
            raise ConfigError(f"{key}.lookback_seconds", f"needs a timestamp as the first cursor "
                                                         f"column; {self.cursor[0]} is "
                                                         f"{columns[self.cursor[0]]}")

    def lookback(self, types: dict[str, str]) -> float:
        """The lookback in seconds, given the result's column types."""
        if self.lookback_seconds is not None:
            return self.lookback_seconds
        return DEFAULT_LOOKBACK_SECONDS if types.get(self.cursor[0]) in STAMPS else 0.0

    def open(self) -> Source:
        return SinglePartSource(PostgresQuery(self))
