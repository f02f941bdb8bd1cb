"""Reading the query page by page, from the last cursor position.

A cursor that is not unique is still read whole: rows that tie on the cursor are one group.
A page never ends inside a group (when the row after the page ties with its last row, the
group is read whole by an equality query, streamed), and every row of a group but the last
carries the position *before* the group, so a checkpoint never falls inside one: a resume
reads the group again, and change detection drops what was already sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from ometria_sync.errors import SourceError
from ometria_sync.sources.base import Position, SourceItem, checkpoint_as
from ometria_sync.sources.mapping import load_zone, put, python_value, split_path
from ometria_sync.sources.postgres_sql import (
    Statements,
    connect,
    describe,
    key_text,
    source_fingerprint,
)

if TYPE_CHECKING:  # the settings import the reader to open it
    from ometria_sync.sources.postgres import PostgresSourceConfig

#: a position as this source makes it: the cursor values (as text) of the last row before it
After = dict[str, list[str] | None]
#: the position before the first row: reading from it starts at the top
_TOP: After = {"after": None}


class _Checkpoint(msgspec.Struct):
    """A position read back from a checkpoint (None: the top)."""

    after: list[str] | None = None


Key = tuple[Any, ...]


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
