"""``validate_record``: everything Ometria would object to in a record, before it is sent.

Order of work, cheapest first for valid records: the envelope (an object with a usable id),
one strict msgspec conversion into the type's Struct (every JSON type at once, in C), then one
walk for the value rules, unknown fields and ``"null"`` texts. Only when the conversion
fails is the record descended field by field, to name every wrongly typed field.

The record is never modified. The 60 KB size rule needs the encoding the engine sends, so it
is applied where that encoding is made (``record_size_problem``).

Type problems (``type_problems``): msgspec converts a record into its Struct in one pass, in C,
and stops at the first wrongly typed value. That is the fast path for valid records. When it
fails, ``type_problems`` descends the record field by field so that *every* wrongly typed field
is reported, each with its path and the value found.

The walk (``check_values``): a record walked once, guided by its Struct. It applies the rules
of :mod:`ometria_sync.schemas.rules`, reports the text ``"null"`` (Ometria stores it as
"Null"), checks that every value has a JSON form and collects the fields the Struct does not
know. Rules look only at values of the right JSON type: a wrongly typed value has already been
reported by the type check.

JSON values (``check_json``): every value of a record needs a JSON form: finite numbers, and
nothing a database hands over that JSON cannot write (a range, a bit string).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec

from ometria_sync.schemas.clean import clean_check
from ometria_sync.schemas.envelope import envelope_problems
from ometria_sync.schemas.problems import Findings, Mode, Problem, Verdict, field_path, show_value
from ometria_sync.schemas.records import RECORD_STRUCTS, RECORD_TYPES
from ometria_sync.schemas.rules import FIELD_RULES, OBJECT_RULES, Rule

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
                _json_problems(item, field_path(path, str(key)), found)
    elif kind is list:
        for index, item in enumerate(value):
            if item.__class__ is not str:
                _json_problems(item, f"{path}[{index}]", found)
    elif kind is float:
        if value - value != 0.0:
            _add_once(found, Problem(path, f"must be a finite number, got {show_value(value)}"))
    elif kind not in _JSON_SCALARS and not isinstance(value, (str, int, float, dict, list)):
        _add_once(found, Problem(path, f"has no JSON form (type {type(value).__name__}; "
                                       "convert it in the source, e.g. cast it to text in the "
                                       f"query), got {show_value(value)}"))


def _add_once(found: Findings, problem: Problem) -> None:
    """Add ``problem`` unless the type check already named its path."""
    if all(p.path != problem.path for p in found.errors):
        found.errors.append(problem)


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
        return Problem(path, f"must be {expected}, got {show_value(value)}")
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
                type_problems(value[name], info.type, field_path(path, name), out)
            elif info.required:
                out.append(Problem(field_path(path, name), "is required"))
        return
    items = container_in(annotation, list)
    if items is not None and isinstance(value, list):
        for index, item in enumerate(value):
            type_problems(item, items[0], f"{path}[{index}]", out)
        return
    entries = container_in(annotation, dict)
    if entries is not None and isinstance(value, dict):
        for key, item in value.items():
            type_problems(item, entries[1], field_path(path, str(key)), out)
        return
    out.append(_leaf_problem(path, value, annotation, error))


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
            unknown.append(Problem(field_path(path, str(key)), UNKNOWN_FIELD))
            if value.__class__ is not str:
                check_json(value, field_path(path, str(key)), found)
            continue
        kind = value.__class__
        if kind is str:
            if spec.text is not None or value in NULL_TEXTS:
                _text(spec, value, path, key, found)
        elif kind is dict or kind is list:
            _descend(spec, value, field_path(path, key), mode, found, unknown)
        elif kind is float or kind is int:
            if kind is float and value - value != 0.0:  # NaN or an infinity
                check_json(value, field_path(path, key), found)
            elif spec.sign:
                _sign(spec.sign, kind, value, field_path(path, key), found)
        elif kind is not bool and value is not None:  # no JSON form (a range, a bit string)
            check_json(value, field_path(path, key), found)
    if level.rule is not None:
        level.rule(raw, path, mode, found)


def _text(spec: _Field, value: str, path: str, key: str, found: Findings) -> None:
    if value in NULL_TEXTS:
        found.errors.append(Problem(field_path(path, key), NULL_TEXT_MESSAGE))
    elif spec.text is not None:
        message = spec.text(value)
        if message is not None:
            problems = found.warnings if spec.warn else found.errors
            problems.append(Problem(field_path(path, key), message))


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
        found.errors.append(Problem(path, f"must be <= 0, got {show_value(value)}"))
    elif sign > 0 and kind is int and value < 0:
        found.errors.append(Problem(path, f"must be >= 0, got {show_value(value)}"))


def _free_texts(raw: dict[str, Any], path: str, found: Findings) -> None:
    """``"null"`` texts in free key/values (properties) and the lists in them."""
    values = raw.values()
    if "null" in values or "NULL" in values or "Null" in values:
        found.errors.extend(Problem(field_path(path, str(k)), NULL_TEXT_MESSAGE)
                            for k, v in raw.items() if v.__class__ is str and v in NULL_TEXTS)
    for key, value in raw.items():
        if value.__class__ is list:
            _null_texts_in_list(value, field_path(path, str(key)), found)


def _null_texts_in_list(items: list[Any], path: str, found: Findings) -> None:
    if "null" in items or "NULL" in items or "Null" in items:
        found.errors.extend(Problem(f"{path}[{i}]", NULL_TEXT_MESSAGE)
                            for i, v in enumerate(items) if v.__class__ is str and v in NULL_TEXTS)


_LEVELS = {name: Level(struct) for name, struct in RECORD_STRUCTS.items()}
_CLEAN = {(name, mode): clean_check(name, mode) for name in RECORD_STRUCTS
          for mode in typing.get_args(Mode)}


def validate_record(record_type: str, record: Any, *, mode: Mode = "update",
                    strict: bool = False) -> Verdict:
    """Check ``record`` against the schema of ``record_type``.

    Errors make the record invalid. Unknown fields are warnings (they are sent as they are),
    or errors with ``strict``. ``mode = "create"`` adds the fields a new record needs.
    A record with no problem at all is told apart first, by its type's compiled check
    (``clean.py``); any other is walked."""
    clean = _CLEAN.get((record_type, mode))
    if clean is not None and clean(record):
        return Verdict()
    return walk_record(record_type, record, mode=mode, strict=strict)


def walk_record(record_type: str, record: Any, *, mode: Mode = "update",
                strict: bool = False) -> Verdict:
    """:func:`validate_record` by the walk alone: every problem, with its path."""
    struct = RECORD_STRUCTS.get(record_type)
    if struct is None:
        return Verdict([Problem("@type", f"must be one of {', '.join(RECORD_TYPES)}, "
                                         f"got {show_value(record_type)}")])
    envelope = envelope_problems(record)
    if envelope:
        return Verdict(envelope)
    found = Findings()
    declared = record.get("@type", record_type)
    if declared != record_type:
        found.errors.append(Problem(
            "@type", f"must be {show_value(record_type)}, got {show_value(declared)}"))
    try:
        msgspec.convert(record, struct)
    except msgspec.ValidationError:
        type_problems(record, struct, "", found.errors)
    unknown: list[Problem] = []
    check_values(record, _LEVELS[record_type], "", mode, found, unknown)
    if unknown:
        (found.errors if strict else found.warnings).extend(unknown)
    return Verdict(found.errors, found.warnings)
