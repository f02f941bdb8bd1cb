"""The column plan: which fields each column fills, and how its cell becomes their value.

A plain column (``field`` and ``type``) is coerced by its type alone; :class:`RowMapper`
compiles those into straight-line code. A column with options (``values``, ``default``,
``expr``) carries a :class:`CellRule` that applies them in a fixed order, the same for a CSV
cell and a database value:

1. the cell is trimmed of surrounding spaces (unless ``trim = false``); an empty cell (or SQL
   NULL) takes ``default``, or leaves the fields out;
2. ``values`` maps the cell to its value (an empty target leaves the fields out; a cell not in
   the map takes ``default``, or is an error naming the known values); without ``values``
   the cell is coerced to ``type``;
3. ``expr`` computes the value from ``value`` (step 2's) and ``row``; a result of None or
   ``""`` leaves the fields out.

An error in step 2 or 3 refuses the record, naming the column (``on_error = "omit"``: leaves
its fields out, with a warning). Everything a job file can get wrong about a column (a bad
path, a ``values`` target that is not of the column's type, an expression that does not
compile) is a ConfigError naming the key, before any row is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

from ometria_sync.errors import ConfigError
from ometria_sync.schemas import Problem
from ometria_sync.sources.expressions import Expression
from ometria_sync.sources.mapping import (
    LINEITEM_PREFIX,
    CellError,
    CellType,
    ColumnSpec,
    MappingSettings,
    put,
    python_value,
    split_path,
    text_coercers,
)


class Omit:
    """The value of a cell that fills no field (an empty cell, an empty ``values`` target)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = Omit()


class Target(NamedTuple):
    """A field a column fills: its path below the record or below the row's line item."""

    path: tuple[str, ...]
    lineitem: bool

    @property
    def field(self) -> str:
        return (LINEITEM_PREFIX if self.lineitem else "") + ".".join(self.path)


