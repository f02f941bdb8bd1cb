"""The compiled clean check (``clean.py``) against the walk: one verdict, the same messages.

``validate_record`` answers from the clean check when it says a record has no problem, and
from the walk otherwise; so the check may say "clean" only when the walk finds nothing, and
every verdict must equal the walk's alone, problem for problem."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.schemas import RECORD_TYPES, validate_record
from ometria_sync.schemas.check import walk_record
from ometria_sync.schemas.clean import clean_check
from ometria_sync.schemas.rules import FIELD_RULES, Rule
from tests.schemas.test_properties import (
    CONTACTS,
    EVENTS,
    JSON,
    ORDERS,
    PRODUCTS,
    records_with_known_fields,
)

MODES = st.sampled_from(["update", "create"])
#: values no JSON decoder makes, that database sources hand over
ODD = st.sampled_from([float("nan"), float("inf"), -float("inf"), Decimal("1.5"),
                       datetime(2024, 1, 1, tzinfo=UTC), b"x", (1, 2), {1, 2}, 2**70, -(2**70),
                       "null", "NULL", "Null", "", " ", "a b", True, 0, -1, 1.5, -2.5])
VALUES = JSON | ODD | st.lists(ODD, max_size=3) | st.dictionaries(st.text(max_size=4), ODD,
                                                                   max_size=3)


def _same(record_type: str, record: Any, mode: Any, strict: bool) -> None:
    before = copy.deepcopy(record)
    walked = walk_record(record_type, record, mode=mode, strict=strict)
    if clean_check(record_type, mode)(record):
        assert walked.errors == [] and walked.warnings == [], walked
    assert validate_record(record_type, record, mode=mode, strict=strict) == walked
    assert repr(record) == repr(before)  # never modified (repr: NaN is not equal to itself)


def _paths(record: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a record a value sits at: keys and list indexes from the root."""
    found = [prefix] if prefix else []
    if isinstance(record, dict):
        for key, value in record.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(record, list):
        for index, value in enumerate(record):
            found.extend(_paths(value, (*prefix, index)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid record (and its type) with one value replaced, one key added or one key
    dropped, anywhere."""
    record = copy.deepcopy(draw(st.one_of(CONTACTS, ORDERS, PRODUCTS, EVENTS)))
    record_type = record["@type"]
    paths = _paths(record)
    how = draw(st.sampled_from(["replace", "add", "drop"]))
    if not paths:
        how = "add"
    target: Any = record
    if how == "add":
        holders = [p for p in [(), *paths] if isinstance(_at(record, p), dict)]
        holder = _at(record, draw(st.sampled_from(holders)))
        holder[draw(st.text(max_size=12) | st.sampled_from(list(holder) or ["x"]))] = \
            draw(VALUES)
        return record_type, record
    path = draw(st.sampled_from(paths))
    target = _at(record, path[:-1])
    if how == "drop" and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(VALUES)
    return record_type, record


def _at(record: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        record = record[step]
    return record


@settings(max_examples=1500)
@given(mutated(), MODES, st.booleans())
def test_a_record_with_one_thing_changed_gets_the_walks_verdict(
        case: tuple[str, dict[str, Any]], mode: str, strict: bool) -> None:
    _same(case[0], case[1], mode, strict)


@settings(max_examples=500)
@given(records_with_known_fields(), MODES, st.booleans())
def test_known_fields_with_any_value_get_the_walks_verdict(
        case: tuple[str, Any], mode: str, strict: bool) -> None:
    _same(case[0], case[1], mode, strict)


@settings(max_examples=300)
@given(st.sampled_from(RECORD_TYPES), JSON, MODES)
def test_any_json_value_gets_the_walks_verdict(record_type: str, value: Any,
                                               mode: str) -> None:
    _same(record_type, value, mode, False)


@settings(max_examples=500)
@given(st.one_of(CONTACTS, ORDERS, PRODUCTS, EVENTS))
def test_valid_records_are_told_clean_without_the_walk(record: dict[str, Any]) -> None:
    """The common case takes the fast path: a valid record is clean in update mode."""
    assert clean_check(record["@type"], "update")(record)


@pytest.mark.parametrize(("record_type", "record", "where"), [
    ("contact", {"id": "c1", "email": "a@b.co", "gender": "x"}, "gender"),  # a warning
    ("contact", {"id": "c1", "surname": "Lee"}, "surname"),  # unknown: a warning
    ("contact", {"id": "c1", "firstname": "null"}, "firstname"),
    ("contact", {"id": "c 1"}, "id"),
    ("contact", {"id": "c1", "@type": "order"}, "@type"),
    ("order", {"id": "o1", "lineitems": [{"sku": "s", "quantity": 1, "unit_price": 2.0,
                                          "discount": 1.5}]}, "lineitems[0].discount"),
    ("order", {"id": "o1", "grand_total": float("nan")}, "grand_total"),
    ("order", {"id": "o1", "discount": -float("inf")}, "discount"),  # a rule's sign, not finite
    ("order", {"id": "o1", "lineitems": [{"sku": "s", "quantity": -1, "unit_price": 2}]},
     "lineitems[0].quantity"),
    ("order", {"id": "o1", "totals": {"base": {"currency": "GBP"}}}, "totals.base.grand_total"),
    ("product", {"id": "p1", "properties": {"tags": ["a", "null"]}}, "properties.tags[1]"),
    ("custom_event", {"id": "e1", "event_type": "x", "profile_id": "p",
                      "properties": {"n": Decimal(1)}}, "properties.n"),
])
def test_a_problem_anywhere_is_left_to_the_walk(record_type: str, record: dict[str, Any],
                                                where: str) -> None:
    assert not clean_check(record_type, "update")(record)
    verdict = validate_record(record_type, record)
    assert where in [p.path for p in verdict.errors + verdict.warnings]
    assert verdict == walk_record(record_type, record)


RULES_WITH_A_TEST_IN_C = sorted(
    {(struct.__name__, name): rule for struct, rules in FIELD_RULES.items()
     for name, rule in rules.items() if rule.accepts is not None}.items())


@settings(max_examples=300)
@given(st.sampled_from(RULES_WITH_A_TEST_IN_C),
       st.text(max_size=12) | st.sampled_from(["GB", "GBP", "gb", "EXPLICITLY_OPTEDIN", "f",
                                               "m", "F", " ", "a\u00a0b", "10001", "\u2028"]))
def test_a_rules_test_in_c_accepts_only_what_its_text_check_accepts(
        case: tuple[tuple[str, str], Rule], value: str) -> None:
    rule = case[1]
    assert rule.accepts is not None and rule.text is not None
    if rule.accepts(value):
        assert rule.text(value) is None
    assert rule.accepts(rule.example)  # and it takes the common case
