"""Comparison by meaning: what Ometria's normalisation changes is not a difference; a changed
value is, with its path, the value sent and the value stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.verify.compare import (
    Difference,
    ProfileIndex,
    compare,
    compare_contact,
    contact_as_profile,
)

instants = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2100, 1, 1),
                        timezones=st.just(dt.UTC))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m)))
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False, width=32)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(min_size=1, max_size=5), inner, max_size=3), max_leaves=12)


def _written(moment: dt.datetime, zone: dt.tzinfo, style: int) -> str:
    """One instant written in one of the ways ISO 8601 allows (seed 003 uses ``+00``)."""
    local = moment.astimezone(zone)
    text = local.isoformat()
    if style == 1 and text.endswith("+00:00"):
        return text[:-6] + "Z"
    if style == 2 and text.endswith(":00") and text[-6] in "+-":
        return text[:-3]  # +hh
    if style == 3:
        return text[:-3] + text[-2:]  # +hhmm
    return text


@given(instants, offsets, offsets, st.integers(0, 3), st.integers(0, 3))
def test_one_instant_with_any_offsets_compares_equal(
        moment: dt.datetime, a: dt.tzinfo, b: dt.tzinfo, style_a: int, style_b: int) -> None:
    sent = {"timestamp": _written(moment, a, style_a)}
    stored = {"timestamp": _written(moment, b, style_b)}
    assert compare(sent, stored) == []


@given(instants, offsets, st.integers(1, 10**6))
def test_another_instant_is_a_difference(moment: dt.datetime, zone: dt.tzinfo,
                                         seconds: int) -> None:
    sent = moment.astimezone(zone).isoformat()
    stored = (moment + dt.timedelta(seconds=seconds)).isoformat()
    assert compare({"timestamp": sent}, {"timestamp": stored}) == [
        Difference("timestamp", sent, stored)]


@given(st.emails(), st.data())
def test_email_case_is_not_a_difference(email: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(email), max_size=len(email)))
    shown = "".join(c.upper() if flip else c.lower() for c, flip in zip(email, flips, strict=True))
    assert compare({"customer": {"email": email}}, {"customer": {"email": shown}}) == []


def test_case_matters_outside_email_fields() -> None:
    assert compare({"lastname": "Lee"}, {"lastname": "LEE"}) == [
        Difference("lastname", "Lee", "LEE")]


@given(st.integers(-10**9, 10**9))
def test_number_formats_are_not_differences(n: int) -> None:
    assert compare({"grand_total": n}, {"grand_total": float(n)}) == []
    assert compare({"grand_total": n / 4}, {"grand_total": str(n / 4)}) == []
    assert compare({"grand_total": n}, {"grand_total": n + 1}) != []


@given(json_values)
def test_any_value_equals_itself(value: Any) -> None:
    assert compare({"x": value}, {"x": value}) == []


@given(st.dictionaries(st.text(min_size=1, max_size=5), scalars, min_size=1, max_size=5),
       st.dictionaries(st.text(min_size=1, max_size=5), scalars, max_size=3))
def test_fields_ometria_adds_are_not_differences(sent: dict[str, Any],
                                                 derived: dict[str, Any]) -> None:
    assert compare(sent, derived | sent) == []


def test_a_changed_nested_value_names_its_path_sent_and_stored() -> None:
    sent = {"@type": "order", "@merge": True, "id": "o1", "grand_total": 10,
            "lineitems": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 2}],
            "customer": {"id": "u1", "email": "Ann@Example.com"}, "coupon_code": None}
    stored = {"@type": "order", "id": "o1", "grand_total": 10.0, "total_unit_quantity": 3,
              "lineitems": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 5}],
              "customer": {"email": "ann@example.com"}}
    assert compare(sent, stored) == [
        Difference("lineitems[1].quantity", 2, 5),
        Difference("customer.id", "u1", absent=True)]
    assert compare(sent, stored)[1].describe() == 'customer.id: sent "u1", stored absent'
    # a list of another length, a sent null that is still stored, an object stored as text
    assert compare({"a": [1, 2]}, {"a": [1]}) == [Difference("a", [1, 2], [1])]
    assert compare({"a": None}, {"a": 1}) == [Difference("a", None, 1)]
    assert compare({"a": {"b": 1}}, {"a": "x"}) == [Difference("a", {"b": 1}, "x")]


CONTACT = {"@type": "contact", "@collection": "shop", "@merge": True, "id": "c1",
           "customer_id": "u1", "email": "Ann@Example.com", "firstname": "Ann",
           "phone_number": "+447700900123", "marketing_optin": "EXPLICITLY_OPTEDIN",
           "timestamp_acquired": "2024-03-01T12:15:00+02:00", "properties": {"tier": "gold"}}
PROFILE = {"@type": "profile", "id": "2695-c473e2-4aaf58", "customer_id": "u1",
           "email": "ann@example.com", "firstname": "Ann", "marketing_optin": None,
           "dates": {"acquired": "2024-03-01T10:15:00+00:00", "marketing_optin": None},
           "identities": [{"id": "ann@example.com", "type": "email"},
                          {"id": "ann.lee@work.example", "type": "email"}],
           "properties": {"tier": "gold", "other_listing": 1}, "stats": {"orders": 2}}


def test_a_contact_is_compared_with_what_its_profile_shows() -> None:
    assert contact_as_profile(CONTACT) == {
        "customer_id": "u1", "firstname": "Ann",
        "dates": {"acquired": "2024-03-01T12:15:00+02:00"}, "properties": {"tier": "gold"}}
    assert compare_contact(CONTACT, PROFILE) == []
    changed = dict(CONTACT, email="someone@else.example", firstname="Annie",
                   properties={"tier": "silver"})
    assert compare_contact(changed, PROFILE) == [
        Difference("profile.email", "someone@else.example", "ann@example.com"),
        Difference("profile.firstname", "Annie", "Ann"),
        Difference("profile.properties.tier", "silver", "gold")]
    # any of the profile's emails will do
    assert compare_contact(dict(CONTACT, email="ANN.LEE@work.example"), PROFILE) == []


def test_profiles_are_found_by_customer_id_then_email() -> None:
    index = ProfileIndex()
    index.add(PROFILE)
    assert index.find({"customer_id": "u1"}) is PROFILE
    assert index.find({"email": "Ann.Lee@Work.Example"}) is PROFILE
    assert index.find({"customer_id": "u2", "email": "nobody@example.com"}) is None
