"""``field_guide`` shows every field of the Structs, and the rule and example it shows for a
field are the ones the validator applies."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from msgspec import UNSET, UnsetType

from ometria_sync.schemas import RECORD_TYPES, field_guide, record_needs, validate_record
from ometria_sync.schemas.check import container_in, struct_in
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.schemas.rules import FIELD_RULES, OBJECT_FIELD_RULES, email_problem


def _struct_paths(struct: type[msgspec.Struct], prefix: str = "") -> set[str]:
    """Every field path of ``struct``, walked with msgspec.structs (not msgspec.inspect, which
    the guide uses)."""
    paths: set[str] = set()
    for info in msgspec.structs.fields(struct):
        path = prefix + info.encode_name
        paths.add(path)
        child = struct_in(info.type)
        items = container_in(info.type, list)
        if child is not None:
            paths |= _struct_paths(child, path + ".")
        elif items is not None and (item := struct_in(items[0])) is not None:
            paths |= _struct_paths(item, path + "[].")
    return paths


def _record_with(path: str, value: Any) -> dict[str, Any]:
    """A record holding ``value`` at ``path`` (``lineitems[].sku`` -> one line item)."""
    record: dict[str, Any] = {"id": "r1"}
    target = record
    parts = path.split(".")
    for part in parts[:-1]:
        if part.endswith("[]"):
            item: dict[str, Any] = {}
            target[part[:-2]] = [item]
            target = item
        else:
            target = target.setdefault(part, {})
    target[parts[-1]] = value
    return record


def _concrete(path: str) -> str:
    return path.replace("[]", "[0]")


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_field_of_every_struct_appears_once(record_type: str) -> None:
    shown = [d.path for d in field_guide(record_type)]
    assert len(shown) == len(set(shown))
    assert set(shown) == _struct_paths(RECORD_STRUCTS[record_type])


def test_every_rule_the_validator_applies_declares_its_words_and_an_example() -> None:
    """The validator's table and ``fields`` read one declaration: each rule says what it
    accepts; one check reads the same wherever it is applied."""
    said: dict[str, set[str]] = {}
    for struct, rules in [*FIELD_RULES.items(), *OBJECT_FIELD_RULES.items()]:
        for name, rule in rules.items():
            assert rule.says and rule.example is not None, (struct.__name__, name)
            if rule.text is not None:
                said.setdefault(rule.text.__name__, set()).add(rule.says)
    assert {check: len(words) for check, words in said.items() if len(words) > 1} == {}
    assert {"id_problem", "email_problem", "phone_problem", "country_problem"} <= set(said)


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_every_example_passes_the_validator_at_its_field(record_type: str) -> None:
    """The example shown for a field, put in a record at that field, draws no error and no
    warning there."""
    for doc in field_guide(record_type):
        if doc.example is None:
            assert doc.type in ("object", "list of objects"), f"{doc.path} has no example"
            continue
        where = _concrete(doc.path)
        verdict = validate_record(record_type, _record_with(doc.path, doc.example))
        found = [str(p) for p in verdict.errors + verdict.warnings if p.path == where]
        assert found == [], (doc.path, doc.example)


_BREAKERS: dict[str, list[Any]] = {
    "string": ["", "a b", "?", "x" * 40, "optin:sms"],
    "number": [5.0, -5.0], "integer": [-1, 1],
}


@pytest.mark.parametrize("record_type", RECORD_TYPES)
def test_a_field_shown_with_a_rule_is_checked_with_that_severity(record_type: str) -> None:
    """Values of a field's own type that break its rule draw a problem there in the validator,
    as an error or a warning exactly as the guide says; a field shown without a rule draws
    none."""
    for doc in field_guide(record_type):
        where = _concrete(doc.path)
        seen = {"error": False, "warning": False}
        for value in _BREAKERS.get(doc.type, []):
            verdict = validate_record(record_type, _record_with(doc.path, value))
            seen["error"] |= any(p.path == where for p in verdict.errors)
            seen["warning"] |= any(p.path == where for p in verdict.warnings)
        if doc.severity is None:
            assert seen == {"error": False, "warning": False}, doc.path
        elif doc.type in _BREAKERS:
            other = "warning" if doc.severity == "error" else "error"
            assert seen[doc.severity] and not seen[other], (doc.path, doc.rule, seen)


def test_the_rule_shown_is_read_from_the_validators_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the rule the validator applies to contact.email, and the guide changes with it."""
    before = {d.path: d for d in field_guide("contact")}
    assert before["email"].rule == "an email address"
    assert before["email"].severity == "error"
    phone = FIELD_RULES[RECORD_STRUCTS["contact"]]["phone_number"]
    monkeypatch.setitem(FIELD_RULES[RECORD_STRUCTS["contact"]], "email",
                        msgspec.structs.replace(phone, warn=True))
    after = {d.path: d for d in field_guide("contact")}
    assert after["email"].rule == before["phone_number"].rule
    assert after["email"].severity == "warning"
    assert after["email"].example == "+447700900123"
    monkeypatch.delitem(FIELD_RULES[RECORD_STRUCTS["contact"]], "email")
    gone = {d.path: d for d in field_guide("contact")}
    assert (gone["email"].rule, gone["email"].severity) == ("", None)
    assert email_problem("ada@example.com") is None


class _Event(msgspec.Struct, omit_defaults=True):
    id: str
    store_id: int | UnsetType | None = UNSET
    tags: list[str] | UnsetType | None = UNSET


class _Order(msgspec.Struct, omit_defaults=True):
    id: str
    customer: _Event | UnsetType | None = UNSET


def test_a_fields_type_and_nesting_come_from_the_struct(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field whose type changes in the Struct shows its new type; nested Structs give dotted
    paths."""
    before = {d.path: d.type for d in field_guide("custom_event")}
    assert before["store_id"] == "string"
    monkeypatch.setitem(RECORD_STRUCTS, "custom_event", _Event)
    assert {d.path: d.type for d in field_guide("custom_event")} == {
        "id": "string", "store_id": "integer", "tags": "list of strings"}
    monkeypatch.setitem(RECORD_STRUCTS, "custom_event", _Order)
    assert [d.path for d in field_guide("custom_event")] == [
        "id", "customer", "customer.id", "customer.store_id", "customer.tags"]


def test_what_a_record_needs_is_what_the_validator_says() -> None:
    needs = {(n.path, n.severity, tuple(n.modes)) for n in record_needs("order")}
    assert ("lineitems[]", "error", ("update", "create")) in needs
    assert ("timestamp", "error", ("create",)) in needs
    contact = [n for n in record_needs("contact") if n.path == ""]
    assert contact and "email, customer_id, phone_number" in contact[0].says
    assert contact[0].modes == ["create"]
