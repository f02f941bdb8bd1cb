"""Profile + aggregations -> Ometria contact: the default mapping and its overrides, table-driven
with the exact contact expected, and the messy values that are dead-lettered with their path."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from ometria_sync.schemas import validate_record
from ometria_sync.sources.omneo import OmneoProfilesConfig
from ometria_sync.sources.omneo.contacts import to_contact
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.profile import parse_aggregations, parse_profile
from ometria_sync.sources.omneo.properties import PropertyMapping
from tests.sources.omneo import samples

PID = samples.profile_id(1)
PROFILE_PART = {
    "@type": "contact", "@collection": "omneo", "@merge": True, "id": PID, "customer_id": PID,
    "email": "ann1@example.com", "prefix": "Ms", "firstname": "Ann", "lastname": "Lee1",
    "gender": "f", "date_of_birth": "1990-02-01", "phone_number": "+61412300001",
    "country_id": "AU", "timestamp_acquired": "2021-01-27T00:00:00+00:00",
    "marketing_optin": "EXPLICITLY_OPTEDIN", "timestamp_subscribed": "2024-03-01T10:15:00+00:00",
    "channels": {"sms": {"allow_marketing": False}},
}
LOYALTY = {"omneo_tier": "gold", "omneo_points": 120.0, "omneo_rewards": 10.5}
AGGREGATED = {
    "omneo_spend_12m": 2000.5, "omneo_spend_all": 2500.0, "omneo_atv_12m": 400.1,
    "omneo_atv_all": 312.5, "omneo_shop_count": 8, "omneo_discount_avg": 0.0,
    "omneo_first_spend_at": "2020-12-07T13:04:30+00:00",
    "omneo_last_spend_at": "2024-04-07T13:04:30+00:00", "omneo_frequency": "FH",
    "omneo_recency": "RC", "omneo_join": "J3", "omneo_channel": "CM",
    "omneo_store_join": "Omneo Store", "omneo_store_join_code": "1",
    "omneo_top_location": "Chadstone", "omneo_top_location_code": "2",
    "omneo_likely_country": "Australia", "omneo_likely_country_iso": "AU",
    "omneo_brands": "Nike;Acme",
}
FULL = {**PROFILE_PART, "properties": {**LOYALTY, **AGGREGATED}}


def expect(*, without: tuple[str, ...] = (), props: dict[str, Any] | None = None,
           **fields: Any) -> dict[str, Any]:
    """The full default contact with some fields replaced, some left out."""
    contact = {**FULL, **fields}
    if props is not None:
        contact["properties"] = props
    return {k: v for k, v in contact.items() if k not in without}


CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any], dict[str, Any]]] = [
    ("documented example, numbers as strings", {}, {}, {}, FULL),
    ("no aggregations yet (404)", {}, None, {},
     expect(props=LOYALTY)),
    ("aggregations all null, [] for objects", {},
     {k: None for k in samples.aggregations(1)} | {"store_join": [], "purchased_brands": []},
     {}, expect(props=LOYALTY)),
    ("placeholder names and withheld gender left out",
     {"first_name": "Unknown", "last_name": "UNKNOWN", "gender": "withheld"}, {}, {},
     expect(without=("firstname", "lastname", "gender"))),
    ("placeholder names kept on request", {"first_name": "Unknown"}, {},
     {"drop_unknown_names": False}, expect(firstname="Unknown")),
    ("gender in capitals", {"gender": "MALE"}, {}, {}, expect(gender="m")),
    ("birthday incomplete", {"birth_year": None}, {}, {}, expect(without=("date_of_birth",))),
    ("phone with spaces, e164 field missing",
     {"mobile_phone_e164": None, "mobile_phone": "+61 412 300 001"}, {}, {}, expect()),
    ("national phone number left out", {"mobile_phone_e164": None, "mobile_phone": "0412300001"},
     {}, {}, expect(without=("phone_number",))),
    ("country from the aggregations when the address has none", {"address": []},
     {"likely_country_iso": "nz"}, {},
     expect(country_id="NZ", props={**LOYALTY, **AGGREGATED, "omneo_likely_country_iso": "nz"})),
    ("three-letter address code is not a country id", {"address": {"iso": "AUS"}}, None, {},
     expect(without=("country_id",), props=LOYALTY)),
    ("joined_at missing: created_at", {"joined_at": None}, {}, {},
     expect(timestamp_acquired="2021-01-27T23:38:36+00:00")),
    ("dates without offset in the configured zone", {}, {}, {"timezone": "Australia/Melbourne"},
     expect(timestamp_acquired="2021-01-27T00:00:00+11:00",
            props={**LOYALTY, **AGGREGATED,
                   "omneo_first_spend_at": "2020-12-07T13:04:30+11:00",
                   "omneo_last_spend_at": "2024-04-07T13:04:30+10:00"})),
    ("opted out wins over promo",
     {"attributes": {"comms": {"email_optout": "1", "email_promo": True,
                               "email_consent_updated_at": "2024-04-01 09:00:00"}}}, {}, {},
     expect(without=("timestamp_subscribed", "channels"), marketing_optin="EXPLICITLY_OPTEDOUT",
            timestamp_unsubscribed="2024-04-01T09:00:00+00:00")),
    ("neither: NOT_SPECIFIED", {"attributes": {"comms": {"email_optout": False,
                                                         "email_promo": "false"}}}, {}, {},
     expect(without=("timestamp_subscribed", "channels"), marketing_optin="NOT_SPECIFIED")),
    ("neither, not specified switched off",
     {"attributes": {"comms": {"email_optout": False, "email_promo": False}}}, {},
     {"optin_not_specified": False},
     expect(without=("timestamp_subscribed", "channels", "marketing_optin"))),
    ("no comms in the list answer: no consent sent", {"attributes": []}, {}, {},
     expect(without=("timestamp_subscribed", "channels", "marketing_optin"))),
    ("sms opted in with its time",
     {"attributes": {"comms": {"sms_promo": "yes", "sms_optout": 0,
                               "sms_consent_updated_at": "2024-02-02T02:02:02Z"}}}, {}, {},
     expect(without=("timestamp_subscribed", "marketing_optin"),
            channels={"sms": {"allow_marketing": True,
                              "dt_updated_marketing": "2024-02-02T02:02:02+00:00"}})),
    ("customer id from external_id", {}, None, {"customer_id": "external_id"},
     expect(customer_id="EXT1", props=LOYALTY)),
    ("customer id from an identity", {}, None,
     {"customer_id": "identity", "identity_handle": "Shopify"},
     expect(customer_id="shop-1", props=LOYALTY)),
    ("no such identity: no customer id", {}, None,
     {"customer_id": "identity", "identity_handle": "magento"},
     expect(without=("customer_id",), props=LOYALTY)),
    ("properties renamed, dropped, prefixed", {}, {"purchased_brands": "Nike"},
     {"properties": PropertyMapping(prefix="x_", rename={"spend_12m": "ltv_12m"},
                                    drop=[k.removeprefix("omneo_") for k in AGGREGATED
                                          if k not in ("omneo_spend_12m", "omneo_brands")]
                                    + ["tier", "points"])},
     expect(props={"x_rewards": 10.5, "x_ltv_12m": 2000.5, "x_brands": "Nike"})),
    ("brands joined with another separator", {}, {"purchased_brands": ["A", "B"]},
     {"properties": PropertyMapping(list_separator="|")},
     expect(props={**LOYALTY, **AGGREGATED, "omneo_brands": "A|B"})),
    ("another collection", {}, None, {"collection": "loyalty"},
     expect(**{"@collection": "loyalty"}, props=LOYALTY)),
]


@pytest.mark.parametrize(("raw", "aggs", "settings", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_profile_to_contact(raw: dict[str, Any], aggs: dict[str, Any] | None,
                            settings: dict[str, Any], expected: dict[str, Any]) -> None:
    config = OmneoProfilesConfig(**settings)
    zone = zoneinfo.ZoneInfo(config.timezone)
    profile = parse_profile(samples.profile(1, **raw), zone)
    aggregations = (None if aggs is None
                    else parse_aggregations(samples.aggregations(1) | aggs, zone))
    contact = to_contact(profile, aggregations, config)
    assert contact == expected
    verdict = validate_record("contact", contact, mode="create", strict=True)
    assert verdict.errors == [] and verdict.warnings == []


ERRORS = [
    ({"id": None}, None, "id: missing"),
    ({"email": {"address": "a@b.c"}}, None, "email: expected text, got an object"),
    ({"point_balance": "12,5"}, None, 'point_balance: not a number: "12,5"'),
    ({"birth_month": "13"}, None, "birth_day: not a real date of birth"),
    ({"joined_at": "27/01/2021"}, None, 'joined_at: not a date-time: "27/01/2021"'),
    ({"currency": "A$"}, None, "currency: not an ISO 4217 currency code"),
    ({"attributes": {"comms": {"email_promo": "maybe"}}}, None,
     'attributes.comms.email_promo: not a boolean: "maybe"'),
    ({"identities": [{"handle": "x"}, "shopify:1"]}, None,
     'identities[1]: expected an object, got "shopify:1"'),
    ({}, {"spend_12m": "abc"}, 'aggregations.spend_12m: not a number: "abc"'),
    ({}, {"shop_count": "2.5"}, 'aggregations.shop_count: not a whole number: "2.5"'),
    ({}, {"spend_last_date": "soon"}, 'aggregations.spend_last_date: not a date-time: "soon"'),
    ({}, {"store_join": ["x"]}, "aggregations.store_join: expected an object, got a list"),
]


@pytest.mark.parametrize(("raw", "aggs", "message"), ERRORS)
def test_unreadable_values_name_their_path(raw: dict[str, Any], aggs: dict[str, Any] | None,
                                           message: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_profile(samples.profile(1, **raw), dt.UTC)
        parse_aggregations(samples.aggregations(1) | (aggs or {}), dt.UTC)
    assert str(info.value).startswith(message)


def test_a_store_named_by_text_is_its_name() -> None:
    """Omneo documents store_join as a STRING in one place and an object in another."""
    found = parse_aggregations({"store_join": "Chadstone", "most_transacted_location": 3},
                               dt.UTC)
    assert found is not None
    assert found.store_join is not None and found.store_join.name == "Chadstone"
    assert found.most_transacted_location is not None
    assert found.most_transacted_location.name == "3"
