"""Every field of a record type, with its JSON type, its rule and an example, for people
writing a mapping (``ometria-sync fields``).

Nothing here restates the schemas: the fields, their nesting and their types are read from the
Structs of :mod:`ometria_sync.schemas.records` (``msgspec.inspect``), and each field's rule is
the ``Rule`` that :data:`ometria_sync.schemas.rules.FIELD_RULES` attaches to it, the very entry
the validator applies: its severity, and what it says in words and a value it accepts, are
declared on that ``Rule`` (``OBJECT_FIELD_RULES`` for what an object rule checks of one field).
The tests check that every rule has its words and example, and that every example shown passes
the validator. What a record needs as a whole (``needs``) is asked of the validator itself, by
validating a skeleton record, so it cannot drift either.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from ometria_sync.schemas.check import validate_record
from ometria_sync.schemas.problems import Mode
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.schemas.rules import FIELD_RULES, ID, OBJECT_FIELD_RULES, Rule

#: examples for fields without a check of their own, where the type's example would mislead
_FIELD_EXAMPLES: dict[str, Any] = {
    "firstname": "Ada", "lastname": "Lovelace", "middlename": "King", "prefix": "Dr",
    "title": "Linen shirt", "sku": "LS-01-M", "url": "https://shop.example/linen-shirt.html",
    "image_url": "https://shop.example/media/ls-01.jpg", "timezone": "Europe/London",
    "status": "complete", "city": "London", "postcode": "N1 9GU", "state": "Greater London",
    "ip_address": "203.0.113.7", "channel": "online", "store": "uk", "coupon_code": "SPRING10",
    "payment_method": "card", "shipping_method": "standard", "label": "Blue",
}
_TYPE_EXAMPLES: dict[str, Any] = {
    "string": "text", "integer": 2, "number": 49.5, "boolean": True,
    "list of strings": ["1"], "list of integers or strings": [1],
    "key/values": {"key": "value"},
}


class FieldDoc(msgspec.Struct, frozen=True):
    """One field as ``ometria-sync fields`` shows it; ``path`` as in a mapping
    (``customer.email``, ``lineitems[].sku``)."""

    path: str
    type: str
    required: bool
    rule: str
    #: "error": a broken rule refuses the record; "warning": it is sent and counted
    severity: str | None
    example: Any
    #: the name of the check applied to the text (``timestamp_problem``...), if any
    check: str | None = None


class Need(msgspec.Struct, frozen=True):
    """What a record needs as a whole, as the validator says it (``mode`` "create" only, or
    always)."""

    path: str
    says: str
    modes: list[str]
    severity: str


def field_guide(record_type: str) -> list[FieldDoc]:
    """Every field of ``record_type``, objects before the fields inside them."""
    struct = RECORD_STRUCTS[record_type]
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    docs: list[FieldDoc] = []
    _walk(info, "", docs, top=True)
    on_object = OBJECT_FIELD_RULES.get(struct, {})
    docs = [msgspec.structs.replace(d, rule=on_object[d.path].says,
                                    example=on_object[d.path].example,
                                    severity=_severity(on_object[d.path]))
            if d.path in on_object else d for d in docs]
    return [_declared_type(d, record_type) if d.path == "@type" else d for d in docs]


def _declared_type(doc: FieldDoc, record_type: str) -> FieldDoc:
    """``@type``: checked by ``validate_record`` against the stream's type, not by a rule."""
    return msgspec.structs.replace(
        doc, rule=f'"{record_type}" (added from the stream\'s record_type when missing)',
        severity="error", example=record_type)


def _walk(info: mi.StructType, prefix: str, out: list[FieldDoc], *, top: bool = False) -> None:
    rules = FIELD_RULES.get(info.cls, {})
    for item in info.fields:
        path = prefix + item.encode_name
        kind = _value_type(item.type)
        rule = rules.get(item.encode_name, ID if top and item.encode_name == "id" else None)
        words, example, severity = _rule_words(rule, kind, item.encode_name)
        check = rule.text.__name__ if rule is not None and rule.text is not None else None
        out.append(FieldDoc(path, _type_name(kind), item.required, words, severity, example,
                            check))
        if isinstance(kind, mi.StructType):
            _walk(kind, path + ".", out)
        elif isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StructType):
            _walk(kind.item_type, path + "[].", out)


def _value_type(kind: mi.Type) -> mi.Type:
    """The type without its ``None`` (every optional field may be null)."""
    if isinstance(kind, mi.UnionType):
        parts = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        return parts[0] if len(parts) == 1 else mi.UnionType(tuple(parts))
    return kind


_NAMES: dict[type[mi.Type], str] = {
    mi.StrType: "string", mi.IntType: "integer", mi.FloatType: "number", mi.BoolType: "boolean",
    mi.StructType: "object", mi.DictType: "key/values", mi.AnyType: "any",
}


def _type_name(kind: mi.Type) -> str:
    if isinstance(kind, mi.ListType):
        item = kind.item_type
        if isinstance(item, mi.StructType):
            return "list of objects"
        return "list of " + " or ".join(_plural(t) for t in _parts(item))
    if isinstance(kind, mi.UnionType):
        return " or ".join(_type_name(t) for t in kind.types)
    return _NAMES.get(type(kind), type(kind).__name__)


def _parts(kind: mi.Type) -> tuple[mi.Type, ...]:
    return kind.types if isinstance(kind, mi.UnionType) else (kind,)


def _plural(kind: mi.Type) -> str:
    return _type_name(kind).replace("key/values", "key/value object") + "s"


def _severity(rule: Rule) -> str:
    return "warning" if rule.warn else "error"


def _rule_words(rule: Rule | None, kind: mi.Type, name: str) -> tuple[str, Any, str | None]:
    """The rule in words, an example that passes it, and what breaking it does."""
    example = _FIELD_EXAMPLES.get(name, _TYPE_EXAMPLES.get(_type_name(kind)))
    if rule is None or (rule.text is None and not rule.sign):
        return "", example, None
    if not rule.says:  # a rule without words yet (the tests refuse this): say what it is
        doc = (rule.text.__doc__ or rule.text.__name__) if rule.text else f"sign {rule.sign}"
        return doc.strip().splitlines()[0], example, _severity(rule)
    return rule.says, rule.example, _severity(rule)


_INDEX = re.compile(r"\[\d+\]")


def record_needs(record_type: str) -> list[Need]:
    """What ``record_type`` needs as a whole (one of two fields, what a new record needs), as
    the validator reports it for a skeleton record (see ``_skeleton``) in each mode."""
    skeleton = _skeleton(RECORD_STRUCTS[record_type])
    found: dict[tuple[str, str, str], list[str]] = {}
    modes: tuple[Mode, ...] = ("update", "create")
    for mode in modes:
        verdict = validate_record(record_type, skeleton, mode=mode)
        for severity, problems in (("error", verdict.errors), ("warning", verdict.warnings)):
            for problem in problems:
                key = (_INDEX.sub("[]", problem.path), problem.message, severity)
                found.setdefault(key, []).append(mode)
    return [Need(path, says, modes, severity) for (path, says, severity), modes in found.items()]


def _skeleton(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """An id, and one empty item in each list of objects (a line item has rules of its own),
    unless its items have required fields of their own. Objects are
    left out: an empty ``totals`` would hide what an order without totals needs."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    out: dict[str, Any] = {"id": "1"}
    for item in info.fields:
        kind = _value_type(item.type)
        if (isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StructType)
                and not _has_required(kind.item_type)):
            out[item.encode_name] = [{}]
    return out


def _has_required(info: mi.StructType) -> bool:
    return any(f.required for f in info.fields)