class CellRule:
    """A column's options, applied to one cell (see the module's docstring for the order)."""

    def __init__(self, key: str, spec: ColumnSpec, zone: dt.tzinfo,
                 header: Sequence[str] | None) -> None:
        self.coerce = text_coercers(zone)[spec.cell_type]
        self.type: CellType = spec.cell_type
        self._database_type = spec.type
        self.trim = spec.trim
        self.default: Any = OMIT if spec.default is msgspec.UNSET else spec.default
        self.values = None if spec.values is None else self._values(key, spec.values)
        self.expr = None if spec.expr is None else Expression(f"{key}.expr", spec.expr, header)
        self._header = header or ()

    def _values(self, key: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The map with targets typed: ``""`` leaves the field out, other text is coerced."""
        typed: dict[str, Any] = {}
        for cell, target in values.items():
            if target == "":
                typed[cell] = OMIT
            elif isinstance(target, str) and self.type != "string":
                try:
                    typed[cell] = self.coerce(target)
                except CellError as exc:
                    raise ConfigError(f"{key}.values.{cell}", f"{exc} (the column's type is "
                                                              f"{self.type})") from None
            else:
                typed[cell] = target
        return typed

    def text(self, text: str, cells: Sequence[str]) -> Any:
        """The value of a text cell (``cells``: the whole row, in header order), or OMIT."""
        if self.trim:
            text = text.strip()
        if not text:
            return self.default
        value = self._typed(text)
        if value is OMIT or self.expr is None:
            return value
        row = dict(zip(self._header, cells, strict=False)) if self.expr.uses_row else None
        return _computed(self.expr(value, row))

    def computed(self, cells: Sequence[str]) -> Any:
        """The value of a computed column (one not in the header): its expression over the
        row, or ``default`` when that is empty."""
        row = dict(zip(self._header, cells, strict=False))
        return self.computed_from(row)

    def computed_from(self, row: Mapping[str, Any]) -> Any:
        assert self.expr is not None  # a computed column has one (plan_columns)
        value = _computed(self.expr(None, row))
        return self.default if value is OMIT else value

    def value(self, value: Any, row: Mapping[str, Any]) -> Any:
        """The value of a database value (already JSON-shaped; None for NULL), or OMIT."""
        if isinstance(value, str):
            if self.trim:
                value = value.strip()
            if not value:
                return self.default
            typed = self._typed(value)
        elif value is None:
            return self.default
        elif self.values is not None:
            typed = self._typed(str(value).lower() if isinstance(value, bool) else str(value))
        else:
            typed = _retyped(value, self._database_type)
        if typed is OMIT or self.expr is None:
            return typed
        return _computed(self.expr(typed, row))

    def _typed(self, text: str) -> Any:
        if self.values is None:
            return self.coerce(text)
        found = self.values.get(text, _MISSING)
        if found is not _MISSING:
            return found
        if self.default is not OMIT:
            return self.default
        known = ", ".join(repr(k) for k in list(self.values)[:20])
        raise CellError(f"{text!r} is not one of the mapped values ({known})")


_MISSING = object()


def _computed(value: Any) -> Any:
    return OMIT if value is None or value == "" else value


def _retyped(value: Any, kind: CellType | None) -> Any:
    """A database value of another type than the column's given ``type``: whole floats as
    integers, 0 and 1 as booleans, numbers as text; anything else (and anything when no type
    is given) as it is (validation names what is wrong with it)."""
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "boolean" and value in (0, 1) and type(value) is int:
        return value == 1  # MySQL's TINYINT(1), a 0/1 flag column
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


class Column(msgspec.Struct, frozen=True):
    """One mapped column: where its value goes, and how its cell becomes that value."""

    name: str
    index: int  # the column's place in the header (dropped columns keep theirs)
    targets: tuple[Target, ...]
    type: CellType
    trim: bool
    omit_on_error: bool
    rule: CellRule | None  # None: a plain column (the compiled fast path)

    @property
    def fields(self) -> str:
        return ", ".join(t.field for t in self.targets)


def omitted(column: Column, target: Target, exc: Exception) -> Problem:
    """The warning for a field left out by ``on_error = "omit"`` (the run summary counts them
    by column: the reason follows ``got``, which the summary leaves out)."""
    return Problem(target.field, f'left out (on_error = "omit"): column {column.name!r}, '
                                 f"got {exc}")


#: how one column's driver values become JSON values (None leaves the field out, as NULL)
Converter = Callable[[Any], Any]


class ValueRowMapper:
    """The plan applied to a database row (values by column name): the mapping of every SQL
    source (PostgreSQL, MySQL). A plain column's value is put as it is (JSON-shaped by the
    column's converter, :func:`~.mapping.python_value` unless ``converter`` gives another;
    NULL leaves the field out); a column with options goes through its :class:`CellRule`,
    keyed by column name like a CSV column by header."""

    def __init__(self, key: str, settings: MappingSettings, names: Sequence[str],
                 zone: dt.tzinfo, skip: Iterable[str] = (),
                 converter: Callable[[str], Converter] | None = None) -> None:
        """``converter(name)``: the converter of column ``name``, asked once per column."""
        self._columns = plan_columns(key, settings, names, zone, skip)
        for n, column in enumerate(self._columns):
            if any(t.lineitem for t in column.targets):
                raise ConfigError(f"{key}.columns.{column.name}", LINEITEMS_NEED_CSV)
            spec = column_spec(settings.columns.get(column.name, column.name))
            if column.rule is None and spec.type is not None:
                # a column given a type takes it: text is read as it, whole floats become
                # integers, numbers text (without one, values are put as the driver gives them)
                rule = CellRule(f"{key}.columns.{column.name}", spec, zone, names)
                self._columns[n] = msgspec.structs.replace(column, rule=rule)
        self._constants = [(split_path(k), v) for k, v in settings.constants.items()]
        self._zone = zone
        #: the driver's converters by column (none: python_value)
        self._convert = {} if converter is None else {name: converter(name) for name in names}
        #: per column, what map_row reads of it (the plain path's lookups made once)
        self._steps = [(c, c.name, self._convert.get(c.name), c.rule,
                        tuple(t.path for t in c.targets)) for c in self._columns]
        self._with_row = any(c.rule is not None and c.rule.expr is not None
                             and (c.rule.expr.uses_row or c.index == COMPUTED)
                             for c in self._columns)

    def id_column(self) -> str | None:
        """The column whose value is the record's ``id`` (None: none, or a computed one)."""
        for column in self._columns:
            if column.index != COMPUTED and any(t.path == ("id",) and not t.lineitem
                                                for t in column.targets):
                return column.name
        return None

    def _json(self, name: str, value: Any) -> Any:
        convert = self._convert.get(name)
        return python_value(value, self._zone) if convert is None else convert(value)

    def map_row(self, row: DatabaseRow, record: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], list[Problem] | None]:
        """The record (``record`` filled further, when given) and the warnings of
        ``on_error = "omit"`` columns; RowError naming the column for a refused value."""
        record = {} if record is None else record
        warnings: list[Problem] = []
        zone = self._zone
        values = ({k: None if v is None else self._json(k, v) for k, v in row.items()}
                  if self._with_row else {})
        for column, name, convert, rule, paths in self._steps:
            if rule is None:
                value = row[name]
                if value is None:
                    continue
                value = python_value(value, zone) if convert is None else convert(value)
                if value is None:
                    continue
            else:
                value = self._ruled(column, rule, row, values, warnings)
                if value is OMIT:
                    continue
            for path in paths:
                put(record, path, value)
        for path, constant in self._constants:
            put(record, path, constant)
        return record, warnings or None

    def _ruled(self, column: Column, rule: CellRule, row: DatabaseRow,
               values: Mapping[str, Any], warnings: list[Problem]) -> Any:
        """A column with options: its value, or OMIT (left out; with a warning added when
        ``on_error = "omit"`` and the value is refused)."""
        if column.index == COMPUTED:
            return rule.computed_from(values)
        value = row[column.name]
        if value is not None:
            value = self._json(column.name, value)
        try:
            return rule.value(value, values)
        except ValueError as exc:
            if not column.omit_on_error:
                raise RowError(f"column {column.name!r} ({column.fields}): {exc}") from None
            warnings += [omitted(column, t, exc) for t in column.targets]
            return OMIT


