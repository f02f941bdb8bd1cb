"""Rows to records: the mapping applied to one row, and line-item rows grouped into orders.

Exports often carry one row per order line: the order's own columns repeat on every row and
the ``lineitems[].*`` columns differ. ``OrderGrouper`` folds consecutive rows with the same
order ``id`` into one order with a ``lineitems`` list. A broken grouping is an error for that
order only: rows of one order that disagree on an order field, or an order whose rows are not
consecutive (it appeared before), are refused with the lines concerned.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec

from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.mapping import CellError, Column, put, split_path, text_coercers


class RowError(ValueError):
    """A row that cannot become a record; the message names the column and field."""


class RowMapper:
    """Applies a planned mapping to rows of text cells (in header order).

    This is the hot loop of CSV reading, so the mapping is compiled once into a function with
    one statement per column (as dataclasses compile ``__init__``): no per-cell dispatch. When
    a cell does not coerce, the row is mapped again column by column to name the culprit."""

    def __init__(self, columns: list[Column], constants: dict[str, Any], zone: dt.tzinfo,
                 width: int) -> None:
        coercers = text_coercers(zone)
        self.width = width
        self._columns = [(c.index, c, coercers[c.type]) for c in columns]
        self._constants = [(split_path(k), v) for k, v in constants.items()]
        self.grouped = any(c.lineitem for c in columns)
        self._record = _compile([c for c in self._columns if not c[1].lineitem],
                                self._constants)
        self._item = _compile([c for c in self._columns if c[1].lineitem], [])

    def map_row(self, cells: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record's fields and (when grouped) the row's line item; raises RowError."""
        try:
            return self._record(cells), self._item(cells)
        except CellError:
            raise self._culprit(cells) from None

    def _culprit(self, cells: list[str]) -> RowError:
        for index, column, coerce in self._columns:
            try:
                if cells[index]:
                    coerce(cells[index])
            except CellError as exc:
                field = ("lineitems[]." if column.lineitem else "") + ".".join(column.path)
                return RowError(f"column {column.name!r} ({field}): {exc}")
        return RowError("a cell does not coerce")  # not reached: some coercer raised


MapRow = Callable[[list[str]], dict[str, Any]]


def _assign(path: tuple[str, ...], value: str, indent: str, n: int) -> list[str]:
    """Statements that set ``record[path] = value`` (creating objects on the way)."""
    if len(path) == 1:
        return [f"{indent}record[{path[0]!r}] = {value}"]
    if len(path) == 2:
        return [f"{indent}sub = record.get({path[0]!r})",
                f"{indent}if sub.__class__ is not dict:",
                f"{indent}    sub = record[{path[0]!r}] = {{}}",
                f"{indent}sub[{path[1]!r}] = {value}"]
    return [f"{indent}put(record, path{n}, {value})"]


def _compile(columns: list[tuple[int, Column, Callable[[str], Any]]],
             constants: list[tuple[tuple[str, ...], Any]]) -> MapRow:
    """A function from cells to a record, one statement per column. Empty cells are left
    out; container constants are copied per record. Keys enter the code as ``repr()``
    literals and values through its namespace, so no job file text is ever code."""
    env: dict[str, Any] = {"put": put, "deepcopy": copy.deepcopy}
    body = ["def map_row(cells):", "    record = {}"]
    for n, (index, column, coerce) in enumerate(columns):
        env[f"coerce{n}"], env[f"path{n}"] = coerce, column.path
        value = "text" if column.type == "string" else f"coerce{n}(text)"
        body += [f"    text = cells[{index}]", "    if text:"]
        body += _assign(column.path, value, "        ", n)
    for n, (path, constant) in enumerate(constants, len(columns)):
        env[f"const{n}"], env[f"path{n}"] = constant, path
        value = f"deepcopy(const{n})" if isinstance(constant, (dict, list)) else f"const{n}"
        body += _assign(path, value, "    ", n)
    body.append("    return record")
    exec("\n".join(body), env)
    function: MapRow = env["map_row"]
    return function


class _Group(msgspec.Struct):
    record: dict[str, Any]
    first_line: int
    last_line: int
    position: Position
    rows: list[list[str]]  # the cells, for the dead letter if the order is refused
    problem: str | None = None


class OrderGrouper:
    """Folds consecutive rows of one order id into one order with ``lineitems``."""

    def __init__(self) -> None:
        self._group: _Group | None = None
        self._seen: dict[Any, int] = {}  # order id -> last line of its finished group

    @property
    def open(self) -> bool:
        """An order is being built (its last row may not have been read yet)."""
        return self._group is not None

    def add(self, record: dict[str, Any], item: dict[str, Any], line: int,
            position: Position, cells: list[str]) -> list[SourceItem]:
        """Add a row; returns the orders this row finished (at most one)."""
        group = self._group
        order_id = record.get("id")
        if group is not None and order_id is not None and order_id == group.record.get("id"):
            if group.problem is None:
                group.problem = _disagreement(group, record, line)
            if item:
                group.record["lineitems"].append(item)
            group.last_line, group.position = line, position
            group.rows.append(cells)
            return []
        done = self.finish()
        record["lineitems"] = [item] if item else []
        self._group = _Group(record, line, line, position, [cells])
        if order_id is not None and _hashable(order_id) in self._seen:
            self._group.problem = (f"rows of order {order_id!r} are not consecutive: it "
                                   f"already ended at line {self._seen[_hashable(order_id)]}")
        return done

    def finish(self) -> list[SourceItem]:
        """The order being built, if any, as a finished item."""
        group, self._group = self._group, None
        if group is None:
            return []
        order_id = group.record.get("id")
        if order_id is not None:
            self._seen[_hashable(order_id)] = group.last_line
        if group.problem is not None:
            return [SourceItem(record=None, position=group.position, line=group.first_line,
                               raw=msgspec.json.encode(group.rows), error=group.problem)]
        return [SourceItem(record=group.record, position=group.position, line=group.first_line)]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else repr(value)


def _disagreement(group: _Group, record: dict[str, Any], line: int) -> str | None:
    for key, value in record.items():
        if key in group.record and group.record[key] != value:
            return (f"rows of order {group.record.get('id')!r} disagree on {key!r}: "
                    f"{group.record[key]!r} at line {group.first_line}, {value!r} at line {line}")
    return None
