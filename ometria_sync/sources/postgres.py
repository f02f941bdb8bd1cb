"""A PostgreSQL query read incrementally, by keyset pagination on its cursor columns.

    source = { kind = "postgres", dsn_env = "SOURCE_DSN",
               query = "SELECT ... FROM orders", cursor = ["updated_at", "id"] }

Pages of ``page_size`` rows come from ``SELECT * FROM (query) AS src WHERE (cursor) > (last)
ORDER BY cursor LIMIT n``: no OFFSET, so every page costs the same, and nothing is held open
between pages. The position after a row is ``{"after": [its cursor values as text]}``, so the
checkpoint is the last acknowledged cursor value and a nightly run reads only rows whose
cursor moved past it (``updated_at`` bumped on every change). Cursor columns must be NOT NULL
and, together, unique (end them with the primary key).

Rows become records by column name: an alias with dots (``email AS "customer.email"``) fills a
nested field; ``json_column`` names a json/jsonb column holding the record (other columns are
added to it). NULLs leave the field out.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import Position, Source, SourceConfig, SourceItem
from ometria_sync.sources.jsonl import SinglePartSource
from ometria_sync.sources.mapping import load_zone, put, python_value, split_path


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
    #: seconds before the checkpoint: rows of transactions that committed late
    lookback_seconds: float = 0.0

    def check(self, key: str) -> None:
        if not os.environ.get(self.dsn_env):
            raise ConfigError(f"{key}.dsn_env", f"the environment variable {self.dsn_env} "
                                                "is not set (it holds the connection string)")
        if not self.cursor:
            raise ConfigError(f"{key}.cursor", "name at least one column (e.g. "
                                               "[\"updated_at\", \"id\"])")
        if not 1 <= self.page_size <= 100_000:
            raise ConfigError(f"{key}.page_size", f"must be 1..100000, got {self.page_size}")
        load_zone(f"{key}.timezone", self.timezone)

    async def preflight(self, key: str) -> None:
        """Connect and describe the query: its columns must include the cursor columns."""
        try:
            conn = await _connect(self)
        except SourceError as exc:
            raise ConfigError(f"{key}.dsn_env", str(exc)) from exc
        try:
            columns = await _describe(conn, self)
        except SourceError as exc:
            raise ConfigError(f"{key}.query", str(exc)) from exc
        finally:
            await conn.close()
        missing = [c for c in [*self.cursor, *self.drop, *filter(None, [self.json_column])]
                   if c not in columns]
        if missing:
            raise ConfigError(f"{key}.cursor", f"the query has no column {', '.join(missing)} "
                                               f"(its columns: {', '.join(columns)})")
        if self.lookback_seconds and columns[self.cursor[0]] not in _TIMES:
            raise ConfigError(f"{key}.lookback_seconds", f"needs a timestamp as the first cursor "
                                                         f"column; {self.cursor[0]} is "
                                                         f"{columns[self.cursor[0]]}")

    def open(self) -> Source:
        return SinglePartSource(PostgresQuery(self))


async def _connect(config: PostgresSourceConfig) -> asyncpg.Connection:
    """A connection that decodes json/jsonb into Python values. The DSN is never printed."""
    try:
        conn = await asyncpg.connect(os.environ.get(config.dsn_env, ""),
                                     timeout=config.connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        raise SourceError(f"cannot connect to PostgreSQL ({config.dsn_env}): "
                          f"{type(exc).__name__}: {_safe(exc)}") from None
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=lambda v: msgspec.json.encode(v).decode(),
                                  decoder=msgspec.json.decode, schema="pg_catalog")
    return conn


def _safe(exc: BaseException) -> str:
    """An error's text without anything that looks like a connection string."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return "(details hidden: they contain the DSN)" if "://" in text else text


async def _describe(conn: asyncpg.Connection, config: PostgresSourceConfig) -> dict[str, str]:
    """Column name -> type name of the query's result."""
    try:
        statement = await conn.prepare(f"SELECT * FROM ({config.query}) AS src LIMIT 0")
    except asyncpg.PostgresError as exc:
        raise SourceError(f"the query does not run: {exc}") from None
    return {a.name: _type_name(a.type) for a in statement.get_attributes()}


