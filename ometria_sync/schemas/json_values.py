"""Every value of a record needs a JSON form: finite numbers, and nothing a database hands over
that JSON cannot write (a range, a bit string). See :func:`check_json`."""

from __future__ import annotations

from typing import Any

from ometria_sync.schemas.findings import Findings
from ometria_sync.schemas.problems import Problem, join, show

_JSON_SCALARS = frozenset((int, bool, type(None)))


def check_json(value: Any, path: str, found: Findings) -> None:
    """Every number in ``value`` is finite and every value has a JSON form.

    The encoder writes NaN and the infinities as ``null``, which clears the field in Ometria,
    and raises on values JSON has no form for (a database range, a bit string): either way the
    record is refused here, with the field's path, and the run goes on. (A valid value is
    checked without building a single path: paths are only made for the problems.)"""
    if not _json_clean(value):
        _json_problems(value, path, found)


def _json_clean(value: Any) -> bool:
    """True when ``value`` holds only finite numbers and JSON values (the fast path)."""
    kind = value.__class__
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return kind is str or kind in _JSON_SCALARS or (kind is float and value - value == 0.0)
    for item in items:
        kind = item.__class__
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item - item != 0.0:
                return False
        elif not _json_clean(item):
            return False
    return True


def _json_problems(value: Any, path: str, found: Findings) -> None:
    kind = value.__class__
    if kind is dict:
        for key, item in value.items():
            if item.__class__ is not str:
                _json_problems(item, join(path, str(key)), found)
    elif kind is list:
        for index, item in enumerate(value):
            if item.__class__ is not str:
                _json_problems(item, f"{path}[{index}]", found)
    elif kind is float:
        if value - value != 0.0:
            _add_once(found, Problem(path, f"must be a finite number, got {show(value)}"))
    elif kind not in _JSON_SCALARS and not isinstance(value, (str, int, float, dict, list)):
        _add_once(found, Problem(path, f"has no JSON form (type {type(value).__name__}; "
                                       "convert it in the source, e.g. cast it to text in the "
                                       f"query), got {show(value)}"))


def _add_once(found: Findings, problem: Problem) -> None:
    """Add ``problem`` unless the type check already named its path."""
    if all(p.path != problem.path for p in found.errors):
        found.errors.append(problem)
