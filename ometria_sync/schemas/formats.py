"""Checks for the string formats Ometria's records use. Each returns the reason a value is
wrong (to follow ``path: ``), or None when it is right."""

from __future__ import annotations

import re
from datetime import date, datetime

from ometria_sync.schemas.problems import show

# ISO 8601 date-time with a UTC offset: Z, +hh, +hhmm or +hh:mm (seed documents use "+00").
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)", re.ASCII
)
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?", re.ASCII)
_SPACED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}.*", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# A pragmatic address check: a dot-atom local part, an @, and a dotted domain whose last label
# starts with a letter; labels do not start or end with a hyphen (letters beyond ASCII are
# allowed, for internationalised addresses).
_EMAIL = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[^\W_][\w-]*(?<!-)\.)+[^\W\d_][\w-]*(?<!-)"
)
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_SPACE = re.compile(r"\s")

TIMESTAMP_EXAMPLE = "2024-03-01T10:15:00+00:00"


def timestamp_problem(value: str) -> str | None:
    """ISO 8601 extended date and time with an offset (``Z``, ``+00``, ``+0100`` and ``+01:00``
    all count); a real calendar date and time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if (parsed is not None and parsed.tzinfo is not None
            and value[4:5] == "-" and value[7:8] == "-" and value[10:11] == "T"):
        return None
    if parsed is None and _TIMESTAMP.fullmatch(value) is not None:
        return f"is not a real date-time, got {show(value)}"
    if _NAIVE.fullmatch(value) is not None:
        return (f"must be an ISO 8601 date-time with a UTC offset, e.g. "
                f"{TIMESTAMP_EXAMPLE}, got {show(value)} (no offset)")
    if parsed is not None and _SPACED.fullmatch(value) is not None:
        return (f"must be an ISO 8601 date-time with a UTC offset, e.g. "
                f'{TIMESTAMP_EXAMPLE}, got {show(value)} (date and time are separated by "T")')
    return (f"must be an ISO 8601 date-time with a UTC offset, e.g. {TIMESTAMP_EXAMPLE}, "
            f"got {show(value)}")


def date_problem(value: str) -> str | None:
    """A calendar date written ``YYYY-MM-DD``."""
    if _DATE.fullmatch(value) is None:
        return f"must be a date written YYYY-MM-DD, got {show(value)}"
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        return f"is not a real date ({exc}), got {show(value)}"
    return None


def email_problem(value: str) -> str | None:
    """A syntactically valid address: local part, ``@``, a domain with a dot."""
    if len(value) > 254 or _EMAIL.fullmatch(value) is None:
        return f"must be an email address, got {show(value)}"
    return None


def phone_problem(value: str) -> str | None:
    """E.164: a ``+``, the country code and the number, digits only, at most 15."""
    if _E164.fullmatch(value) is None:
        return f'must be an E.164 phone number such as "+447700900123", got {show(value)}'
    return None


def id_problem(value: str) -> str | None:
    """Ometria ids are non-empty strings without spaces."""
    if not value:
        return "must not be empty"
    if _SPACE.search(value) is not None:
        return f"must not contain spaces, got {show(value)}"
    return None
