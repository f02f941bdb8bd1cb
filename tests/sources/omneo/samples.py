"""Raw Omneo objects shaped like Omneo's documents (the API reference and seed 001), to build
test data from: ``profile(3, email=None)`` is profile number 3 with its email null."""

from __future__ import annotations

import datetime as dt
from typing import Any

EPOCH = dt.datetime(2024, 5, 1, 8, 0, 0)


def stamp(seconds: float, base: dt.datetime = EPOCH) -> str:
    """Omneo's date-time form, ``seconds`` after 2024-05-01 08:00:00 (no offset: UTC)."""
    return (base + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def profile_id(n: int) -> str:
    return f"9f1c2d3e-0000-4000-8000-{n:012d}"


def location(n: int, name: str = "Omneo Store") -> dict[str, Any]:
    return {"id": n, "type": None, "name": name, "description": None, "phone": "1131131",
            "email": None, "timezone": None, "external_id": f"M{n}", "external_code": f"{n}",
            "is_published": True, "is_permanently_closed": False, "address": None,
            "normal_hours": [], "special_hours": [], "tags": [], "custom_fields": [],
            "created_at": "2020-05-18 08:52:49", "updated_at": "2020-08-25 08:59:51"}


def profile(n: int, updated: float | None = None, **overrides: Any) -> dict[str, Any]:
    """Profile ``n``, updated ``updated`` seconds after the epoch (default ``n``)."""
    raw: dict[str, Any] = {
        "id": profile_id(n), "external_id": f"EXT{n}", "title": "Ms", "first_name": "Ann",
        "last_name": f"Lee{n}", "full_name": f"Ann Lee{n}", "email": f"ann{n}@example.com",
        "gender": "Female", "mobile_phone": f"+6141230{n:04d}",
        "mobile_phone_e164": f"+6141230{n:04d}", "birth_day": "1", "birth_month": "2",
        "birth_year": "1990", "birth_date": "1990-02-01", "currency": "AUD",
        "joined_at": "2021-01-27 00:00:00", "profile_type": "active", "tier_handle": "gold",
        "point_balance": "120", "reward_balance": 10.5,
        "identities": [{"id": n, "profile_id": profile_id(n), "handle": "shopify",
                        "identifier": f"shop-{n}", "is_primary": True, "is_active": True}],
        "attributes": {"comms": {"email_optout": False, "email_promo": True,
                                 "sms_optout": False, "sms_promo": False,
                                 "email_consent_updated_at": "2024-03-01T10:15:00.000000Z",
                                 "sms_consent_updated_at": None}},
        "address": {"address_line_1": "1 Main St", "city": "Melbourne", "iso": "au"},
        "tags": [], "created_at": "2021-01-27 23:38:36",
        "updated_at": stamp(n if updated is None else updated),
    }
    raw.update(overrides)
    return raw


def aggregations(n: int, **overrides: Any) -> dict[str, Any]:
    """Aggregations like seed 001's example, numbers as strings as its schema says."""
    raw: dict[str, Any] = {
        "profile_id": profile_id(n), "shop_days": None, "spend_12m": "2000.50",
        "spend_12m_now": "2000", "spend_all": 2500, "spend_atv_12m": "400.10",
        "spend_atv_all": 312.5, "discount_avg": "0", "spend_first_date": "2020-12-07 13:04:30",
        "spend_last_date": "2024-04-07 13:04:30", "dimension_frequency": "FH",
        "dimension_recency": "RC", "dimension_join": "J3", "channel": "CM", "shop_count": "8",
        "total_referred": "0", "store_join": location(1), "likely_country": "Australia",
        "likely_country_score": "1", "purchased_brands": ["Nike", "Acme"],
        "most_transacted_location": location(2, "Chadstone"), "at_risk_date": None,
        "likely_country_iso": "AU", "latest_shop_currency": {"id": 1, "from": "AUD",
                                                             "to": "AUD", "rate": 1},
    }
    raw.update(overrides)
    return raw


def item(n: int, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": n, "transaction_id": 1, "external_id": f"L{n}", "name": f"Shirt {n}",
        "product_id": 500 + n, "product_variant_id": 900 + n, "sku": 1012310 + n,
        "variant_external_id": f"V{n}", "is_void": False, "quantity": "2",
        "price_current": "15.00", "price_sell": "12.50", "price_original": "15.00",
        "price_tax": "1.14", "discounts": [{"amount": "2.50", "reason_desc": "promo"}],
        "department": "Menswear", "product_variant": {"id": 900 + n, "sku": f"SKU{n}",
                                                      "external_id": f"PV{n}"},
    }
    raw.update(overrides)
    return raw


def transaction(n: int, profile_n: int | None = None, updated: float | None = None,
                **overrides: Any) -> dict[str, Any]:
    """Transaction ``n`` of profile ``profile_n`` (None: a guest)."""
    raw: dict[str, Any] = {
        "id": n, "external_id": f"R{n}", "profile_id": None if profile_n is None
        else profile_id(profile_n), "location": {"id": 7, "name": "Chadstone",
                                                 "external_id": "M7", "external_code": "CHD"},
        "total": "25.00", "total_original": None, "currency": "aud",
        "transacted_at": "2024-06-15 14:32:00", "timezone": "Australia/Melbourne",
        "is_void": False, "systems": ["pos"], "tags": ["vip", "sale"], "type": "sale",
        "receipt_ref": f"RC{n}", "order_number": None, "items": [item(1)],
        "created_at": "2024-06-15 04:32:10", "updated_at": stamp(n if updated is None else updated),
    }
    raw.update(overrides)
    return raw
