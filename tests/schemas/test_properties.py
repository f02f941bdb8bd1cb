"""Property tests: no JSON value crashes the validator; generated valid records pass unchanged."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.schemas import RECORD_TYPES, validate_record
from ometria_sync.schemas.records import RECORD_STRUCTS
from ometria_sync.schemas.rules import (
    COUNTRIES,
    CURRENCIES,
    email_problem,
    id_problem,
    timestamp_problem,
)

JSON_SCALARS = (st.none() | st.booleans() | st.integers()
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=20) | st.sampled_from(["null", "", " ", "GBP", "2024-01-01"]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def _field_names(record_type: str) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(RECORD_STRUCTS[record_type])]


@st.composite
def records_with_known_fields(draw: st.DrawFn) -> tuple[str, Any]:
    """Objects whose keys are mostly the type's own fields, holding any JSON value."""
    record_type = draw(st.sampled_from(RECORD_TYPES))
    keys = st.sampled_from(_field_names(record_type)) | st.text(max_size=6)
    record = draw(st.dictionaries(keys, JSON, max_size=8))
    if draw(st.booleans()):
        record["id"] = draw(st.text(min_size=1, max_size=6))
    return record_type, record


@settings(max_examples=300)
@given(st.sampled_from(RECORD_TYPES), JSON, st.sampled_from(["update", "create"]),
       st.booleans())
def test_any_json_value_gets_a_verdict(record_type: str, value: Any, mode: str,
                                       strict: bool) -> None:
    """The validator never raises, whatever JSON it is given; each problem is a sentence."""
    verdict = validate_record(record_type, value, mode=mode, strict=strict)  # type: ignore[arg-type]
    assert all(p.message for p in verdict.errors + verdict.warnings)


@settings(max_examples=500)
@given(records_with_known_fields(), st.sampled_from(["update", "create"]))
def test_known_fields_with_any_value_get_a_verdict_and_stay_untouched(
        case: tuple[str, Any], mode: str) -> None:
    """Wrong types anywhere in a record are reported, never raised, and never modify it."""
    record_type, record = case
    before = copy.deepcopy(record)
    verdict = validate_record(record_type, record, mode=mode)  # type: ignore[arg-type]
    assert record == before
    assert all(p.message for p in verdict.errors + verdict.warnings)


# --- generated valid records ------------------------------------------------------------

IDS = st.text(st.characters(codec="ascii", exclude_categories=("Cc", "Zs")), min_size=1,
              max_size=12).filter(lambda s: s not in ("null", "NULL", "Null"))
TEXT = st.text(max_size=30).filter(lambda s: s not in ("null", "NULL", "Null"))
MONEY = st.floats(min_value=0, max_value=1e7, allow_nan=False) | st.integers(0, 10**7)
DISCOUNT = st.floats(max_value=0, min_value=-1e6, allow_nan=False) | st.integers(-10**6, 0)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                         timezone(timedelta(hours=-8))])
TIMESTAMPS = st.builds(lambda d, z: d.replace(tzinfo=z).isoformat(),
                       st.datetimes(min_value=datetime(1970, 1, 1),
                                    max_value=datetime(2100, 1, 1)), ZONES)
PROPERTIES = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.none() | st.booleans() | st.integers() | MONEY | TEXT | st.lists(TEXT, max_size=3),
    max_size=4)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


CONTACTS = st.builds(lambda i, rest: {"@type": "contact", "id": i, **rest}, IDS, _optional(
    email=st.emails(), customer_id=IDS, firstname=TEXT, lastname=TEXT,
    marketing_optin=st.sampled_from(["EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT",
                                     "NOT_SPECIFIED"]),
    timestamp_subscribed=TIMESTAMPS, phone_number=st.from_regex(r"\+[1-9][0-9]{6,14}",
                                                                fullmatch=True),
    country_id=st.sampled_from(sorted(COUNTRIES)), properties=PROPERTIES,
    store_ids=st.lists(TEXT, max_size=3), date_of_birth=st.dates().map(str)))
ITEMS = st.builds(lambda p, q, u, rest: {"product_id": p, "quantity": q, "unit_price": u, **rest},
                  IDS, st.integers(0, 100), MONEY, _optional(
                      sku=TEXT, discount=DISCOUNT, subtotal=MONEY, properties=PROPERTIES,
                      variant_options=st.lists(st.fixed_dictionaries(
                          {"type": TEXT, "id": TEXT, "label": TEXT}), max_size=2)))
ADDRESSES = _optional(city=TEXT, postcode=TEXT, country_code=st.sampled_from(sorted(COUNTRIES)))
ORDERS = st.builds(
    lambda i, t, c, g, rest: {"@type": "order", "id": i, "timestamp": t, "currency": c,
                              "grand_total": g, **rest},
    IDS, TIMESTAMPS, st.sampled_from(sorted(CURRENCIES)), MONEY, _optional(
        discount=DISCOUNT, lineitems=st.lists(ITEMS, max_size=4), status=TEXT,
        is_valid=st.booleans(), customer=_optional(id=IDS, email=st.emails()),
        shipping_address=ADDRESSES, properties=PROPERTIES))
PRODUCTS = st.builds(lambda i, rest: {"@type": "product", "id": i, **rest}, IDS, _optional(
    title=TEXT, price=st.floats(min_value=0.01, max_value=1e6), is_active=st.booleans(),
    currency=st.sampled_from(sorted(CURRENCIES)), url=TEXT,
    attributes=st.lists(st.fixed_dictionaries({"type": TEXT, "id": TEXT}), max_size=2)))
EVENTS = st.builds(
    lambda i, e, who, rest: {"@type": "custom_event", "id": i, "event_type": e,
                             "identity_email": who, **rest},
    IDS, st.text(min_size=1, max_size=31).filter(lambda s: s not in ("null", "NULL", "Null")),
    st.emails(),
    _optional(timestamp=TIMESTAMPS, properties=PROPERTIES))


@settings(max_examples=300)
@given(st.one_of(CONTACTS, ORDERS, PRODUCTS, EVENTS))
def test_generated_valid_records_pass_and_round_trip_unchanged(record: dict[str, Any]) -> None:
    """Valid records have no errors and no warnings, and encode/decode to themselves."""
    before = copy.deepcopy(record)
    verdict = validate_record(record["@type"], record)
    assert verdict.errors == [] and verdict.warnings == []
    assert record == before
    assert msgspec.json.decode(msgspec.json.encode(record)) == record


@given(TIMESTAMPS)
def test_timestamps_with_an_offset_pass(value: str) -> None:
    assert timestamp_problem(value) is None


@given(st.datetimes(min_value=datetime(1970, 1, 1)).map(lambda d: d.isoformat()))
def test_timestamps_without_an_offset_fail(value: str) -> None:
    assert timestamp_problem(value) is not None


@given(st.emails())
def test_email_addresses_pass(value: str) -> None:
    assert email_problem(value) is None


@given(st.text(max_size=30).filter(lambda s: "@" not in s))
def test_text_without_an_at_sign_is_not_an_email(value: str) -> None:
    assert email_problem(value) is not None


@given(IDS, IDS, st.sampled_from([" ", "\t", "\n", "\u00a0"]))
def test_ids_with_any_space_fail(left: str, right: str, space: str) -> None:
    assert id_problem(left + space + right) is not None
    assert id_problem(left) is None
