"""Non-finite numbers and values without a JSON form are refused with their path, everywhere."""

from __future__ import annotations

import ipaddress
import math
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.schemas import RECORD_TYPES, validate_record
from ometria_sync.sources.mapping import python_value

NAN, INF = math.nan, math.inf


def errors(record_type: str, record: dict[str, Any]) -> list[str]:
    return [str(p) for p in validate_record(record_type, record).errors]


def test_nan_and_infinity_are_refused_with_their_path_anywhere_in_the_record() -> None:
    """Known fields, line items, properties (and lists in them), unknown fields."""
    record = {"id": "o1", "grand_total": NAN, "discount": -INF,
              "lineitems": [{"sku": "a", "quantity": 1, "unit_price": 1.0},
                            {"sku": "b", "quantity": 1, "unit_price": INF,
                             "properties": {"sizes": [1.0, NAN]}}],
              "properties": {"score": NAN}, "extra": {"deep": [INF]}}
    assert errors("order", record) == [
        "grand_total: must be a finite number, got NaN",
        "discount: must be a finite number, got -Infinity",
        "lineitems[1].unit_price: must be a finite number, got Infinity",
        "lineitems[1].properties.sizes[1]: must be a finite number, got NaN",
        "properties.score: must be a finite number, got NaN",
        "extra.deep[0]: must be a finite number, got Infinity"]


def test_a_numeric_nan_from_postgresql_is_refused() -> None:
    """asyncpg's Decimal('NaN') becomes a float NaN at the source, then a refusal here."""
    value = python_value(Decimal("NaN"), zone=None)  # type: ignore[arg-type]
    assert errors("product", {"id": "p1", "price": value}) == [
        "price: must be a finite number, got NaN"]


def test_a_non_finite_number_in_a_text_field_is_named_once() -> None:
    assert errors("contact", {"id": "c1", "email": NAN}) == [
        "email: must be a string, got NaN"]


def test_values_without_a_json_form_are_refused_with_a_printable_value() -> None:
    record = {"id": "o1", "r": asyncpg.Range(1, 5),
              "properties": {"bits": asyncpg.BitString("101")},
              "ip": ipaddress.ip_address("10.0.0.1")}
    assert errors("order", record) == [
        "properties.bits: must be a string, number, boolean or a list of them, "
        "got <BitString 101>",
        "r: has no JSON form (type Range; convert it in the source, e.g. cast it to text in "
        "the query), got <Range [1, 5)>",
        "ip: has no JSON form (type IPv4Address; convert it in the source, e.g. cast it to "
        "text in the query), got IPv4Address('10.0.0.1')"]


NUMBERS = st.floats() | st.integers(-(2**53), 2**53)
SCALARS = NUMBERS | st.text(max_size=5) | st.booleans()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
FIELDS = st.sampled_from(["grand_total", "price", "discount", "properties", "lineitems",
                          "quantity", "value", "extra", "totals"])


def _numbers(value: Any, path: str = "") -> dict[str, Any]:
    """Path -> number, for every number in a JSON-like value."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items()
                for k, v in _numbers(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value)
                for k, v in _numbers(item, f"{path}[{i}]").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {path: value}
    return {}


@settings(max_examples=400)
@given(st.sampled_from(RECORD_TYPES), st.dictionaries(FIELDS, VALUES, max_size=5),
       st.lists(st.fixed_dictionaries({"sku": st.just("s"), "unit_price": NUMBERS,
                                        "properties": st.dictionaries(st.text(max_size=3),
                                                                      VALUES, max_size=2)}),
                max_size=2))
def test_no_validated_record_encodes_null_where_the_source_had_a_number(
        record_type: str, fields: dict[str, Any], items: list[dict[str, Any]]) -> None:
    record = {"id": "r1", **fields}
    if items:
        record["lineitems"] = items
    if validate_record(record_type, record).errors:
        return
    sent = msgspec.json.decode(msgspec.json.encode(record))
    assert _numbers(sent) == _numbers(record)
