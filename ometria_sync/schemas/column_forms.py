"""The columnar forms of the text rules (``rules.FIELD_RULES``), for the typed lane: each
checks a whole column of strings at once, with few Python steps per value, and is true only
of values the rule finds nothing in (the property tests hold each to its rule).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from ometria_sync.schemas import rules as r

_MISSING = frozenset((None, msgspec.UNSET))


#: a check of the strings of a column (never None or UNSET; at least one)
Column = Callable[[list[str]], bool]


def strings(column: list[Any]) -> list[str]:
    """The strings of a column of ``str | None | UNSET`` values (a column where each value is
    a non-empty string, the common case, as it is; one where none is, no step per value in
    Python either)."""
    if all(column):
        return column
    if column.count(msgspec.UNSET) == len(column):  # a field no object holds
        return []
    held = set(column)
    held -= _MISSING
    return list(held)


def _no_space(values: list[str]) -> bool:
    """``id_problem`` finds nothing: non-empty, and no ``\\s`` in any (so none in them all
    written one after the other)."""
    return "" not in values and r._SPACE.search("".join(values)) is None


def _pattern(pattern: re.Pattern[str], *, ascii_twin: re.Pattern[str] | None = None,
             longest: int = 0, parse: Callable[[str], object] | None = None) -> Column:
    """Every value fullmatches ``pattern`` (which never matches a ``"\\n"``: the values are
    joined by one, and a value holding one is refused), is at most ``longest`` characters
    (0: any) and ``parse`` takes it. ``ascii_twin``: a faster pattern that fullmatches
    exactly the ASCII strings ``pattern`` fullmatches, used when all values are ASCII."""
    def joined(p: re.Pattern[str]) -> re.Pattern[str]:
        return re.compile(f"(?:{p.pattern})(?:\n(?:{p.pattern}))*", p.flags)

    whole = joined(pattern)
    fast = joined(ascii_twin) if ascii_twin is not None else whole

    def check(values: list[str]) -> bool:
        text = "\n".join(values)
        if text.count("\n") != len(values) - 1:
            return False
        if (fast if text.isascii() else whole).fullmatch(text) is None:
            return False
        if longest and max(map(len, values)) > longest:
            return False
        if parse is not None:
            try:
                deque(map(parse, values), maxlen=0)
            except ValueError:
                return False
        return True

    return check


_SEPARATORS = itemgetter(slice(4, 11, 3))  # value[4], value[7], value[10]
_TZINFO = attrgetter("tzinfo")


def _timestamps(values: list[str]) -> bool:
    """``timestamp_problem`` finds nothing: each value is parsed by ``fromisoformat`` with an
    offset, with ``-`` ``-`` ``T`` at 4, 7 and 10 (the rule's own test, a column at a time)."""
    if "".join(map(_SEPARATORS, values)) != "--T" * len(values):
        return False
    try:
        parsed = list(map(datetime.fromisoformat, values))
    except ValueError:
        return False
    return None not in map(_TZINFO, parsed)


#: ``rules._EMAIL`` for ASCII text: the same classes spelt out (``\\w`` of an ASCII
#: character is ``[A-Za-z0-9_]``) and possessive quantifiers, which give back nothing that
#: could match: each is followed by a character its class does not hold (``.``, ``@``, the
#: end). The property tests hold the two to the same answer.
_ATOM = r"[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]++"
EMAIL_ASCII = re.compile(
    rf"{_ATOM}(?:\.{_ATOM})*+@(?:[A-Za-z0-9][A-Za-z0-9_-]*+(?<!-)\.)++"
    r"[A-Za-z][A-Za-z0-9_-]*+(?<!-)", re.ASCII)

#: the columnar form of each text check of ``rules``: true only of values it finds nothing in
TEXT_FORMS: dict[Callable[[str], str | None], Column] = {
    r.id_problem: _no_space,
    r.email_problem: _pattern(r._EMAIL, ascii_twin=EMAIL_ASCII, longest=254),
    r.timestamp_problem: _timestamps,
    r.date_problem: _pattern(r._DATE, parse=date.fromisoformat),
    r.phone_problem: _pattern(r._E164),
    r._collection: r.SMS_COLLECTIONS.isdisjoint,
}
#: the envelope's id (``clean._id``): a non-empty string without space
ENVELOPE_ID = _no_space
