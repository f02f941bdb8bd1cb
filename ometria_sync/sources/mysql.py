"""A MySQL or MariaDB query read incrementally, by keyset pagination on its cursor columns.

    source = { kind = "mysql", dsn_env = "SHOP_DSN",
               query = "SELECT ... FROM sales_order", cursor = ["updated_at", "entity_id"] }

The paging, ties, positions, fingerprint and the ``{cursor_after}`` marker are the SQL
sources' own (:mod:`ometria_sync.sources.keyset`); this module is asyncmy's side.

**Connection.** ``mysql://USER:PASSWORD@HOST[:3306]/DATABASE`` (``mariadb://`` too; the
password never shown). Each session runs ``SET NAMES utf8mb4`` (a latin1 column arrives as
the same text as a utf8mb4 one), ``SET time_zone = '+00:00'`` (``TIMESTAMP`` values are read in
UTC, not shifted to the server's zone) and asks for ``REPEATABLE READ``. Every page is one
``START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT`` ... ``COMMIT``: one snapshot per page,
nothing held between pages; a tie group larger than a page is streamed unbuffered (asyncmy's
``SSCursor``) inside its own such transaction. ``SELECT`` on the tables is all it needs.

**Values.** Integers, ``FLOAT``/``DOUBLE`` as numbers, ``DECIMAL`` as a number (an integer when
whole: ``2.0000`` is ``2``, ``10.5000`` is ``10.5``), ``TINYINT(1)`` stays an integer (0/1: the
result does not say boolean; ``type = "boolean"`` in ``columns`` makes it true/false), ``DATE``
``YYYY-MM-DD``, ``TIMESTAMP`` UTC, ``DATETIME`` read in ``timezone``, a zero or partly-zero
date (``0000-00-00``, ``2024-00-10``) reads as NULL (its field left out, or the column's
``default``), ``JSON`` parsed (MySQL's own type; MariaDB's ``JSON`` is text: name it in
``json_column`` or it is a string), ``TIME`` within a day ``HH:MM:SS``, ``ENUM``/``SET``/text as
strings. ``BINARY``/``BLOB``/``BIT`` stay bytes and validation refuses the row with the field's
path (cast them in the query).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import asyncmy
import msgspec
from asyncmy.connection import Connection
from asyncmy.cursors import SSCursor
from asyncmy.errors import MySQLError

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.net import dsn_message, parse_mysql_dsn
from ometria_sync.sources.base import SinglePartSource, Source
from ometria_sync.sources.columns import Converter
from ometria_sync.sources.keyset import KeysetQuery, Row, SqlDriver, positional, preflight
from ometria_sync.sources.mapping import python_value
from ometria_sync.sources.sql_settings import SqlSourceConfig, dsn_missing

__all__ = ["MysqlQuery", "MysqlSourceConfig"]

#: the session every connection runs first (see the module doc)
SESSION = ("SET NAMES utf8mb4", "SET time_zone = '+00:00'",
           "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
           # an unbuffered tie group waits on the pipeline between chunks
           "SET SESSION net_write_timeout = 600")
BEGIN = "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT"

#: MySQL's field type codes (include/mysql_com.h) by name
_TYPES = {0: "decimal", 1: "tinyint", 2: "smallint", 3: "int", 4: "float", 5: "double",
          7: "timestamp", 8: "bigint", 9: "mediumint", 10: "date", 11: "time", 12: "datetime",
          13: "year", 14: "date", 15: "varchar", 16: "bit", 245: "json", 246: "decimal",
          247: "enum", 248: "set", 249: "blob", 250: "blob", 251: "blob", 252: "blob",
          253: "varchar", 254: "char", 255: "geometry"}
_TEXTUAL = frozenset(("varchar", "char", "blob", "enum", "set"))
_INTEGERS = frozenset(("tinyint", "smallint", "mediumint", "int", "bigint", "year"))
_BINARY_CHARSET = 63
_UNSIGNED_FLAG = 32
STAMPS = frozenset(("timestamp", "datetime"))
_DAY = dt.timedelta(days=1)


def _type_name(field: Any) -> str:
    """``tinyint(1)``, ``decimal(12,4)``, ``int unsigned``, ``text``, ``binary``...: what the
    fingerprint records and the values are converted by."""
    name = _TYPES.get(field.type_code, f"type{field.type_code}")
    if name in _TEXTUAL and name not in ("enum", "set"):
        name = "binary" if field.charsetnr == _BINARY_CHARSET else "text"
    if name == "tinyint":
        name = f"tinyint({field.length})"
    elif name == "decimal":
        name = f"decimal({field.length},{field.scale})"
    if field.flags & _UNSIGNED_FLAG and (name.startswith(("tinyint", "decimal"))
                                         or name in _INTEGERS):
        name += " unsigned"
    return name


def _base(type_name: str) -> str:
    return type_name.split("(", 1)[0].split(" ", 1)[0]


class MysqlDriver(SqlDriver):
    product = "MySQL"
    kind = "mysql"
    stamps = STAMPS
    numbered = False
    row_compare = False

    def __init__(self, config: SqlSourceConfig) -> None:
        super().__init__(config)
        self._conn: Connection | None = None
        self._types: dict[str, str] = {}

    async def connect(self) -> None:
        config = self.config
        dsn = os.environ.get(config.dsn_env, "")
        if not dsn:
            raise SourceError(f"cannot connect to MySQL: {dsn_missing(config.dsn_env)}")
        try:
            where = parse_mysql_dsn(dsn)
        except ValueError as exc:
            raise SourceError(f"cannot connect to MySQL ({config.dsn_env}): {exc}") from None
        try:
            conn = await asyncmy.connect(
                host=where.host, port=where.port, user=where.user, password=where.password,
                database=where.database, charset="utf8mb4", autocommit=True,
                connect_timeout=config.connect_timeout)
            async with conn.cursor() as cursor:
                for statement in SESSION:
                    await cursor.execute(statement)
        except (MySQLError, OSError, TimeoutError) as exc:
            raise SourceError(f"cannot connect to MySQL ({config.dsn_env}): "
                              f"{type(exc).__name__}: {dsn_message(exc, dsn)}") from None
        self._conn = conn

    @property
    def conn(self) -> Connection:
        assert self._conn is not None, "connect() first"
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def describe(self, sql: str) -> dict[str, str]:
        try:
            async with self.conn.cursor() as cursor:
                await cursor.execute(sql, ())
                # description lacks flags and charset: the result's fields have them
                fields = cursor._result.fields  # type: ignore[attr-defined]
        except MySQLError as exc:
            raise SourceError(f"the query does not run: {_message(exc)}") from None
        self._types = {f.name: _type_name(f) for f in fields}
        return dict(self._types)

    async def fetch(self, sql: str, params: list[Any]) -> list[Row]:
        try:
            async with self.conn.cursor() as cursor:
                await cursor.execute(BEGIN)
                await cursor.execute(sql, params)
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
                await self.complete(cursor, rows)
                await cursor.execute("COMMIT")
        except (MySQLError, OSError) as exc:
            raise SourceError(_message(exc)) from None
        return list(rows)

    async def complete(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        """What a subclass reads along with a page, in the page's snapshot (here nothing)."""

    async def stream(self, sql: str, params: list[Any], size: int
                     ) -> AsyncIterator[list[Row]]:
        conn = self.conn
        try:
            async with conn.cursor() as begin:
                await begin.execute(BEGIN)
            cursor = conn.cursor(SSCursor)
            try:
                await cursor.execute(sql, params)
                names = [d[0] for d in cursor.description]
                while chunk := await cursor.fetchmany(size):
                    yield [dict(zip(names, row, strict=True)) for row in chunk]
            finally:
                with contextlib.suppress(MySQLError, OSError):
                    await cursor.close()  # reads what is left of an unbuffered result
                    async with conn.cursor() as end:
                        await end.execute("COMMIT")
        except (MySQLError, OSError) as exc:
            raise SourceError(_message(exc)) from None

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def param(self, index: int, type_name: str) -> str:
        return positional(index)

    def minus_seconds(self, value: str, seconds: str) -> str:
        # a zero date less anything is NULL: the read then starts at the top, never skips
        return f"COALESCE({value} - INTERVAL {seconds} MICROSECOND, '0000-00-00')"

    def bind(self, text: str, type_name: str) -> Any:
        """Cursor text as the value its column holds (MySQL's manual compares a number with
        a string as doubles, which would merge ids past 2**53; MariaDB 10.11 converts the
        constant to the column's type and does not, so no test here can show it)."""
        base = _base(type_name)
        try:
            if base in _INTEGERS:
                return int(text)
            if base == "decimal":
                return Decimal(text)
            if base in STAMPS:
                return dt.datetime.fromisoformat(text)
            if base == "date":
                return dt.date.fromisoformat(text)
        except ValueError:
            return text  # a zero date: compared as the text MySQL wrote
        return text

    def lookback_param(self, seconds: float) -> Any:
        return round(seconds * 1_000_000)

    def among(self, column: str, texts: list[str]) -> tuple[str, list[Any]]:
        return f"CAST({column} AS CHAR) IN ({', '.join(['%s'] * len(texts))})", list(texts)

    def user_query(self, query: str) -> str:
        return query.replace("%", "%%")  # parameters are always sent: % is the driver's

    def converter(self, name: str) -> Converter:
        """By the column's type (chosen once per column, not per value)."""
        kind = _base(self._types.get(name, ""))
        if kind in _INTEGERS or kind in ("text", "char", "varchar", "enum", "set", "float",
                                         "double", "binary"):
            return _same
        if kind == "decimal":
            return _decimal
        if kind in ("datetime", "timestamp"):
            return _stamp(dt.UTC if kind == "timestamp" else self.zone)
        if kind == "date":
            return _date
        if kind == "json":
            return _json
        return lambda value: _other(value, self.zone)

    def document(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)):
            try:
                return msgspec.json.decode(value)
            except msgspec.DecodeError as exc:
                raise ValueError(f"column {self.config.json_column!r} is not JSON: "
                                 f"{exc}") from None
        return value


