"""A fast yes for the common case: a record the walk would pass without a single problem.

``validate_record`` walks a record field by field, building paths and problems as it goes, and
converts it into its Struct to check the JSON types; most records have no problem at all.
:func:`clean_check` compiles, once per record type and mode, a predicate made of one small
check per field (the exact JSON type its annotation asks for, the text ``"null"``, finite
numbers, the field's rule) and the object rules of each level.

Guarantee: the predicate is True only for a record to which the walk gives an empty verdict
(no error, no warning: so no unknown field, whatever ``strict`` says). Whatever it is unsure of
(a value of another class than JSON's own, a shape it was not built for) makes it False, and
the walk decides: so every verdict, and every message in it, is the walk's own. The property
tests hold the two to that.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from ometria_sync.schemas.problems import Findings, Mode
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.schemas.rules import FIELD_RULES, OBJECT_RULES, Rule

#: True when a value (of one field, or one item) needs no problem reported
Check = Callable[[Any], bool]

_NULL_TEXTS = frozenset(("null", "NULL", "Null"))  # as check.NULL_TEXTS
_SPACE = re.compile(r"\s")  # the envelope's rule for ids


def _never(value: Any) -> bool:
    return False


def _parts(annotation: Any) -> tuple[list[Any], bool]:
    """The annotation's JSON types, and whether it takes null (UNSET means "missing": a
    present value is never UNSET, so it is dropped)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = list(typing.get_args(annotation))
    else:
        parts = [annotation]
    nullable = type(None) in parts
    return [p for p in parts if p is not type(None) and p is not msgspec.UnsetType], nullable


_SCALAR_TYPES = frozenset((str, int, float, bool))


def _scalars(parts: list[Any], nullable: bool, rule: Rule | None) -> Check:
    """The check of a value of a union of JSON scalar types (floats finite, JSON integers
    count as numbers, strings not ``"null"``), then of the field's rule (a text format or a
    sign) on a value of the type the rule looks at."""
    allowed = set(parts) | ({type(None)} if nullable else set())
    if float in allowed:
        allowed.add(int)
    classes = frozenset(allowed)
    text = rule.text if rule is not None else None
    sign = rule.sign if rule is not None else 0

    def check(v: Any) -> bool:
        kind = v.__class__
        if kind not in classes:
            return False
        if kind is str:
            return v not in _NULL_TEXTS and (text is None or text(v) is None)
        if kind is float:
            return v - v == 0.0 and not (sign < 0 and v > 0)
        if kind is int and sign:
            return not (v > 0 if sign < 0 else v < 0)
        return True

    return check


def _value_check(annotation: Any, mode: Mode, rule: Rule | None = None) -> Check:
    """The check of a value of ``annotation`` (``rule``: a field's own, on a scalar): its
    JSON type, no ``"null"`` text, finite numbers, and the whole walk below an object of a
    Struct."""
    parts, nullable = _parts(annotation)
    scalars = [p for p in parts if p in _SCALAR_TYPES]
    checks: list[Check] = [_scalars(scalars, nullable, rule)] if scalars or nullable else []
    for part in parts:
        if part in _SCALAR_TYPES:
            continue
        origin = typing.get_origin(part)
        if isinstance(part, type) and issubclass(part, msgspec.Struct):
            checks.append(_object_check(_level_check(part, mode)))
        elif origin is list:
            checks.append(_list_check(_value_check(typing.get_args(part)[0], mode)))
        elif origin is dict and typing.get_args(part)[0] is str:
            checks.append(_dict_check(_value_check(typing.get_args(part)[1], mode)))
        else:
            return _never  # a shape this module was not built for: the walk decides
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) or second(v)
    return lambda v: any(c(v) for c in checks)


def _object_check(level: Check) -> Check:
    return lambda v: v.__class__ is dict and level(v)


def _list_check(item: Check) -> Check:
    def check(v: Any) -> bool:
        return v.__class__ is list and all(map(item, v))

    return check


def _dict_check(entry: Check) -> Check:
    """Free key/values (properties): string keys, each value passing ``entry``."""
    def check(v: Any) -> bool:
        if v.__class__ is not dict:
            return False
        for k, x in v.items():  # noqa: SIM110 (a loop: no generator made per object)
            if k.__class__ is not str or not entry(x):
                return False
        return True

    return check


#: a field's check in a level: a plain union of scalar classes with its text rule (None:
#: none) and the rule's test in C are tested inline, anything else is called
_Spec = (tuple[frozenset[type], Callable[[str], str | None] | None,
               Callable[[str], object] | None] | Check)


def _field_spec(annotation: Any, rule: Rule | None, mode: Mode) -> _Spec:
    parts, nullable = _parts(annotation)
    if not parts or any(p not in _SCALAR_TYPES for p in parts) or (rule and rule.sign):
        return _value_check(annotation, mode, rule)
    allowed = set(parts) | ({type(None)} if nullable else set())
    if float in allowed:
        allowed.add(int)
    if rule is None:
        return frozenset(allowed), None, None
    return frozenset(allowed), rule.text, rule.accepts


def _level_check(struct: type[msgspec.Struct], mode: Mode,  # noqa: C901 (inlined: a call
                 own: dict[str, Check] | None = None) -> Check:  # per object, not per field)
    """The check of an object of ``struct``: every key a field of it whose value passes,
    every required field present, and the object rule without a finding."""
    rules = FIELD_RULES.get(struct, {})
    fields: dict[str, _Spec] = {
        info.encode_name: _field_spec(info.type, rules.get(info.encode_name), mode)
        for info in msgspec.structs.fields(struct)}
    fields.update(own or {})
    required = tuple(info.encode_name for info in msgspec.structs.fields(struct)
                     if info.required)
    rule = OBJECT_RULES.get(struct)
    get = fields.get
    nulls = _NULL_TEXTS
    plain = not required and rule is None  # nothing to check of the object as a whole

    def check(raw: dict[str, Any]) -> bool:
        for key, value in raw.items():
            spec = get(key)
            if spec is None:
                return False
            if spec.__class__ is not tuple:
                if not spec(value):  # type: ignore[operator]
                    return False
                continue
            classes, text, accepts = spec
            kind = value.__class__
            if kind is str:
                if kind not in classes or value in nulls or (text is not None and not (
                        accepts is not None and accepts(value)) and text(value) is not None):
                    return False
            elif kind not in classes or (kind is float and value - value != 0.0):
                return False
        return plain or whole(raw)

    def whole(raw: dict[str, Any]) -> bool:
        for name in required:
            if name not in raw:
                return False
        if rule is None:
            return True
        found = Findings()
        rule(raw, "", mode, found)
        return not (found.errors or found.warnings)

    return check


def _id(value: Any) -> bool:
    """The envelope's id: a non-empty string with no space (and not the text ``"null"``)."""
    return (value.__class__ is str and value != "" and value not in _NULL_TEXTS
            and _SPACE.search(value) is None)


@functools.cache
def clean_check(record_type: str, mode: Mode) -> Check:
    """The predicate for records of ``record_type`` (one of ``RECORD_TYPES``) in ``mode``:
    True only when ``validate_record`` would find no error and no warning. Compiled once per
    type and mode: ``validate_record`` and each stream's batcher share it."""
    struct = RECORD_STRUCTS[record_type]
    level = _level_check(struct, mode, {
        "id": _id, "@type": lambda v: v.__class__ is str and v == record_type})
    return lambda record: record.__class__ is dict and "id" in record and level(record)
