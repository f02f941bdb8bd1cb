"""The normalisers: what each reads unambiguously, what it refuses, and that no JSON value
makes any of them raise anything but Unusable."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.sources.omneo import normalise as n

MELBOURNE = zoneinfo.ZoneInfo("Australia/Melbourne")

JSON_SCALARS = (st.none() | st.booleans() | st.integers()
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
                | st.sampled_from(["null", "", " ", "12.50", "0000-00-00 00:00:00", "[]",
                                   "2024-02-30 10:00:00", "9999-12-31 23:59:59",
                                   "0001-01-01 00:00:00", "2024-01-01T10:00:00+25:00",
                                   "Australia/Melbourne", "Not/AZone", "1e400", "-0"]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6) | st.sampled_from(["0", "1", "10"]),
                                      inner, max_size=4), max_leaves=15)

CONVERTERS = {
    "text": n.text, "number": n.number, "integer": n.integer, "boolean": n.boolean,
    "timestamp": lambda v: n.timestamp(v, MELBOURNE), "zone": n.zone, "obj": n.obj,
    "items": n.items, "texts": n.texts,
}
RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "number": (float,), "integer": (int,), "boolean": (bool,),
    "timestamp": (dt.datetime,), "zone": (zoneinfo.ZoneInfo,), "obj": (dict,),
    "items": (list,), "texts": (list,),
}


@settings(max_examples=400)
@given(st.sampled_from(sorted(CONVERTERS)), JSON)
def test_any_json_value_is_read_or_refused_never_crashes(name: str, value: Any) -> None:
    """Every normaliser returns its type (or None), or raises Unusable with a reason."""
    try:
        result = CONVERTERS[name](value)
    except n.Unusable as exc:
        assert str(exc)
        return
    assert result is None or isinstance(result, RESULT_TYPES[name])
    if isinstance(result, dt.datetime):
        assert result.tzinfo is not None
        n.iso(result)  # always writable for Ometria


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2,
                   min_value=Decimal("-1e12"), max_value=Decimal("1e12")))
def test_money_written_as_text_reads_as_the_same_number(amount: Decimal) -> None:
    """"12.50" -> 12.5: a plain decimal text is read exactly as float() reads it."""
    assert n.number(str(amount)) == float(amount)
    assert n.number(f"  {amount} ") == float(amount)


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)))
def test_omneo_date_times_read_back_as_the_same_wall_time(when: dt.datetime) -> None:
    """Omneo's form, with or without a T and a fraction, is the wall time in the zone."""
    when = when.replace(microsecond=0)
    read = n.timestamp(when.strftime("%Y-%m-%d %H:%M:%S"), MELBOURNE)
    assert read is not None and read.replace(tzinfo=None) == when
    assert read.tzinfo is MELBOURNE
    assert n.timestamp(when.isoformat(), MELBOURNE) == read


@pytest.mark.parametrize(("value", "expected"), [
    ("12.50", 12.5), (" -3 ", -3.0), (7, 7.0), (2.25, 2.25), (".5", 0.5), ("+4.", 4.0),
    (None, None), ("", None), ("null", None), ([], None), ({}, None),
])
def test_numbers(value: Any, expected: float | None) -> None:
    assert n.number(value) == expected


@pytest.mark.parametrize("value", ["1,234.50", "12.50 AUD", "$5", "1e3", "abc", True,
                                   float("nan"), float("inf"), 10**400, [1], {"a": 1}])
def test_ambiguous_numbers_are_refused(value: Any) -> None:
    with pytest.raises(n.Unusable):
        n.number(value)


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3), ("3", 3), ("3.00", 3), (3.0, 3), ("-2", -2), (None, None)])
def test_integers(value: Any, expected: int | None) -> None:
    assert n.integer(value) == expected


@pytest.mark.parametrize("value", ["3.5", 2.5, "three", False])
def test_fractions_are_not_integers(value: Any) -> None:
    with pytest.raises(n.Unusable):
        n.integer(value)


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (0, False), (1, True), ("true", True), ("FALSE", False), ("yes", True),
    ("0", False), (None, None), ("", None)])
