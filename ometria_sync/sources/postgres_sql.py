"""What the PostgreSQL source says to the server: connecting (the DSN never shown), describing
the query's columns, the keyset statements, cursor values as text, the fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.net.urls import dsn_message

if TYPE_CHECKING:  # the settings import this module for their preflight
    from ometria_sync.sources.postgres import PostgresSourceConfig


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
