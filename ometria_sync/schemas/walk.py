"""``check_values``: a record walked once, guided by its Struct.

It applies the rules of :mod:`ometria_sync.schemas.rules`, reports the text ``"null"`` (Ometria
stores it as "Null"), checks that every value has a JSON form and collects the fields the
Struct does not know. Rules look only at values of the right JSON type: a wrongly typed value
has already been reported by the type check.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ometria_sync.schemas.findings import Findings, Mode
from ometria_sync.schemas.json_values import check_json
from ometria_sync.schemas.problems import Problem, join, show
from ometria_sync.schemas.rules import FIELD_RULES, OBJECT_RULES, Rule
from ometria_sync.schemas.shape import container_in, struct_in

NULL_TEXTS = frozenset(("null", "NULL", "Null"))
NULL_TEXT_MESSAGE = ('is the text "null", which Ometria would store as "Null": send JSON null '
                     "to delete the field, or leave the key out to keep it")
UNKNOWN_FIELD = "unknown field (sent as it is; strict = true refuses it)"


class _Field:
    """One field of a level: its rule, and where the walk goes below it."""

    __slots__ = ("child", "free", "items", "sign", "text", "warn")

    def __init__(self, rule: Rule | None) -> None:
        self.text = rule.text if rule else None
        self.sign = rule.sign if rule else 0
        self.warn = rule.warn if rule else False
        self.child: Level | None = None  # an object of a known Struct
        self.items: Level | None = None  # a list of objects of a known Struct
        self.free = False  # properties, lists of strings: only checked for "null" texts


class Level:
    """A Struct's fields with their rules, built once per Struct."""

    __slots__ = ("fields", "rule")

    def __init__(self, struct: type[msgspec.Struct]) -> None:
        rules = FIELD_RULES.get(struct, {})
        self.rule = OBJECT_RULES.get(struct)
        self.fields: dict[str, _Field] = {}
        for info in msgspec.structs.fields(struct):
            spec = _Field(rules.get(info.encode_name))
            child = struct_in(info.type)
            items = container_in(info.type, list)
            if child is not None:
                spec.child = Level(child)
            elif items is not None and (item := struct_in(items[0])) is not None:
                spec.items = Level(item)
            elif items is not None or container_in(info.type, dict) is not None:
                spec.free = True
            self.fields[info.encode_name] = spec


def check_values(raw: dict[str, Any], level: Level, path: str, mode: Mode, found: Findings,
                 unknown: list[Problem]) -> None:
    """Apply ``level``'s rules to ``raw`` and the objects below it; unknown fields go to
    ``unknown``. (The hot path of validation: one loop over the fields present.)"""
    fields = level.fields
    for key, value in raw.items():
        spec = fields.get(key)
        if spec is None:
            unknown.append(Problem(join(path, str(key)), UNKNOWN_FIELD))
            if value.__class__ is not str:
                check_json(value, join(path, str(key)), found)
            continue
        kind = value.__class__
        if kind is str:
            if spec.text is not None or value in NULL_TEXTS:
                _text(spec, value, path, key, found)
        elif kind is dict or kind is list:
            _descend(spec, value, join(path, key), mode, found, unknown)
        elif kind is float or kind is int:
            if kind is float and value - value != 0.0:  # NaN or an infinity
                check_json(value, join(path, key), found)
            elif spec.sign:
                _sign(spec.sign, kind, value, join(path, key), found)
        elif kind is not bool and value is not None:  # no JSON form (a range, a bit string)
            check_json(value, join(path, key), found)
    if level.rule is not None:
        level.rule(raw, path, mode, found)


def _text(spec: _Field, value: str, path: str, key: str, found: Findings) -> None:
    if value in NULL_TEXTS:
        found.errors.append(Problem(join(path, key), NULL_TEXT_MESSAGE))
    elif spec.text is not None:
        message = spec.text(value)
        if message is not None:
            problems = found.warnings if spec.warn else found.errors
            problems.append(Problem(join(path, key), message))


def _descend(spec: _Field, value: dict[str, Any] | list[Any], path: str, mode: Mode,
             found: Findings, unknown: list[Problem]) -> None:
    if isinstance(value, dict):
        if spec.child is not None:
            check_values(value, spec.child, path, mode, found, unknown)
        elif spec.free:
            _free_texts(value, path, found)
            check_json(value, path, found)
    elif spec.items is not None:
        for index, item in enumerate(value):
            if item.__class__ is dict:
                check_values(item, spec.items, f"{path}[{index}]", mode, found, unknown)
    elif spec.free:
        _null_texts_in_list(value, path, found)
        check_json(value, path, found)


def _sign(sign: int, kind: type, value: float, path: str, found: Findings) -> None:
    if sign < 0 and value > 0:
        found.errors.append(Problem(path, f"must be <= 0, got {show(value)}"))
    elif sign > 0 and kind is int and value < 0:
        found.errors.append(Problem(path, f"must be >= 0, got {show(value)}"))


def _free_texts(raw: dict[str, Any], path: str, found: Findings) -> None:
    """``"null"`` texts in free key/values (properties) and the lists in them."""
    values = raw.values()
    if "null" in values or "NULL" in values or "Null" in values:
        found.errors.extend(Problem(join(path, str(k)), NULL_TEXT_MESSAGE)
                            for k, v in raw.items() if v.__class__ is str and v in NULL_TEXTS)
    for key, value in raw.items():
        if value.__class__ is list:
            _null_texts_in_list(value, join(path, str(key)), found)


def _null_texts_in_list(items: list[Any], path: str, found: Findings) -> None:
    if "null" in items or "NULL" in items or "Null" in items:
        found.errors.extend(Problem(f"{path}[{i}]", NULL_TEXT_MESSAGE)
                            for i, v in enumerate(items) if v.__class__ is str and v in NULL_TEXTS)
