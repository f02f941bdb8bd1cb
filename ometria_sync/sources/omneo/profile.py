"""Omneo profiles and their aggregations, read into typed Structs (see :mod:`.fields`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from msgspec import Struct

from ometria_sync.schemas import field_path
from ometria_sync.sources.omneo import normalise as n
from ometria_sync.sources.omneo.fields import (
    FieldError,
    Fields,
    Identity,
    Location,
    country,
    currency,
    identities,
    root,
)


class Comms(Struct, frozen=True, gc=False):
    """``attributes.comms``: consent flags and when the customer last decided."""

    email_optout: bool | None = None
    email_promo: bool | None = None
    sms_optout: bool | None = None
    sms_promo: bool | None = None
    email_consent_updated_at: dt.datetime | None = None
    sms_consent_updated_at: dt.datetime | None = None


class Profile(Struct, frozen=True, gc=False):
    """The fields of an Omneo profile that become an Ometria contact."""

    id: str
    email: str | None = None
    external_id: str | None = None
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    mobile_phone_e164: str | None = None
    mobile_phone: str | None = None
    date_of_birth: dt.date | None = None
    currency: str | None = None
    joined_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    profile_type: str | None = None
    tier_handle: str | None = None
    point_balance: float | None = None
    reward_balance: float | None = None
    country: str | None = None
    identities: list[Identity] = []
    comms: Comms | None = None


def _birth_date(f: Fields) -> dt.date | None:
    """From ``birth_year``/``birth_month``/``birth_day``, only when all three are set."""
    year, month, day = f.integer("birth_year"), f.integer("birth_month"), f.integer("birth_day")
    if year is None or month is None or day is None:
        return None
    try:
        return dt.date(year, month, day)
    except (ValueError, OverflowError) as exc:
        raise FieldError(field_path(f.path, "birth_day"),
                         f"not a real date of birth ({exc}): {year}-{month}-{day}") from None


def _comms(f: Fields) -> Comms | None:
    attributes = f.child("attributes")
    comms = attributes.child("comms") if attributes is not None else None
    if comms is None:
        return None
    return Comms(
        email_optout=comms.flag("email_optout"), email_promo=comms.flag("email_promo"),
        sms_optout=comms.flag("sms_optout"), sms_promo=comms.flag("sms_promo"),
        email_consent_updated_at=comms.when("email_consent_updated_at", dt.UTC),
        sms_consent_updated_at=comms.when("sms_consent_updated_at", dt.UTC),
    )


def parse_profile(raw: Any, zone: dt.tzinfo, path: str = "") -> Profile:
    """Read a profile. Raises FieldError (the id missing, a field unreadable)."""
    f = root(raw, path, zone)
    profile_id = f.text("id")
    if profile_id is None:
        raise FieldError(field_path(path, "id"), "missing")
    return Profile(
        id=profile_id, email=f.text("email"), external_id=f.text("external_id"),
        title=f.text("title"), first_name=f.text("first_name"), last_name=f.text("last_name"),
        gender=f.text("gender"), mobile_phone_e164=f.text("mobile_phone_e164"),
        mobile_phone=f.text("mobile_phone"), date_of_birth=_birth_date(f),
        currency=currency(f, "currency"), joined_at=f.when("joined_at"),
        created_at=f.when("created_at"), profile_type=f.text("profile_type"),
        tier_handle=f.text("tier_handle"), point_balance=f.number("point_balance"),
        reward_balance=f.number("reward_balance"), country=country(f),
        identities=identities(f), comms=_comms(f),
    )


# --- aggregations ----------------------------------------------------------------------------

class Aggregations(Struct, frozen=True, gc=False):
    """``GET /v3/profiles/{id}/aggregations``: Omneo's spend and shopping figures (seed 001)."""

    spend_12m: float | None = None
    spend_all: float | None = None
    spend_atv_12m: float | None = None
    spend_atv_all: float | None = None
    discount_avg: float | None = None
    shop_count: int | None = None
    shop_days: float | None = None
    spend_first_date: dt.datetime | None = None
    spend_last_date: dt.datetime | None = None
    at_risk_date: dt.datetime | None = None
    dimension_frequency: str | None = None
    dimension_recency: str | None = None
    dimension_join: str | None = None
    channel: str | None = None
    store_join: Location | None = None
    most_transacted_location: Location | None = None
    likely_country: str | None = None
    likely_country_iso: str | None = None
    purchased_brands: list[str] = []


def parse_aggregations(raw: Any, zone: dt.tzinfo) -> Aggregations | None:
    """Read the aggregations; None when Omneo has none (``null``, ``[]``, ``{}``)."""
    if n.is_absent(raw):
        return None
    f = root(raw, "aggregations", zone)
    return Aggregations(
        spend_12m=f.number("spend_12m"), spend_all=f.number("spend_all"),
        spend_atv_12m=f.number("spend_atv_12m"), spend_atv_all=f.number("spend_atv_all"),
        discount_avg=f.number("discount_avg"), shop_count=f.integer("shop_count"),
        shop_days=f.number("shop_days"), spend_first_date=f.when("spend_first_date"),
        spend_last_date=f.when("spend_last_date"), at_risk_date=f.when("at_risk_date"),
        dimension_frequency=f.text("dimension_frequency"),
        dimension_recency=f.text("dimension_recency"), dimension_join=f.text("dimension_join"),
        channel=f.text("channel"), store_join=f.location("store_join", "name"),
        most_transacted_location=f.location("most_transacted_location", "name"),
        likely_country=f.text("likely_country"),
        likely_country_iso=f.text("likely_country_iso"),
        purchased_brands=f.texts("purchased_brands"),
    )
