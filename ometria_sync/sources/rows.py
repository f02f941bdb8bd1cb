"""Rows to records: the mapping applied to one row, and line-item rows grouped into orders.

Exports often carry one row per order line: the order's own columns repeat on every row and
the ``lineitems[].*`` columns differ. ``OrderGrouper`` folds consecutive rows with the same
order ``id`` into one order with a ``lineitems`` list. A broken grouping is an error for that
order only: rows of one order that disagree on an order field, or an order whose rows are not
consecutive (it appeared before), are refused with the lines concerned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.sources.mapping import CellError, Column, put, split_path, text_coercers


class RowError(ValueError):
    """A row that cannot become a record; the message names the column and field."""


class RowMapper:
    """Applies a planned mapping to rows of text cells (in header order)."""

    def __init__(self, columns: list[Column], constants: dict[str, Any], zone: dt.tzinfo,
                 width: int) -> None:
        coercers = text_coercers(zone)
        self.width = width
        self._order = [(i, c, coercers[c.type]) for i, c in enumerate(columns)
                       if not c.lineitem]
        self._items = [(i, c, coercers[c.type]) for i, c in enumerate(columns) if c.lineitem]
        self._constants = [(split_path(k), v) for k, v in constants.items()]
        self.grouped = bool(self._items)

    def map_row(self, cells: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record's fields and (when grouped) the row's line item; raises RowError."""
        record: dict[str, Any] = {}
        item: dict[str, Any] = {}
        for target, columns in ((record, self._order), (item, self._items)):
            for index, column, coerce in columns:
                text = cells[index]
                if text == "":
                    continue
                try:
                    put(target, column.path, coerce(text))
                except CellError as exc:
                    field = ("lineitems[]." if column.lineitem else "") + ".".join(column.path)
                    raise RowError(f"column {column.name!r} ({field}): {exc}") from None
        for path, value in self._constants:
            put(record, path, value)
        return record, item


class _Group(msgspec.Struct):
    record: dict[str, Any]
    first_line: int
    last_line: int
    position: Position
    raw: list[bytes]
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
            position: Position, raw: bytes) -> list[SourceItem]:
        """Add a row; returns the orders this row finished (at most one)."""
        group = self._group
        order_id = record.get("id")
        if group is not None and order_id is not None and order_id == group.record.get("id"):
            if group.problem is None:
                group.problem = _disagreement(group, record, line)
            if item:
                group.record["lineitems"].append(item)
            group.last_line, group.position = line, position
            group.raw.append(raw)
            return []
        done = self.finish()
        record["lineitems"] = [item] if item else []
        self._group = _Group(record, line, line, position, [raw])
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
        raw = b"\n".join(group.raw)
        if group.problem is not None:
            return [SourceItem(record=None, position=group.position, line=group.first_line,
                               raw=raw, error=group.problem)]
        return [SourceItem(record=group.record, position=group.position, line=group.first_line,
                           raw=raw)]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float)) else repr(value)


def _disagreement(group: _Group, record: dict[str, Any], line: int) -> str | None:
    for key, value in record.items():
        if key in group.record and group.record[key] != value:
            return (f"rows of order {group.record.get('id')!r} disagree on {key!r}: "
                    f"{group.record[key]!r} at line {group.first_line}, {value!r} at line {line}")
    return None