def _type_name(pg_type: Any) -> str:
    schema = getattr(pg_type, "schema", "pg_catalog")
    return pg_type.name if schema == "pg_catalog" else f'"{schema}"."{pg_type.name}"'


_TIMES = frozenset(("timestamptz", "timestamp", "date"))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cursor_text(value: Any) -> str:
    """A cursor value as text PostgreSQL casts back to the same value."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


class PostgresQuery:
    """The query as one part, read page by page from the last cursor position."""

    def __init__(self, config: PostgresSourceConfig) -> None:
        self._config = config
        self._zone = load_zone("timezone", config.timezone)

    @property
    def key(self) -> str:
        return ""

    @property
    def label(self) -> str:
        return f"postgres:{self._config.dsn_env}"

    async def fingerprint(self) -> str | None:
        return None  # a cursor position keeps its meaning when rows change

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        config = self._config
        conn = await _connect(config)
        try:
            types = await _describe(conn, config)
            first, following, looking_back = self._statements(types)
            last: list[str] | None = list(start["after"]) if start else None
            back = bool(last and config.lookback_seconds)
            while True:
                try:
                    if back and last is not None:
                        rows = await conn.fetch(looking_back, last[0], config.lookback_seconds,
                                                config.page_size)
                        back = False
                    elif last is None:
                        rows = await conn.fetch(first, config.page_size)
                    else:
                        rows = await conn.fetch(following, *last, config.page_size)
                except (asyncpg.PostgresError, OSError) as exc:
                    raise SourceError(f"{self.label}: reading after {last}: {exc}") from None
                if not rows:
                    return
                chunk = [self._item(row) for row in rows]
                last = list(chunk[-1].position["after"])
                yield chunk
                if len(rows) < config.page_size:
                    return
        finally:
            await conn.close()

    def _statements(self, types: dict[str, str]) -> tuple[str, str, str]:
        """The first page, the page after a position, and the first page of a resumed read
        that looks back ``lookback_seconds`` before the position."""
        config = self._config
        cols = ", ".join(_ident(c) for c in config.cursor)
        params = ", ".join(f"(${i}::text)::{types[c]}" for i, c in enumerate(config.cursor, 1))
        limit = f"${len(config.cursor) + 1}"
        base = f"SELECT * FROM ({config.query}) AS src"
        head = config.cursor[0]
        since = f"(($1::text)::{types[head]} - make_interval(secs => $2::float8))"
        return (f"{base} ORDER BY {cols} LIMIT $1",
                f"{base} WHERE ({cols}) > ({params}) ORDER BY {cols} LIMIT {limit}",
                f"{base} WHERE {_ident(head)} > {since} ORDER BY {cols} LIMIT $3")

    def _item(self, row: asyncpg.Record) -> SourceItem:
        config = self._config
        cursor = [row[c] for c in config.cursor]
        if any(v is None for v in cursor):
            raise SourceError(f"{self.label}: a row has NULL in a cursor column "
                              f"({', '.join(config.cursor)}); cursor columns must be NOT NULL")
        # an object, not a list: text cursor values do not compare like the values they stand
        # for ("10" < "9"), so the checkpoint store must not order them
        position = {"after": [_cursor_text(v) for v in cursor]}
        try:
            record = self._record(row)
        except (TypeError, ValueError) as exc:
            return SourceItem(record=None, position=position, raw=repr(dict(row.items())),
                              error=f"row at cursor {position['after']}: {exc}")
        return SourceItem(record=record, position=position)

    def _record(self, row: asyncpg.Record) -> dict[str, Any]:
        config = self._config
        record: dict[str, Any] = {}
        if config.json_column is not None:
            document = row[config.json_column]
            if not isinstance(document, dict):
                raise ValueError(f"column {config.json_column!r} does not hold a JSON object")
            record.update(document)
        skip = {*config.drop, *filter(None, [config.json_column])}
        for name, value in row.items():
            if value is None or name in skip:
                continue
            put(record, split_path(name), python_value(value, self._zone))
        for path, value in config.constants.items():
            put(record, split_path(path), value)
        return record
