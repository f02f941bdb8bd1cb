"""A PostgreSQL query read incrementally, by keyset pagination on its cursor columns.

    source = { kind = "postgres", dsn_env = "SOURCE_DSN",
               query = "SELECT ... FROM orders", cursor = ["updated_at", "id"] }

Pages of ``page_size`` rows come from ``SELECT * FROM (query) AS src WHERE (cursor) > (last)
ORDER BY cursor LIMIT n``: no OFFSET, so every page costs the same, and nothing is held open
between pages. The position after a row is ``{"after": [its cursor values as text]}``, so the
checkpoint is the last acknowledged cursor value and a nightly run reads only rows whose
cursor moved past it (``updated_at`` bumped on every change). Cursor columns must be NOT NULL
and should, together, be unique (end them with the primary key).

A cursor that is not unique is still read whole (see :class:`PostgresQuery`): a checkpoint
never falls inside a group of rows that tie on it.

The fingerprint is the query, the cursor and the result's column types: a checkpoint taken on
another query or cursor means nothing here, so a changed source is read from the start.

Rows become records by column name: an alias with dots (``email AS "customer.email"``) fills a
nested field; ``json_column`` names a json/jsonb column holding the record (other columns are
added to it). NULLs leave the field out.

What it says to the server (connecting with the DSN never shown, describing the query's
columns, the keyset statements, cursor values as text) is at the top of this module, the
reader in the middle, the job file's table at the bottom.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import asyncpg
import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.net import dsn_message
from ometria_sync.sources.base import (
    Position,
    SinglePartSource,
    Source,
    SourceConfig,
    SourceItem,
    checkpoint_as,
)
from ometria_sync.sources.mapping import load_zone, put, python_value, split_path

__all__ = ["DEFAULT_LOOKBACK_SECONDS", "PostgresQuery", "PostgresSourceConfig"]


def dsn_missing(dsn_env: str) -> str:
    return f"the environment variable {dsn_env} is not set (it holds the connection string)"


async def connect(config: PostgresSourceConfig) -> asyncpg.Connection:
    """A connection that decodes json/jsonb into Python values. The DSN is never printed;
    an unset ``dsn_env`` is refused, never taken for asyncpg's defaults."""
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
    return conn


async def describe(conn: asyncpg.Connection, config: PostgresSourceConfig) -> dict[str, str]:
    """Column name -> type name of the query's result (prepared, never run)."""
    try:
        statement = await conn.prepare(f"SELECT * FROM ({config.query}) AS src LIMIT 0")
    except asyncpg.PostgresError as exc:
        raise SourceError(f"the query does not run: {exc}") from None
    return {a.name: _type_name(a.type) for a in statement.get_attributes()}


def _type_name(pg_type: Any) -> str:
    schema = getattr(pg_type, "schema", "pg_catalog")
    return pg_type.name if schema == "pg_catalog" else f'"{schema}"."{pg_type.name}"'


STAMPS = frozenset(("timestamptz", "timestamp"))
TIMES = STAMPS | {"date"}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cursor_text(value: Any) -> str:
    """A cursor value as text PostgreSQL casts back to the same value."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def key_text(key: tuple[Any, ...]) -> list[str]:
    return [cursor_text(v) for v in key]


def _digest(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:12]


def source_fingerprint(config: PostgresSourceConfig, types: dict[str, str]) -> str:
    """What a position depends on: the query, the cursor columns and the result's types."""
    return (f"postgres:query={_digest(config.query)}:cursor={','.join(config.cursor)}"
            f":types={_digest(list(types.items()))}")


class Statements:
    """The queries of one read: the first page, the page after a position, the first page of
    a resumed read that looks back before the position, and the rows equal to a position."""

    def __init__(self, config: PostgresSourceConfig, types: dict[str, str]) -> None:
        cols = ", ".join(ident(c) for c in config.cursor)
        params = ", ".join(f"(${i}::text)::{types[c]}" for i, c in enumerate(config.cursor, 1))
        limit = f"${len(config.cursor) + 1}"
        base = f"SELECT * FROM ({config.query}) AS src"
        head = config.cursor[0]
        since = f"(($1::text)::{types[head]} - make_interval(secs => $2::float8))"
        self.first = f"{base} ORDER BY {cols} LIMIT $1"
        self.following = f"{base} WHERE ({cols}) > ({params}) ORDER BY {cols} LIMIT {limit}"
        self.looking_back = f"{base} WHERE {ident(head)} > {since} ORDER BY {cols} LIMIT $3"
        self.equal = f"{base} WHERE ({cols}) = ({params})"


#: a position as this source makes it: the cursor values (as text) of the last row before it
After = dict[str, list[str] | None]
#: the position before the first row: reading from it starts at the top
_TOP: After = {"after": None}


class _Checkpoint(msgspec.Struct):
    """A position read back from a checkpoint (None: the top)."""

    after: list[str] | None = None


Key = tuple[Any, ...]


