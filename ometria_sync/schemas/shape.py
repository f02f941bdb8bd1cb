"""Type problems, named one by one, for records msgspec's conversion refused.

msgspec converts a record into its Struct in one pass, in C, and stops at the first wrongly
typed value. That is the fast path for valid records. When it fails, ``type_problems``
descends the record field by field so that *every* wrongly typed field is reported, each with
its path and the value found.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec

from ometria_sync.schemas.problems import Problem, join, show

_KINDS: dict[object, str] = {str: "a string", int: "an integer", float: "a number",
                              bool: "true or false", list: "a list", dict: "an object"}
_SCALARS = frozenset((str, int, float, bool))


def _expected(annotation: Any) -> str | None:
    """``int | None`` -> ``an integer``: what the annotation asks for, in words.

    Read from the annotation, not from msgspec's message, whose wording is free to change
    between releases; ``None`` when the annotation is not a plain JSON type."""
    kinds: list[object] = []
    for part in union_parts(annotation):
        if part is type(None) or part is msgspec.UnsetType:
            continue
        kind = typing.get_origin(part) or part
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            kind = dict
        if kind not in _KINDS:
            return None
        kinds.append(kind)
    if set(kinds) >= _SCALARS:
        return ("a string, number, boolean or a list of them" if list in kinds
                else "a string, number or boolean")
    return " or ".join(_KINDS[k] for k in kinds) or None


def _leaf_problem(path: str, value: Any, annotation: Any,
                  error: msgspec.ValidationError) -> Problem:
    expected = _expected(annotation)
    if expected is not None:
        return Problem(path, f"must be {expected}, got {show(value)}")
    return Problem(path, str(error).split(" - at `", 1)[0])


def union_parts(annotation: Any) -> tuple[Any, ...]:
    """``A | B | None`` -> ``(A, B, None)``; anything else -> ``(annotation,)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    """The Struct class in ``annotation`` (a Struct, or a union holding one)."""
    for part in union_parts(annotation):
        if isinstance(part, type) and issubclass(part, msgspec.Struct):
            return part
    return None


def container_in(annotation: Any, origin: type) -> tuple[Any, ...] | None:
    """The type arguments of the ``list[...]`` / ``dict[...]`` in ``annotation``."""
    for part in union_parts(annotation):
        if typing.get_origin(part) is origin:
            return typing.get_args(part)
    return None


def type_problems(value: Any, annotation: Any, path: str, out: list[Problem]) -> None:
    """Append a problem for every place in ``value`` that does not have the JSON type
    ``annotation`` asks for (msgspec's strict conversion, one field at a time)."""
    try:
        msgspec.convert(value, annotation)
        return
    except msgspec.ValidationError as exc:
        error = exc
    struct = struct_in(annotation)
    if struct is not None and isinstance(value, dict):
        for info in msgspec.structs.fields(struct):
            name = info.encode_name
            if name in value:
                type_problems(value[name], info.type, join(path, name), out)
            elif info.required:
                out.append(Problem(join(path, name), "is required"))
        return
    items = container_in(annotation, list)
    if items is not None and isinstance(value, list):
        for index, item in enumerate(value):
            type_problems(item, items[0], f"{path}[{index}]", out)
        return
    entries = container_in(annotation, dict)
    if entries is not None and isinstance(value, dict):
        for key, item in value.items():
            type_problems(item, entries[1], join(path, str(key)), out)
        return
    out.append(_leaf_problem(path, value, annotation, error))
