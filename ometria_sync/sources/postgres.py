"""A PostgreSQL query read incrementally, by keyset pagination on its cursor columns.

    source = { kind = "postgres", dsn_env = "SOURCE_DSN",
               query = "SELECT ... FROM orders", cursor = ["updated_at", "id"] }

The paging, ties, positions, fingerprint and the ``{cursor_after}`` marker are the SQL
sources' own (:mod:`ometria_sync.sources.keyset`); this module is asyncpg's side: connecting
with the DSN never shown, json/jsonb decoded, describing the query by preparing it (never
running it), cursor values sent as text cast to the column's type, a tie group streamed by a
server-side cursor in a read-only transaction. Cursor columns must be NOT NULL and should,
together, be unique (end them with the primary key).

Values: numeric as numbers (``NaN`` stays a float NaN, which validation refuses), timestamps
with an offset (``timestamp`` read in ``timezone``), dates ``YYYY-MM-DD``, UUIDs and network
addresses as text; ranges, bit strings, intervals and bytes stay as they are and validation
refuses the row with the field's path.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.net import dsn_message
from ometria_sync.sources.base import SinglePartSource, Source
from ometria_sync.sources.columns import Converter
from ometria_sync.sources.keyset import KeysetQuery, Row, SqlDriver, preflight
from ometria_sync.sources.mapping import python_value
from ometria_sync.sources.sql_settings import (
    DEFAULT_LOOKBACK_SECONDS,
    SqlSourceConfig,
    dsn_missing,
)

__all__ = ["DEFAULT_LOOKBACK_SECONDS", "PostgresQuery", "PostgresSourceConfig"]

STAMPS = frozenset(("timestamptz", "timestamp"))


def _type_name(pg_type: Any) -> str:
    schema = getattr(pg_type, "schema", "pg_catalog")
    return pg_type.name if schema == "pg_catalog" else f'"{schema}"."{pg_type.name}"'


class PostgresDriver(SqlDriver):
    product = "PostgreSQL"
    kind = "postgres"
    stamps = STAMPS
    numbered = True
    row_compare = True

    def __init__(self, config: SqlSourceConfig) -> None:
        super().__init__(config)
        self._conn: asyncpg.Connection | None = None

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "connect() first"
        return self._conn

    async def connect(self) -> None:
        """A connection that decodes json/jsonb into Python values. The DSN is never printed;
        an unset ``dsn_env`` is refused, never taken for asyncpg's defaults."""
        config = self.config
        dsn = os.environ.get(config.dsn_env, "")
        if not dsn:
            raise SourceError(f"cannot connect to PostgreSQL: {dsn_missing(config.dsn_env)}")
        try:
            conn = await asyncpg.connect(dsn, timeout=config.connect_timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
            raise SourceError(f"cannot connect to PostgreSQL ({config.dsn_env}): "
                              f"{type(exc).__name__}: {dsn_message(exc, dsn)}") from None
        for name in ("json", "jsonb"):
            await conn.set_type_codec(name, encoder=lambda v: msgspec.json.encode(v).decode(),
                                      decoder=msgspec.json.decode, schema="pg_catalog")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def describe(self, sql: str) -> dict[str, str]:
        try:
            statement = await self.conn.prepare(sql)
        except asyncpg.PostgresError as exc:
            raise SourceError(f"the query does not run: {exc}") from None
        return {a.name: _type_name(a.type) for a in statement.get_attributes()}

    async def fetch(self, sql: str, params: list[Any]) -> list[Row]:
        try:
            return list(await self.conn.fetch(sql, *params))
        except (asyncpg.PostgresError, OSError) as exc:
            raise SourceError(str(exc)) from None

    async def stream(self, sql: str, params: list[Any], size: int
                     ) -> AsyncIterator[list[Row]]:
        conn = self.conn
        transaction = conn.transaction(readonly=True)
        try:
            await transaction.start()
            rows = await conn.cursor(sql, *params)
            while chunk := await rows.fetch(size):
                yield list(chunk)
        except (asyncpg.PostgresError, OSError) as exc:
            raise SourceError(str(exc)) from None
        finally:
            if not conn.is_closed():
                await transaction.rollback()

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def param(self, index: int, type_name: str) -> str:
        if type_name == "int":
            return f"${index}"
        if type_name == "float":
            return f"${index}::float8"
        return f"(${index}::text)::{type_name}"

    def minus_seconds(self, value: str, seconds: str) -> str:
        return f"({value} - make_interval(secs => {seconds}))"

    def bind(self, text: str, type_name: str) -> Any:
        return text

    def lookback_param(self, seconds: float) -> Any:
        return seconds

    def among(self, column: str, texts: list[str]) -> tuple[str, list[Any]]:
        return f"{column}::text = ANY($1::text[])", [texts]

    def user_query(self, query: str) -> str:
        return query

    def converter(self, name: str) -> Converter:
        return functools.partial(python_value, zone=self.zone)

    def document(self, value: Any) -> Any:
        return value


class PostgresQuery(KeysetQuery):
    """The query as one part (see :class:`~ometria_sync.sources.keyset.KeysetQuery`)."""

    def __init__(self, config: PostgresSourceConfig) -> None:
        super().__init__(PostgresDriver, config)


class PostgresSourceConfig(SqlSourceConfig, frozen=True, tag="postgres"):
    async def preflight(self, key: str) -> None:
        """Connect and describe the query: its columns must include the cursor columns."""
        await preflight(PostgresDriver, self, key)

    def open(self) -> Source:
        return SinglePartSource(PostgresQuery(self))