LINEITEMS_NEED_CSV = ("lineitems[] paths group CSV rows into orders; in a query, build the "
                      "list in SQL (json_agg(...) AS lineitems)")


class DatabaseRow(Protocol):
    """A row as a database driver gives it (asyncpg's Record, a dict): values by name."""

    def __getitem__(self, name: str, /) -> Any: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...


class RowError(ValueError):
    """A row that cannot become a record; the message names the column and field."""


def column_spec(spec: str | ColumnSpec) -> ColumnSpec:
    return spec if isinstance(spec, ColumnSpec) else ColumnSpec(field=spec)


def check_columns(key: str, columns: Mapping[str, str | ColumnSpec], zone: dt.tzinfo) -> None:
    """ConfigError naming the key for a column the job file gets wrong, before any row."""
    for name, spec in columns.items():
        plan_column(f"{key}.columns.{name}", name, 0, column_spec(spec), zone, None)


def plan_column(key: str, name: str, index: int, spec: ColumnSpec, zone: dt.tzinfo,
                header: Sequence[str] | None) -> Column:
    if not spec.fields:
        raise ConfigError(f"{key}.field", "names no field")
    targets = tuple(_target(key, field) for field in spec.fields)
    rule = None if spec.plain else CellRule(key, spec, zone, header)
    return Column(name, index, targets, spec.cell_type, spec.trim, spec.on_error == "omit",
                  rule)


def _target(key: str, field: str) -> Target:
    lineitem = field.startswith(LINEITEM_PREFIX)
    path = field[len(LINEITEM_PREFIX):] if lineitem else field
    if not path or "[" in path:
        raise ConfigError(key, f"not a field path: {field!r} (use dots: customer.email, "
                               "lineitems[].sku)")
    return Target(split_path(path), lineitem)


def plan_columns(key: str, settings: MappingSettings, header: Iterable[str],
                 zone: dt.tzinfo = dt.UTC, skip: Iterable[str] = ()) -> list[Column]:
    """The columns of ``header`` as mapped by ``settings`` (``skip``: columns the source
    itself reads, left out like dropped ones), then the computed columns: those ``columns``
    names that the header lacks, whose ``expr`` reads ``row`` but not ``value``. ConfigError
    (naming ``key``) for any other mapped or dropped column the header does not have."""
    names = list(header)
    computed = [c for c, spec in settings.columns.items()
                if c not in names and computed_only(spec)]
    missing = [c for c in [*settings.columns, *settings.drop]
               if c not in names and c not in computed]
    if missing:
        raise ConfigError(f"{key}.columns", f"not in the header: {', '.join(missing)} "
                                            f"(the header has: {', '.join(names)})")
    dropped = {*settings.drop, *skip}
    return [*(plan_column(f"{key}.columns.{name}", name, index,
                          column_spec(settings.columns.get(name, name)), zone, names)
              for index, name in enumerate(names) if name not in dropped),
            *(plan_column(f"{key}.columns.{name}", name, COMPUTED,
                          column_spec(settings.columns[name]), zone, names)
              for name in computed)]


#: the index of a computed column: one the header lacks, filled by an ``expr`` over ``row``
COMPUTED = -1


def computed_only(spec: str | ColumnSpec) -> bool:
    """A column the header need not have: its ``expr`` reads ``row``, never ``value``."""
    if isinstance(spec, str) or spec.expr is None:
        return False
    try:
        return not Expression("", spec.expr).uses_value
    except ConfigError:
        return False  # the expression's own error is raised where the column is planned