def _same(value: Any) -> Any:
    return value


def _decimal(value: Any) -> Any:
    """``2.0000`` is 2 (a quantity is an integer), ``10.5000`` is 10.5."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _stamp(zone: dt.tzinfo) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return None  # a zero date (the driver gives the text when it is no date): NULL
        if zone is dt.UTC and isinstance(value, dt.datetime):
            return value.isoformat() + "+00:00"
        return python_value(value, zone)
    return convert


def _date(value: Any) -> Any:
    if isinstance(value, str):
        return None  # a zero date, as NULL
    return value.isoformat() if isinstance(value, dt.date) else value


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def _other(value: Any, zone: dt.tzinfo) -> Any:
    if isinstance(value, dt.timedelta) and dt.timedelta(0) <= value < _DAY:
        return (dt.datetime.min + value).time().isoformat()  # TIME within a day
    return python_value(value, zone)


def _message(exc: BaseException) -> str:
    args: tuple[Any, ...] = exc.args
    return str(args[-1]) if len(args) == 2 else str(exc)  # (errno, message)


class MysqlQuery(KeysetQuery):
    """The query as one part (see :class:`~ometria_sync.sources.keyset.KeysetQuery`)."""

    def __init__(self, config: MysqlSourceConfig) -> None:
        super().__init__(MysqlDriver, config)


class MysqlSourceConfig(SqlSourceConfig, frozen=True, tag="mysql"):
    def check_credentials(self, key: str) -> None:
        super().check_credentials(key)
        try:
            parse_mysql_dsn(os.environ[self.dsn_env])
        except ValueError as exc:
            raise ConfigError(f"{key}.dsn_env", f"{self.dsn_env}: {exc}") from None

    async def preflight(self, key: str) -> None:
        """Connect and describe the query: its columns must include the cursor columns."""
        await preflight(MysqlDriver, self, key)

    def open(self) -> Source:
        return SinglePartSource(MysqlQuery(self))
