"""Omneo's values as they come, turned into Python values only where the reading is unambiguous.

Omneo (a Laravel application) sends numbers as strings (``"12.50"``), ``[]`` where an object is
expected (PHP's empty array), objects with numeric keys where a list is expected, MySQL's zero
date ``"0000-00-00 00:00:00"`` and date-times without an offset. Each function here takes *any*
JSON value and either returns the value it means (None when it is absent: null, ``""``, ``[]``,
``{}``, the text ``"null"``) or raises :class:`Unusable` with the reason. Nothing else escapes
them, whatever the input (pinned by property tests); nothing is guessed: ``"1,234.50"`` is not a
number, ``"yes please"`` is not a boolean, an epoch number is not a date.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from typing import Any

from ometria_sync.schemas import show_value
from ometria_sync.sources.mapping import boolean_word

_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)
_ZERO_DATE = re.compile(r"0000-00-00(?:[T ]00:00(?::00)?)?", re.ASCII)
_NULL_TEXTS = frozenset(("null", "none", "nil"))


class Unusable(ValueError):
    """A value that is present but has no single reading (the message says why)."""


def is_absent(value: Any) -> bool:
    """Null, an empty or blank text, the text "null", an empty list or object."""
    if value is None:
        return True
    if isinstance(value, str):
        stripped = value.strip()
        return not stripped or stripped.lower() in _NULL_TEXTS
    if isinstance(value, list | dict):
        return not value
    return False


def text(value: Any) -> str | None:
    """A string, stripped. Integers (and integral floats) become their digits, so numeric ids
    and SKUs survive (``1012310`` -> ``"1012310"``)."""
    if is_absent(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    raise Unusable(f"expected text, got {_kind(value)}")


def number(value: Any) -> float | None:
    """A finite number; a string only when it is a plain decimal (``"12.50"``, ``"-3"``)."""
    if is_absent(value):
        return None
    if isinstance(value, bool):
        raise Unusable(f"expected a number, got {show_value(value)}")
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = value.strip()
    elif not isinstance(value, int | float):
        raise Unusable(f"not a number: {_shown(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise Unusable(f"not a finite number: {_shown(value)}")
    return result


def integer(value: Any) -> int | None:
    """A whole number: ``3``, ``3.0``, ``"3"`` and ``"3.00"``; ``"3.5"`` is not one."""
    result = number(value)
    if result is None:
        return None
    if not result.is_integer():
        raise Unusable(f"not a whole number: {_shown(value)}")
    return int(result)


def boolean(value: Any) -> bool | None:
    """``true``/``false``, ``1``/``0`` and the texts every source reads as booleans."""
    if is_absent(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (word := boolean_word(value)) is not None:
        return word
    raise Unusable(f"not a boolean: {_shown(value)}")


def timestamp(value: Any, zone: dt.tzinfo) -> dt.datetime | None:
    """An aware date-time. Omneo writes ``2021-01-27 23:38:36``; a ``T``, fractions of a second
    and an offset (``Z``, ``+10:00``) are accepted too. Without an offset the time is read in
    ``zone``; a wall time a DST change makes ambiguous takes its first occurrence
    (``fold=0``), so the same input always gives the same instant. A date alone is midnight.
    MySQL's zero date means "no date"."""
    if is_absent(value):
        return None
    if not isinstance(value, str):
        raise Unusable(f"expected a date-time text, got {_kind(value)}")
    stripped = value.strip()
    if _ZERO_DATE.fullmatch(stripped):
        return None
    if not _DATETIME.fullmatch(stripped):
        raise Unusable(f"not a date-time: {_shown(value)}")
    try:
        parsed = dt.datetime.fromisoformat(stripped)
    except ValueError as exc:
        raise Unusable(f"not a real date-time ({exc}): {_shown(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise Unusable(f"out of range once placed in its time zone: {_shown(value)}") from None
    return parsed


def zone(value: Any) -> zoneinfo.ZoneInfo | None:
    """An IANA time zone name (``"Australia/Melbourne"``)."""
    name = text(value)
    if name is None:
        return None
    return known_zone(name)


def known_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``, or Unusable."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise Unusable(f"not a known time zone: {show_value(name)}") from None


def obj(value: Any) -> dict[str, Any] | None:
    """An object; ``[]`` (PHP's empty array) and ``{}`` count as absent."""
    if is_absent(value):
        return None
    if isinstance(value, dict):
        return value
    raise Unusable(f"expected an object, got {_kind(value)}")


def items(value: Any) -> list[Any]:
    """A list. An object whose keys are all digits is the list PHP serialises after removing
    some entries (``{"0": a, "2": b}``): its values in key order."""
    if is_absent(value):
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(isinstance(k, str) and k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise Unusable(f"expected a list, got {_kind(value)}")


def texts(value: Any) -> list[str]:
    """A list of texts; a single text is a list of one."""
    if isinstance(value, str):
        single = text(value)
        return [] if single is None else [single]
    result: list[str] = []
    for index, item in enumerate(items(value)):
        try:
            single = text(item)
        except Unusable as exc:
            raise Unusable(f"[{index}]: {exc}") from None
        if single is not None:
            result.append(single)
    return result


def iso(when: dt.datetime) -> str:
    """Ometria's form: ISO 8601 with ``T`` and an explicit offset (``+00:00``, never ``Z``)."""
    return when.isoformat(timespec="microseconds" if when.microsecond else "seconds")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return show_value(value)


def _shown(value: Any) -> str:
    return _kind(value) if isinstance(value, dict | list) else show_value(value)
