"""Magento's column values as Ometria's (the contract's section 2, every entity): keys as
decimal strings, ``DECIMAL`` amounts as numbers of the same value, whole quantities as
integers, UTC timestamps with their offset, text trimmed. Each function gives None for what
is no value (NULL, MySQL's zero date, text empty after trimming): the field is left out.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

_CENT = Decimal("0.01")


def key(value: Any) -> str | None:
    """An integer key as the string of its decimal digits (``123`` is ``"123"``)."""
    return None if value is None else str(int(value))


def number(value: Decimal | int | float | None) -> int | float | None:
    """A ``DECIMAL`` as a JSON number of the same value: an integer when whole (``2.0000`` is
    2, ``10.5000`` is 10.5)."""
    if value is None:
        return None
    exact = Decimal(value)
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def exact(value: Any) -> Decimal | None:
    """A ``DECIMAL`` column's value for arithmetic (None stays None)."""
    return None if value is None else Decimal(value)


def cents(value: Decimal) -> Decimal:
    """Rounded half up to 2 decimals (a converted price)."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def stamp(value: Any) -> str | None:
    """A UTC ``DATETIME``/``TIMESTAMP`` as ``YYYY-MM-DDTHH:MM:SS+00:00``; a zero date (the
    driver gives its text) is None."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00+00:00"
    return None


def day(value: Any) -> str | None:
    """A ``DATE`` as ``YYYY-MM-DD``; a zero date is None."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


def text(value: Any) -> str | None:
    """Text trimmed of surrounding whitespace (case kept); empty is None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    trimmed = str(value).strip()
    return trimmed or None


def put(record: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name`` unless ``value`` is None (a field with no value is left out)."""
    if value is not None:
        record[name] = value
