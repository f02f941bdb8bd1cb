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
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ometria_sync.schemas import Problem
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.columns import COMPUTED, OMIT, Column, RowError, omitted
from ometria_sync.sources.mapping import put, split_path, text_coercers

#: a row mapped: the record's fields, the row's line item (when grouped), and the warnings of
#: ``on_error = "omit"`` columns whose fields were left out (None: no warning)
Mapped = tuple[dict[str, Any], dict[str, Any], list[Problem] | None]


class RowMapper:
    """Applies a planned mapping to rows of text cells (in header order).

    This is the hot loop of CSV reading, so the mapping is compiled once into a function with
    one statement per plain column (as dataclasses compile ``__init__``): no per-cell
    dispatch; a column with options calls its :class:`~.columns.CellRule`. When any cell
    raises, the row is mapped again column by column (:meth:`map_slowly`, the reference the
    compiled code agrees with): it names the culprit, or leaves out the fields of an
    ``on_error = "omit"`` column with a warning, or takes a cell of spaces as empty."""

    def __init__(self, columns: list[Column], constants: Mapping[str, Any], zone: dt.tzinfo,
                 width: int) -> None:
        coercers = text_coercers(zone)
        self.width = width
        self._columns = [(c, coercers[c.type]) for c in columns]
        self._constants = [(split_path(k), v) for k, v in constants.items()]
        self.grouped = any(t.lineitem for c in columns for t in c.targets)
        self._record = _compile(self._columns, False, self._constants)
        self._item = _compile(self._columns, True, [])

    def map_row(self, cells: list[str]) -> Mapped:
        """The record's fields, the row's line item and warnings; raises RowError."""
        try:
            return self._record(cells), self._item(cells), None
        except ValueError:
            return self.map_slowly(cells)

    def record_id(self, cells: list[str]) -> str | None:
        """The record's ``id`` from a row that was refused, when its column maps fine."""
        for column, coerce in self._columns:
            if any(t.path == ("id",) and not t.lineitem for t in column.targets):
                try:
                    value = _cell_value(column, coerce, cells)
                except ValueError:
                    return None
                return value if isinstance(value, str) else None
        return None

    def order_id_cell(self) -> tuple[int, bool] | None:
        """Where a record's ``id`` is when it is one plain text cell: the cell's index and
        whether it is trimmed; None when no column or several fill it, or it is computed,
        has options or another type, or a constant sets it."""
        if any(path[0] == "id" for path, _ in self._constants):
            return None
        found = [(c, t) for c, _ in self._columns for t in c.targets
                 if not t.lineitem and t.path[0] == "id"]
        if len(found) != 1:
            return None
        column, target = found[0]
        if (target.path != ("id",) or column.rule is not None or column.type != "string"
                or column.index < 0):
            return None
        return column.index, column.trim

    def sets_collection(self) -> bool:
        """Whether a column or a constant fills a record's ``@collection`` (part of its
        identity with its id)."""
        return any(path[0] == "@collection" for path, _ in self._constants) or any(
            t.path[0] == "@collection" for c, _ in self._columns for t in c.targets)

    def map_slowly(self, cells: list[str]) -> Mapped:
        """:meth:`map_row`, one column at a time."""
        record: dict[str, Any] = {}
        item: dict[str, Any] = {}
        warnings: list[Problem] = []
        for column, coerce in self._columns:
            try:
                value = _cell_value(column, coerce, cells)
            except ValueError as exc:
                if not column.omit_on_error:
                    raise RowError(f"column {column.name!r} ({column.fields}): {exc}") from None
                warnings += [omitted(column, t, exc) for t in column.targets]
                continue
            if value is not OMIT:
                for target in column.targets:
                    put(item if target.lineitem else record, target.path, value)
        for path, constant in self._constants:
            put(record, path, copy.deepcopy(constant))
        return record, item, warnings or None


def _cell_value(column: Column, coerce: Callable[[str], Any], cells: list[str]) -> Any:
    if column.index == COMPUTED:
        assert column.rule is not None  # a computed column has an expression
        return column.rule.computed(cells)
    if column.rule is not None:
        return column.rule.text(cells[column.index], cells)
    text = cells[column.index]
    if column.trim:
        text = text.strip()
    return coerce(text) if text else OMIT


MapRow = Callable[[list[str]], dict[str, Any]]