def test_booleans(value: Any, expected: bool | None) -> None:
    assert n.boolean(value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, "on", [True]])
def test_ambiguous_booleans_are_refused(value: Any) -> None:
    with pytest.raises(n.Unusable):
        n.boolean(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("2025-06-15 14:32:00", "2025-06-15T14:32:00+10:00"),
    ("2025-01-15 14:32:00", "2025-01-15T14:32:00+11:00"),  # daylight saving time
    ("2025-06-15T14:32:00", "2025-06-15T14:32:00+10:00"),
    ("2025-06-15T04:32:00Z", "2025-06-15T04:32:00+00:00"),
    ("2025-06-15 14:32:00+02:00", "2025-06-15T14:32:00+02:00"),
    ("2024-03-01T10:15:00.000000Z", "2024-03-01T10:15:00+00:00"),
    ("2024-03-01 10:15:00.250", "2024-03-01T10:15:00.250000+11:00"),
    ("2025-06-15", "2025-06-15T00:00:00+10:00"),
    # the repeated hour when daylight saving ends: its first occurrence, always
    ("2025-04-06 02:30:00", "2025-04-06T02:30:00+11:00"),
])
def test_date_times_get_an_offset(value: str, expected: str) -> None:
    read = n.timestamp(value, MELBOURNE)
    assert read is not None and n.iso(read) == expected


@pytest.mark.parametrize("value", [None, "", "0000-00-00 00:00:00", "0000-00-00", []])
def test_absent_dates(value: Any) -> None:
    assert n.timestamp(value, MELBOURNE) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("2024-02-30 10:00:00", "not a real date-time"), ("15/06/2025", "not a date-time"),
    (1718451120, "expected a date-time text"), ("yesterday", "not a date-time"),
    ("2025-W24-1", "not a date-time"), ("9999-12-31 23:59:59-10:00", "out of range"),
])
def test_unreadable_dates_say_why(value: Any, reason: str) -> None:
    with pytest.raises(n.Unusable, match=reason):
        n.timestamp(value, MELBOURNE)


@pytest.mark.parametrize(("value", "expected"), [
    (" Ann ", "Ann"), (1012310, "1012310"), (1012310.0, "1012310"), ("NULL", None),
    ([], None), (None, None)])
def test_texts_and_numeric_ids(value: Any, expected: str | None) -> None:
    assert n.text(value) == expected


@pytest.mark.parametrize("value", [True, 1.5, {"name": "x"}, ["a"]])
def test_non_texts_are_refused(value: Any) -> None:
    with pytest.raises(n.Unusable):
        n.text(value)


def test_php_arrays_with_holes_are_lists_in_key_order() -> None:
    assert n.items({"10": "c", "0": "a", "2": "b"}) == ["a", "b", "c"]
    assert n.items([]) == [] and n.items(None) == [] and n.items({}) == []
    with pytest.raises(n.Unusable, match="expected a list, got an object"):
        n.items({"name": "x"})


def test_an_empty_php_array_where_an_object_is_expected_is_absent() -> None:
    assert n.obj([]) is None and n.obj({"a": 1}) == {"a": 1}
    with pytest.raises(n.Unusable, match="expected an object, got a list"):
        n.obj([1, 2])


def test_text_lists() -> None:
    assert n.texts(["Nike", " ", None, 7]) == ["Nike", "7"]
    assert n.texts("Nike") == ["Nike"] and n.texts("") == []
    with pytest.raises(n.Unusable, match=r"\[1\]: expected text"):
        n.texts(["Nike", {"name": "Acme"}])


def test_zones() -> None:
    assert n.zone("Australia/Melbourne") == MELBOURNE and n.zone(None) is None
    with pytest.raises(n.Unusable, match="not a known time zone"):
        n.zone("Mars/Olympus")
    with pytest.raises(n.Unusable):
        n.zone("../../etc/passwd")