class PostgresQuery:
    """The query as one part, read page by page from the last cursor position.

    A cursor that is not unique is still read whole: rows that tie on the cursor are one
    group. A page never ends inside a group (when the row after the page ties with its last
    row, the group is read whole by an equality query, streamed), and every row of a group but
    the last carries the position *before* the group, so a checkpoint never falls inside one:
    a resume reads the group again, and change detection drops what was already sent."""

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
        """Another query, cursor or result type starts from the top (see the module doc)."""
        conn = await connect(self._config)
        try:
            return source_fingerprint(self._config, await describe(conn, self._config))
        finally:
            await conn.close()

    async def size(self) -> int | None:
        """A query's size is not known before it is read."""
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        config = self._config
        last = self._resume_values(start)
        conn = await connect(config)
        try:
            types = await describe(conn, config)
            sql = Statements(config, types)
            lookback = config.lookback(types) if last is not None else 0.0
            before: After = _TOP if last is None else {"after": last}
            while True:
                rows = await self._page(conn, sql, last, lookback)
                lookback = 0.0
                more = len(rows) > config.page_size
                tied = self._cut(rows) if more else None
                if rows:
                    chunk, before = self._items(rows, before)
                    yield chunk
                if tied is not None:
                    async with contextlib.aclosing(self._group(conn, sql, tied, before)) as group:
                        async for chunk in group:
                            yield chunk
                    before = {"after": key_text(tied)}
                elif not more:
                    return
                last = before["after"]
        finally:
            await conn.close()

    async def read_ids(self, ids: list[str]) -> list[SourceItem] | None:
        """The rows whose ``id`` column is one of ``ids``, as they are now (the ledger's
        resends: the source's latest version rather than a kept payload). None when the
        query has no ``id`` column the records take their id from."""
        config = self._config
        conn = await connect(config)
        try:
            if "id" not in await describe(conn, config) or "id" in config.drop:
                return None
            rows = await conn.fetch(f"SELECT * FROM ({config.query}) AS src "
                                    f"WHERE {ident('id')}::text = ANY($1::text[])", ids)
        except (asyncpg.PostgresError, OSError) as exc:
            raise SourceError(f"{self.label}: reading rows by id: {exc}") from None
        finally:
            await conn.close()
        return [self._item(row, {"after": None}) for row in rows]

    def _resume_values(self, start: Position | None) -> list[str] | None:
        if start is None:
            return None
        after = checkpoint_as(_Checkpoint, start, self.label,
                              'a PostgreSQL position ({"after": [cursor values as text]})').after
        if after is None:
            return None
        if len(after) != len(self._config.cursor):
            raise SourceError(f"{self.label}: the checkpoint holds {len(after)} cursor values "
                              f"but the cursor has {len(self._config.cursor)} columns; run "
                              "`ometria-sync reset` for this stream")
        return list(after)

    async def _page(self, conn: asyncpg.Connection, sql: Statements, last: list[str] | None,
                    lookback: float) -> list[asyncpg.Record]:
        """Up to ``page_size + 1`` rows after ``last``: the extra row tells whether the page
        ends inside a group of rows that tie on the cursor."""
        limit = self._config.page_size + 1
        try:
            if last is None:
                return list(await conn.fetch(sql.first, limit))
            if lookback:
                return list(await conn.fetch(sql.looking_back, last[0], lookback, limit))
            return list(await conn.fetch(sql.following, *last, limit))
        except (asyncpg.PostgresError, OSError) as exc:
            raise SourceError(f"{self.label}: reading after {last}: {exc}") from None

    def _cut(self, rows: list[asyncpg.Record]) -> Key | None:
        """Drop the look-ahead row; when it ties with the page's last row, also drop that
        row's group and return its cursor value (the group is read whole afterwards)."""
        extra = self._key(rows.pop())
        if self._key(rows[-1]) != extra:
            return None
        while rows and self._key(rows[-1]) == extra:
            rows.pop()
        return extra

    def _items(self, rows: list[asyncpg.Record], before: After
               ) -> tuple[list[SourceItem], After]:
        """The rows as items, and the position after the last complete group. A row tied
        with the next one carries ``before``, the position before its group."""
        keys = [self._key(row) for row in rows]
        items: list[SourceItem] = []
        for index, row in enumerate(rows):
            if index + 1 == len(rows) or keys[index + 1] != keys[index]:
                before = {"after": key_text(keys[index])}
            items.append(self._item(row, before))
        return items, before

    async def _group(self, conn: asyncpg.Connection, sql: Statements, key: Key,
                     before: After) -> AsyncGenerator[list[SourceItem], None]:
        """Every row whose cursor equals ``key``, streamed by a server-side cursor in chunks
        of ``page_size``; all but the last carry ``before``."""
        params = key_text(key)
        size = self._config.page_size
        transaction = conn.transaction(readonly=True)
        try:
            await transaction.start()
            rows = await conn.cursor(sql.equal, *params)
            held = await rows.fetch(size)
            while held:
                following = await rows.fetch(size)
                chunk = [self._item(row, before) for row in held[:-1]]
                chunk.append(self._item(held[-1], {"after": params} if not following
                                        else before))
                yield chunk
                held = following
        except (asyncpg.PostgresError, OSError) as exc:
            raise SourceError(f"{self.label}: reading the rows at {params}: {exc}") from None
        finally:
            if not conn.is_closed():
                await transaction.rollback()

    def _key(self, row: asyncpg.Record) -> Key:
        key = tuple(row[c] for c in self._config.cursor)
        if any(v is None for v in key):
            raise SourceError(f"{self.label}: a row has NULL in a cursor column "
                              f"({', '.join(self._config.cursor)}); cursor columns must be "
                              "NOT NULL")
        return key

    def _item(self, row: asyncpg.Record, position: Position) -> SourceItem:
        # the position is an object, not a list: text cursor values do not compare like the
        # values they stand for ("10" < "9"), so the checkpoint store must not order them
        try:
            record = self._record(row)
        except (TypeError, ValueError) as exc:
            return SourceItem(record=None, position=position, raw=repr(dict(row.items())),
                              error=f"row at cursor {key_text(self._key(row))}: {exc}")
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