def _assign(path: tuple[str, ...], value: str, indent: str, path_name: str) -> list[str]:
    """Statements that set ``record[path] = value`` (creating objects on the way);
    ``path_name`` names ``path`` in the function's namespace."""
    if len(path) == 1:
        return [f"{indent}record[{path[0]!r}] = {value}"]
    if len(path) == 2:
        return [f"{indent}sub = record.get({path[0]!r})",
                f"{indent}if sub.__class__ is not dict:",
                f"{indent}    sub = record[{path[0]!r}] = {{}}",
                f"{indent}sub[{path[1]!r}] = {value}"]
    return [f"{indent}put(record, {path_name}, {value})"]


def _compile(columns: list[tuple[Column, Callable[[str], Any]]], lineitem: bool,
             constants: list[tuple[tuple[str, ...], Any]]) -> MapRow:
    """A function from cells to a record (or, with ``lineitem``, to the row's line item): one
    statement per column filling it. Empty cells are left out; container constants are copied
    per record. Keys enter the code as ``repr()`` literals and values through its namespace,
    so no job file text is ever code."""
    env: dict[str, Any] = {"put": put, "deepcopy": copy.deepcopy, "OMIT": OMIT}
    body = ["def map_row(cells):", "    record = {}"]
    for n, (column, coerce) in enumerate(columns):
        targets = [t for t in column.targets if t.lineitem == lineitem]
        if not targets:
            continue
        if column.index == COMPUTED:
            env[f"rule{n}"] = column.rule.computed if column.rule else None
            body += [f"    value = rule{n}(cells)", "    if value is not OMIT:"]
            value = "value"
        elif column.rule is not None:
            env[f"rule{n}"] = column.rule.text
            body += [f"    value = rule{n}(cells[{column.index}], cells)",
                     "    if value is not OMIT:"]
            value = "value"
        else:
            env[f"coerce{n}"] = coerce
            strip = ".strip()" if column.trim and column.type in ("string", "json") else ""
            body += [f"    text = cells[{column.index}]{strip}", "    if text:"]
            value = "text" if column.type == "string" else f"coerce{n}(text)"
            if len(targets) > 1:
                body.append(f"        value = {value}")
                value = "value"
        for t, target in enumerate(targets):
            env[f"path{n}_{t}"] = target.path
            body += _assign(target.path, value, "        ", f"path{n}_{t}")
    for n, (path, constant) in enumerate(constants):
        env[f"const{n}"], env[f"cpath{n}"] = constant, path
        value = f"deepcopy(const{n})" if isinstance(constant, (dict, list)) else f"const{n}"
        body += _assign(path, value, "    ", f"cpath{n}")
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
    warnings: list[Problem] | None = None


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
            position: Position, cells: list[str],
            warnings: list[Problem] | None = None) -> list[SourceItem]:
        """Add a row (with its mapping's warnings); returns the orders this row finished (at
        most one)."""
        group = self._group
        order_id = record.get("id")
        if group is not None and order_id is not None and order_id == group.record.get("id"):
            if group.problem is None:
                group.problem = _disagreement(group, record, line)
            if item:
                group.record["lineitems"].append(item)
            group.last_line, group.position = line, position
            group.rows.append(cells)
            if warnings:
                group.warnings = [*(group.warnings or ()), *warnings]
            return []
        done = self.finish()
        record["lineitems"] = [item] if item else []
        self._group = _Group(record, line, line, position, [cells], warnings=warnings)
        if order_id is not None and _hashable(order_id) in self._seen:
            self._group.problem = (f"rows of order {order_id!r} are not consecutive: it "
                                   f"already ended at line {self._seen[_hashable(order_id)]}")
        return done

    @property
    def seen(self) -> dict[Any, int]:
        """The ids of the orders finished (or noted) so far -> the last line of each one's
        group: orders read elsewhere may be added, each id once."""
        return self._seen

    def passed(self, orders: dict[str, int]) -> bool:
        """Orders read elsewhere (a group skipped undecoded: each order's id and the first
        line of its last row), noted as if added here, so a later row of one is refused as
        not consecutive. False, noting nothing, when an order is being built or one of them
        appeared before: their rows must be read to be refused."""
        if self._group is not None or not self._seen.keys().isdisjoint(orders):
            return False
        self._seen.update(orders)
        return True

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
                               raw=msgspec.json.encode(group.rows), error=group.problem,
                               id=order_id if isinstance(order_id, str) else None)]
        return [SourceItem(record=group.record, position=group.position, line=group.first_line,
                           warnings=group.warnings)]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else repr(value)


def _disagreement(group: _Group, record: dict[str, Any], line: int) -> str | None:
    for key, value in record.items():
        if key in group.record and group.record[key] != value:
            return (f"rows of order {group.record.get('id')!r} disagree on {key!r}: "
                    f"{group.record[key]!r} at line {group.first_line}, {value!r} at line {line}")
    return None
