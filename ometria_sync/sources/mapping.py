"""From flat rows (CSV cells, database columns) to Ometria-shaped records.

A mapping names, per column, the record field it fills (a dotted path such as
``customer.email``; ``lineitems[].sku`` for one line item per row) and the type its text is
coerced to. Columns not named keep their own name as the path; ``drop`` leaves columns out;
``constants`` are added to every record. Empty cells and SQL NULLs leave the field out (a missing
key leaves Ometria's stored value alone; a JSON null would delete it).

Coercion never guesses: ``"12,50"`` is not a number, ``"maybe"`` is not a boolean; a cell that
cannot be coerced makes the row invalid, with the column, the field and the reason.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

import msgspec

from ometria_sync.errors import ConfigError

#: the words every source (CSV cells, Omneo fields) reads as booleans, one vocabulary
_TRUE = frozenset(("true", "t", "yes", "y", "1"))
_FALSE = frozenset(("false", "f", "no", "n", "0"))


def boolean_word(text: str) -> bool | None:
    """The truth value ``text`` names (true/false, t/f, yes/no, y/n, 1/0; any case, spaces
    around), or None when it names none."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


CellType = Literal["string", "number", "integer", "boolean", "timestamp", "date", "json"]
LINEITEM_PREFIX = "lineitems[]."


OnError = Literal["refuse", "omit"]
#: a ``values`` target or a ``default``: what TOML can write as a field's value
Scalar = str | int | float | bool


class ColumnSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``{ field = "grand_total", type = "number" }``, and the options a shop export needs
    (docs/mapping.md): ``field`` may list several fields; ``values`` maps cells to values (an
    empty target leaves the field out); ``default`` is the value of an empty or unmapped cell;
    ``expr`` computes the value (sources/expressions.py); ``on_error = "omit"`` leaves out a
    field whose cell does not coerce, with a counted warning, where ``"refuse"`` refuses the
    record; ``trim = false`` keeps a cell's surrounding spaces."""

    field: str | list[str]
    #: not given: text for a CSV cell, the driver's own type for a database value
    type: CellType | None = None
    values: dict[str, Scalar] | None = None
    default: Scalar | list[Any] | dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    expr: str | None = None
    on_error: OnError = "refuse"
    trim: bool = True

    @property
    def cell_type(self) -> CellType:
        """What a text cell is read as."""
        return self.type or "string"

    @property
    def fields(self) -> list[str]:
        return [self.field] if isinstance(self.field, str) else list(self.field)

    @property
    def plain(self) -> bool:
        """Only ``field``, ``type``, ``on_error`` and ``trim``: the compiled fast path."""
        return self.values is None and self.default is msgspec.UNSET and self.expr is None


class MappingSettings(Protocol):
    """What a mapping reads of a row-shaped source's settings (the keys are declared once, by
    :class:`~ometria_sync.sources.files.csv.CsvOptions`)."""

    @property
    def columns(self) -> Mapping[str, str | ColumnSpec]:
        """column -> field path (a string) or ``{ field = ..., type = ... }``"""

    @property
    def drop(self) -> Sequence[str]:
        """Columns left out of the record."""

    @property
    def constants(self) -> Mapping[str, Any]:
        """Fields added to every record."""


class CellError(ValueError):
    """A cell that cannot be coerced to its column's type."""


_INTEGER = re.compile(r"[-+]?\d+(?:\.0*)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _number(text: str) -> int | float:
    # float() alone would also take "nan", "inf", "1_000" and non-ASCII digits
    if not text.isascii() or "_" in text or "n" in text or "N" in text:
        raise CellError(f"not a number: {text.strip()!r}")
    try:
        value = float(text)
    except ValueError:
        raise CellError(f"not a number: {text.strip()!r}") from None
    if "." in text or "e" in text or "E" in text:
        return value
    return int(text)


def _integer(text: str) -> int:
    text = text.strip()
    if _INTEGER.fullmatch(text) is None:
        raise CellError(f"not an integer: {text!r}")
    return int(text.split(".", 1)[0])


def _boolean(text: str) -> bool:
    value = boolean_word(text)
    if value is not None:
        return value
    raise CellError(f"not a boolean (true/false, yes/no, 1/0): {text!r}")


def _date(text: str) -> str:
    text = text.strip()
    if _DATE.fullmatch(text) is None:
        raise CellError(f"not a date (expected YYYY-MM-DD): {text!r}")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise _not_real("date", text, exc) from None


#: ISO 8601 in shape (a date, a time, an offset), whether or not the date exists
_ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
                        r"(?:Z|[+-]\d{2}(?::?\d{2})?)?", re.ASCII)


def _not_real(what: str, text: str, exc: ValueError) -> CellError:
    """The message for ISO-shaped text that names no real moment (``2023-02-30``)."""
    if text.startswith("0000-00-00"):
        return CellError(f"a zero {what} (a database's 'no {what}'), not a real one: {text!r}; "
                         "on_error = \"omit\" leaves the field out")
    return CellError(f"not a real {what}: {text!r} ({exc})")


def _json(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise CellError(f"not JSON ({exc}): {text[:40]!r}") from exc


def timestamp_coercer(zone: dt.tzinfo) -> Callable[[str], str]:
    """ISO 8601 text (``T`` or a space between date and time) to ISO 8601 with an offset;
    a timestamp without an offset is read in ``zone``."""
    utc = zone is dt.UTC

    def coerce(text: str) -> str:
        text = text.strip()
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            if _ISO_SHAPE.fullmatch(text):
                raise _not_real("date", text, exc) from None
            raise CellError(f"not an ISO 8601 timestamp: {text!r}") from exc
        if value.tzinfo is None:
            if utc and len(text) == 19:  # the usual "YYYY-MM-DD hh:mm:ss" export, in UTC
                return f"{text[:10]}T{text[11:]}+00:00"
            value = value.replace(tzinfo=zone)
        return value.isoformat()

    return coerce


def load_zone(key: str, name: str) -> dt.tzinfo:
    """The IANA zone ``name``; ConfigError naming ``key`` when it is unknown."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(key, f"unknown time zone {name!r} (an IANA name like "
                               "'Europe/London')") from exc


def text_coercers(zone: dt.tzinfo) -> dict[str, Callable[[str], Any]]:
    return {"string": str, "number": _number, "integer": _integer, "boolean": _boolean,
            "timestamp": timestamp_coercer(zone), "date": _date, "json": _json}


def python_value(value: Any, zone: dt.tzinfo) -> Any:
    """A database value as JSON: Decimal -> float (``NaN`` stays a float NaN, which validation
    refuses), datetimes with an offset (naive ones in ``zone``), dates as ``YYYY-MM-DD``,
    times as ``HH:MM:SS``, UUIDs and network addresses as text, arrays element by element.
    Anything else (ranges, bit strings, intervals, bytes) is left as it is: validation refuses
    it with its field path, because it has no one JSON form."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, _AS_TEXT):
        return str(value)
    if isinstance(value, list):
        return [python_value(item, zone) for item in value]
    return value


_AS_TEXT = (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
            ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network)


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def put(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """``put(r, ("customer", "email"), v)`` sets ``r["customer"]["email"] = v``."""
    target = record
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value
