"""A SQL query read incrementally by keyset pagination on its cursor columns: what the
PostgreSQL and MySQL sources share (the statements, the paging and its ties, the position,
the fingerprint, rows to records through the column plan and its options, as for CSV:
:class:`~ometria_sync.sources.columns.ValueRowMapper`). Each driver (:class:`SqlDriver`) says
how to connect, describe, fetch and stream, and how its values become JSON.

**Statements.** Pages of ``page_size`` rows come from the query wrapped as ``SELECT * FROM
(query) AS src WHERE <after> ORDER BY cursor LIMIT n``: no OFFSET, so every page costs the
same. A query holding ``{cursor_after}`` is not wrapped: the marker is replaced by ``<after>``
wherever it stands (several times if written several times) and ``ORDER BY cursor LIMIT n``
is appended, so a predicate in the query's own ``WHERE`` reaches the table's index. The
cursor names are quoted identifiers; where the marker stands they must name the cursor's
values (a table's columns in a ``WHERE``, the select list's aliases in a MySQL ``HAVING``, a
derived table's columns). ``<after>`` is, with the cursor's values ``p1..pn`` as parameters:

- first page: ``1 = 1``;
- after a position: ``(c1, ..., cn) > (p1, ..., pn)`` (PostgreSQL), or its expansion
  ``(c1 > p1 OR (c1 = p1 AND (c2 > p2 ...)))`` (MySQL: MariaDB scans a row comparison from
  the index's start but reads the expansion as a range);
- a resumed read's first page: ``c1 >= p1 - lookback`` (late commits);
- the rows of a tie group: ``(c1, ..., cn) = (p1, ..., pn)``.

**Ties.** A cursor that is not unique is still read whole: rows that tie on the cursor are one
group. A page never ends inside a group (when the row after the page ties with its last row,
the group is read whole by the equality statement, streamed), and every row of a group but the
last carries the position *before* the group, so a checkpoint never falls inside one: a resume
reads the group again, and change detection drops what was already sent.

**Position and fingerprint.** The position after a row is ``{"after": [its cursor values as
text]}``. The fingerprint is the query, the cursor and the result's column types: a checkpoint
taken on another query or cursor means nothing here, so a changed source reads from the top.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, ClassVar, Protocol

import msgspec

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.schemas import Problem
from ometria_sync.sources.base import Position, SourceItem, checkpoint_as
from ometria_sync.sources.columns import Converter, ValueRowMapper
from ometria_sync.sources.mapping import load_zone
from ometria_sync.sources.sql_settings import (
    MARKER,
    SqlSourceConfig,
    cursor_text,
    key_text,
    source_fingerprint,
)


class Row(Protocol):
    """A result row by column name (an ``asyncpg.Record``, a dict)."""

    def __getitem__(self, name: str, /) -> Any: ...

    def items(self) -> Any: ...


class SqlDriver(abc.ABC):
    """One connection's worth of a database: what the keyset reader needs of a driver."""

    #: "PostgreSQL", "MySQL": in messages
    product: ClassVar[str]
    #: the fingerprint's prefix (the job file's kind)
    kind: ClassVar[str]
    #: timestamp types: a lookback applies to them (and may be configured on a date too)
    stamps: ClassVar[frozenset[str]]
    #: whether parameters are numbered ($1) or positional (%s, bound in the text's order)
    numbered: ClassVar[bool]
    #: compare keys as row values (else the OR expansion)
    row_compare: ClassVar[bool]

    def __init__(self, config: SqlSourceConfig) -> None:
        self.config = config
        #: where timestamps without a zone are read
        self.zone = load_zone("timezone", config.timezone)

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection (SourceError without the DSN's secrets)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def describe(self, sql: str) -> dict[str, str]:
        """Column name -> type name of ``sql``'s result (SourceError when it does not run)."""

    @abc.abstractmethod
    async def fetch(self, sql: str, params: list[Any]) -> list[Row]:
        """Every row of ``sql``, in one short read-only transaction."""

    @abc.abstractmethod
    def stream(self, sql: str, params: list[Any], size: int) -> AsyncIterator[list[Row]]:
        """The rows of ``sql`` in chunks of ``size``, unbuffered, in one read-only
        transaction that ends when the iterator does."""

    @abc.abstractmethod
    def ident(self, name: str) -> str: ...

    @abc.abstractmethod
    def param(self, index: int, type_name: str) -> str:
        """The placeholder of parameter ``index`` (from 1) compared with a ``type_name``."""

    @abc.abstractmethod
    def minus_seconds(self, value: str, seconds: str) -> str:
        """SQL for the timestamp ``value`` less ``seconds`` (both placeholders)."""

    @abc.abstractmethod
    def bind(self, text: str, type_name: str) -> Any:
        """A cursor value (as a position holds it) as the parameter the driver sends."""

    @abc.abstractmethod
    def lookback_param(self, seconds: float) -> Any: ...

    @abc.abstractmethod
    def among(self, column: str, texts: list[str]) -> tuple[str, list[Any]]:
        """A predicate true for a row whose ``column`` (an identifier), as text, is one of
        ``texts``, and its parameters (the ledger's re-read by id)."""

    @abc.abstractmethod
    def user_query(self, query: str) -> str:
        """The job's query as it goes into a statement (MySQL doubles ``%``)."""

    @abc.abstractmethod
    def converter(self, name: str) -> Converter:
        """How column ``name``'s values become JSON, asked once per column after
        :meth:`describe` (the mapping, :class:`~.columns.ValueRowMapper`, applies it to every
        non-NULL value before the column's options). None leaves the field out, as NULL does;
        a value with no one JSON form stays as it is, for validation to refuse with its path."""

    @abc.abstractmethod
    def document(self, value: Any) -> Any:
        """The ``json_column``'s value as a decoded JSON value."""


class Statement(msgspec.Struct, frozen=True):
    """SQL text and the logical parameters its placeholders stand for, in the text's order."""

    text: str
    order: tuple[int, ...]


class Statements:
    """The statements of one read (see the module doc): ``first``, ``following``,
    ``looking_back``, ``equal``; logical parameters are the cursor values, then the limit
    (``looking_back``: the first cursor value, the seconds, the limit)."""

    def __init__(self, driver: SqlDriver, types: dict[str, str]) -> None:
        config = driver.config
        self._numbered = driver.numbered
        names = [driver.ident(c) for c in config.cursor]
        cols = ", ".join(names)
        width = len(config.cursor)
        params = [driver.param(i, types[c]) for i, c in enumerate(config.cursor, 1)]
        head = types[config.cursor[0]]
        after = (f"({cols}) > ({', '.join(params)})" if driver.row_compare
                 else _expanded(names, params))
        since = driver.minus_seconds(driver.param(1, head), driver.param(2, "float"))
        predicates = {"first": ("1 = 1", 1), "following": (after, width + 1),
                      "looking_back": (f"{names[0]} >= {since}", 3),
                      "equal": (f"({cols}) = ({', '.join(params)})", 0)}
        query = driver.user_query(config.query)
        made = {}
        for name, (predicate, limit) in predicates.items():
            if config.placed:
                text = query.replace(MARKER, f"({predicate})")
            else:
                text = f"SELECT * FROM ({query}) AS src WHERE {predicate}"
            order = "" if name == "equal" else f" ORDER BY {cols}"
            tail = f" LIMIT {driver.param(limit, 'int')}" if limit else ""
            made[name] = self._statement(text + order + tail)
        self.first, self.following = made["first"], made["following"]
        self.looking_back, self.equal = made["looking_back"], made["equal"]

    def _statement(self, text: str) -> Statement:
        if self._numbered:
            return Statement(text, ())
        order, parts = [], text.split(_SLOT)
        for index, part in enumerate(parts[1:]):
            number, _, rest = part.partition(_END)
            order.append(int(number))
            parts[index + 1] = rest
        return Statement("%s".join(parts), tuple(order))

    def args(self, statement: Statement, values: list[Any]) -> list[Any]:
        """The parameters to send with ``statement`` for the logical ``values``."""
        if self._numbered:
            return values
        return [values[i - 1] for i in statement.order]


#: positional drivers write a placeholder as _SLOT + its logical number + _END; the
#: statement turns each into %s and records the order (the job's text never holds these)
_SLOT, _END = "\x00", "\x01"


def positional(index: int) -> str:
    return f"{_SLOT}{index}{_END}"


def _expanded(names: list[str], params: list[str]) -> str:
    """``(c1 > p1 OR (c1 = p1 AND (c2 > p2 ...)))``: a range MySQL reads from an index."""
    inner = f"{names[-1]} > {params[-1]}"
    for name, param in zip(reversed(names[:-1]), reversed(params[:-1]), strict=True):
        inner = f"{name} > {param} OR ({name} = {param} AND ({inner}))"
    return f"({inner})"


#: a position as this source makes it: the cursor values (as text) of the last row before it
After = dict[str, list[str] | None]
#: the position before the first row: reading from it starts at the top
_TOP: After = {"after": None}


class _Checkpoint(msgspec.Struct):
    """A position read back from a checkpoint (None: the top)."""

    after: list[str] | None = None


Key = tuple[Any, ...]
#: ids per statement of a re-read by id (MySQL binds each as a parameter of its own)
_IDS_PER_READ = 1000


class KeysetQuery:
    """The query as one part, read page by page from the last cursor position.

    With ``cycle`` every read is of the whole table: the last row of a finished read carries
    the position before the first (the next read starts over), and a resumed read that finds
    nothing after its checkpoint starts over at once; a read cut off midway still resumes
    after its last acknowledged row. Subclasses build records their own way by overriding
    :meth:`plan` and :meth:`record`."""

    def __init__(self, driver_type: type[SqlDriver], config: SqlSourceConfig, *,
                 cycle: bool = False) -> None:
        self._open = driver_type
        self._config = config
        self._cycle = cycle
        self._driver = driver_type(config)  # replaced by a connected one in read()
        self._types: dict[str, str] = {}
        #: the result's columns mapped to fields, planned once the query is described
        self._mapper: ValueRowMapper | None = None

    @property
    def key(self) -> str:
        return ""

    @property
    def label(self) -> str:
        return f"{self._open.kind}:{self._config.dsn_env}"

    async def fingerprint(self) -> str | None:
        """Another query, cursor or result type starts from the top (see the module doc)."""
        return source_fingerprint(self._open.kind, self._config,
                                  await describe(self._open, self._config))

    async def size(self) -> int | None:
        """A query's size is not known before it is read."""
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        config = self._config
        last = self._resume_values(start)
        driver = self._driver = self._open(config)
        await driver.connect()
        try:
            types = self._types = await driver.describe(describe_statement(driver))
            self.plan(list(types))
            sql = Statements(driver, types)
            head = types[config.cursor[0]]
            lookback = (config.lookback_for(head, driver.stamps) if last is not None else 0.0)
            before: After = _TOP if last is None else {"after": last}
            resumed = last is not None
            while True:
                rows = await self._page(sql, last, lookback)
                lookback = 0.0
                if self._cycle and resumed and not rows:  # the last read had finished
                    last, before = None, _TOP
                    continue
                resumed = False
                more = len(rows) > config.page_size
                tied = self._cut(rows) if more else None
                if rows:
                    chunk, before = self._items(rows, before)
                    if self._cycle and not more:
                        chunk[-1].position = {"after": None}
                    yield chunk
                if tied is not None:
                    async with contextlib.aclosing(self._group(sql, tied, before)) as group:
                        async for chunk in group:
                            yield chunk
                    before = {"after": key_text(tied)}
                elif not more:
                    return
                last = before["after"]
        finally:
            await driver.close()

    async def read_ids(self, ids: list[str]) -> list[SourceItem] | None:
        """The rows whose id column (the one the records take their ``id`` from) is one of
        ``ids``, as they are now: the ledger resends the source's latest version rather than
        a kept payload. None when no column of the result fills the id. Positions are the
        top's: these items are never checkpointed."""
        driver = self._driver = self._open(self._config)
        await driver.connect()
        try:
            types = self._types = await driver.describe(describe_statement(driver))
            self.plan(list(types))
            column = self._mapper.id_column() if self._mapper is not None else None
            if column is None:
                return None
            query = driver.user_query(self._config.query).replace(MARKER, "1 = 1")
            items: list[SourceItem] = []
            for start in range(0, len(ids), _IDS_PER_READ):
                predicate, params = driver.among(driver.ident(column),
                                                 ids[start:start + _IDS_PER_READ])
                rows = await driver.fetch(f"SELECT * FROM ({query}) AS src WHERE {predicate}",
                                          params)
                items.extend(self._item(row, _TOP) for row in rows)
            return items
        except SourceError as exc:
            raise SourceError(f"{self.label}: reading rows by id: {exc}") from None
        finally:
            await driver.close()

    def _resume_values(self, start: Position | None) -> list[str] | None:
        if start is None:
            return None
        after = checkpoint_as(_Checkpoint, start, self.label,
                              f'a {self._open.product} position '
                              '({"after": [cursor values as text]})').after
        if after is None:
            return None
        if len(after) != len(self._config.cursor):
            raise SourceError(f"{self.label}: the checkpoint holds {len(after)} cursor values "
                              f"but the cursor has {len(self._config.cursor)} columns; run "
                              "`ometria-sync reset` for this stream")
        return list(after)

    def _bound(self, values: list[str]) -> list[Any]:
        return [self._driver.bind(v, self._types[c])
                for v, c in zip(values, self._config.cursor, strict=True)]

    async def _page(self, sql: Statements, last: list[str] | None,
                    lookback: float) -> list[Row]:
        """Up to ``page_size + 1`` rows after ``last``: the extra row tells whether the page
        ends inside a group of rows that tie on the cursor."""
        limit = self._config.page_size + 1
        driver = self._driver
        if last is None:
            statement, values = sql.first, [limit]
        elif lookback:
            statement = sql.looking_back
            values = [self._bound(last)[0], driver.lookback_param(lookback), limit]
        else:
            statement, values = sql.following, [*self._bound(last), limit]
        try:
            return await driver.fetch(statement.text, sql.args(statement, values))
        except SourceError as exc:
            raise SourceError(f"{self.label}: reading after {last}: {exc}") from None

    def _cut(self, rows: list[Row]) -> Key | None:
        """Drop the look-ahead row; when it ties with the page's last row, also drop that
        row's group and return its cursor value (the group is read whole afterwards)."""
        extra = self._key(rows.pop())
        if self._key(rows[-1]) != extra:
            return None
        while rows and self._key(rows[-1]) == extra:
            rows.pop()
        return extra

    def _items(self, rows: list[Row], before: After) -> tuple[list[SourceItem], After]:
        """The rows as items, and the position after the last complete group. A row tied
        with the next one carries ``before``, the position before its group."""
        keys = [self._key(row) for row in rows]
        items: list[SourceItem] = []
        for index, row in enumerate(rows):
            if index + 1 == len(rows) or keys[index + 1] != keys[index]:
                before = {"after": key_text(keys[index])}
            items.append(self._item(row, before))
        return items, before

    async def _group(self, sql: Statements, key: Key,
                     before: After) -> AsyncGenerator[list[SourceItem], None]:
        """Every row whose cursor equals ``key``, streamed in chunks of ``page_size``; all
        but the last carry ``before``."""
        params = key_text(key)
        args = sql.args(sql.equal, self._bound(params))
        chunks = self._driver.stream(sql.equal.text, args, self._config.page_size)
        try:
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                held = await anext(chunks, None)
                while held:
                    following = await anext(chunks, None)
                    chunk = [self._item(row, before) for row in held[:-1]]
                    chunk.append(self._item(held[-1], {"after": params} if not following
                                            else before))
                    yield chunk
                    held = following
        except SourceError as exc:
            raise SourceError(f"{self.label}: reading the rows at {params}: {exc}") from None

    def _key(self, row: Row) -> Key:
        key = tuple(row[c] for c in self._config.cursor)
        if any(v is None for v in key):
            raise SourceError(f"{self.label}: a row has NULL in a cursor column "
                              f"({', '.join(self._config.cursor)}); cursor columns must be "
                              "NOT NULL")
        return key

    def _item(self, row: Row, position: Position) -> SourceItem:
        # the position is an object, not a list: text cursor values do not compare like the
        # values they stand for ("10" < "9"), so the checkpoint store must not order them
        try:
            record, warnings = self.record(row)
        except (TypeError, ValueError) as exc:
            return SourceItem(record=None, position=position, raw=repr(dict(row.items())),
                              error=f"row at cursor {key_text(self._key(row))}: {exc}",
                              id=self.record_id(row))
        return SourceItem(record=record, position=position, warnings=warnings)

    def record_id(self, row: Row) -> str | None:
        """The id of the record ``row`` would be, for a row :meth:`record` refused: the id
        column's value as text (None: no column fills the id, or it is NULL)."""
        column = self._mapper.id_column() if self._mapper is not None else None
        value = row[column] if column is not None else None
        return None if value is None else cursor_text(value)

    def plan(self, names: list[str]) -> None:
        """Plan the mapping of the result's columns (``drop`` and ``json_column`` left out),
        each value converted by the driver first."""
        config = self._config
        try:
            self._mapper = ValueRowMapper("columns", config, names, self._driver.zone,
                                  skip=filter(None, [config.json_column]),
                                  converter=self._driver.converter)
        except ConfigError as exc:
            raise SourceError(f"{self.label}: {exc}") from None

    def record(self, row: Row) -> tuple[dict[str, Any], list[Problem] | None]:
        """Columns by name (docs/mapping.md): a column not named in ``columns`` keeps its
        name as the path (an alias with dots fills a nested field), ``json_column`` holds the
        record (other columns are added to it); NULLs leave the field out. Also the warnings
        of ``on_error = "omit"`` columns; RowError (a ValueError) for a refused value."""
        config = self._config
        record: dict[str, Any] = {}
        if config.json_column is not None:
            document = self._driver.document(row[config.json_column])
            if not isinstance(document, dict):
                raise ValueError(f"column {config.json_column!r} does not hold a JSON object")
            record.update(document)
        assert self._mapper is not None, "read() plans the mapping first"
        return self._mapper.map_row(row, record)


def describe_statement(driver: SqlDriver) -> str:
    """The query with no rows (the marker as ``1 = 0``), for its columns and their types."""
    query = driver.user_query(driver.config.query).replace(MARKER, "1 = 0")
    return f"SELECT * FROM ({query}) AS src LIMIT 0"


async def describe(driver_type: type[SqlDriver], config: SqlSourceConfig) -> dict[str, str]:
    """Column name -> type name of the query's result, on a connection of its own."""
    driver = driver_type(config)
    await driver.connect()
    try:
        return await driver.describe(describe_statement(driver))
    finally:
        await driver.close()


async def preflight(driver_type: type[SqlDriver], config: SqlSourceConfig, key: str) -> None:
    """Connect and describe the query: its columns must include the cursor columns and
    those ``columns`` maps."""
    config.check_credentials(key)
    driver = driver_type(config)
    try:
        await driver.connect()
    except SourceError as exc:
        raise ConfigError(f"{key}.dsn_env", str(exc)) from exc
    try:
        columns = await driver.describe(describe_statement(driver))
    except SourceError as exc:
        raise ConfigError(f"{key}.query", str(exc)) from exc
    finally:
        await driver.close()
    config.check_result(key, columns, driver_type.stamps | {"date"})
