"""The value rules of each record type, as tables on the Structs' fields.

``FIELD_RULES`` attaches a rule to a field of a Struct (a string format, a code list, a sign);
``OBJECT_RULES`` checks an object as a whole (one of two fields, what a new record needs). Both
are applied by :func:`ometria_sync.schemas.walk.check_values` in its one pass over a record.

A rule Ometria documents is an error; a rule we are unsure of (the reference's unconfirmed
points) is a warning, so that a record Ometria would take is never refused. ``mode = "update"``
(the default) checks only the fields a record carries, because Ometria merges partial records;
``mode = "create"`` also requires what a new record needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ometria_sync.schemas import records as r
from ometria_sync.schemas.codes import country_problem, currency_problem
from ometria_sync.schemas.findings import Findings, Mode
from ometria_sync.schemas.formats import (
    date_problem,
    email_problem,
    id_problem,
    phone_problem,
    timestamp_problem,
)
from ometria_sync.schemas.problems import Problem, join, show

Format = Callable[[str], str | None]

MARKETING_OPTIN = ("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED")
GENDERS = frozenset(("m", "f", "o"))
SMS_COLLECTIONS = frozenset(("optin:sms", "double_optin:sms"))
EVENT_TYPE_MAX = 32  # characters; Ometria truncates longer names
EVENT_STRING_MAX = 512  # characters in a custom event's string property


class Rule(msgspec.Struct, frozen=True, gc=False):
    """A field's rule: ``text`` checks a string; ``sign`` -1 means <= 0, +1 means >= 0 for an
    integer; ``warn`` makes a broken rule a warning."""

    text: Format | None = None
    sign: int = 0
    warn: bool = False


# --- string rules ------------------------------------------------------------------------

def _marketing_optin(value: str) -> str | None:
    if value in MARKETING_OPTIN:
        return None
    return f"must be one of {', '.join(MARKETING_OPTIN)}, got {show(value)}"


def _gender(value: str) -> str | None:
    if value in GENDERS:
        return None
    return f"is usually one of m, f, o, got {show(value)} (kept: Ometria's values are unconfirmed)"


def _collection(value: str) -> str | None:
    if value in SMS_COLLECTIONS:
        return (f"{show(value)} is one of Ometria's SMS double opt-in collections: pushing here "
                "sends or records an SMS opt-in")
    return None


def _event_type(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) >= EVENT_TYPE_MAX:
        return (f"must be under {EVENT_TYPE_MAX} characters (Ometria truncates longer "
                f"names), got {len(value)}: {show(value)}")
    return None


ID = Rule(id_problem)
TIMESTAMP = Rule(timestamp_problem)
EMAIL = Rule(email_problem)
CURRENCY = Rule(currency_problem)
DISCOUNT = Rule(sign=-1)
COUNT = Rule(sign=1)

FIELD_RULES: dict[type[msgspec.Struct], dict[str, Rule]] = {
    r.Contact: {
        "customer_id": ID, "email": EMAIL, "phone_number": Rule(phone_problem),
        "marketing_optin": Rule(_marketing_optin), "timestamp_acquired": TIMESTAMP,
        "timestamp_subscribed": TIMESTAMP, "timestamp_unsubscribed": TIMESTAMP,
        "date_of_birth": Rule(date_problem), "gender": Rule(_gender, warn=True),
        "country_id": Rule(country_problem, warn=True), "@collection": Rule(_collection, warn=True),
    },
    r.SmsChannel: {"dt_updated_marketing": TIMESTAMP, "dt_updated_transactional": TIMESTAMP},
    r.Order: {"timestamp": TIMESTAMP, "currency": CURRENCY, "web_id": ID, "discount": DISCOUNT},
    r.OrderCustomer: {"id": ID, "email": EMAIL},
    r.OrderAddress: {"country_code": Rule(country_problem)},
    r.OrderTotal: {"currency": CURRENCY, "discount": DISCOUNT},
    r.OrderLineItem: {"product_id": ID, "variant_id": ID, "quantity": COUNT,
                      "quantity_refunded": COUNT, "discount": DISCOUNT},
    r.LineItemTotal: {"currency": CURRENCY, "discount": DISCOUNT},
    r.Product: {"parent_id": ID, "currency": CURRENCY, "special_price_dt_from": TIMESTAMP,
                "special_price_dt_to": TIMESTAMP},
    r.ProductListing: {"currency": CURRENCY},
    r.CustomEvent: {"event_type": Rule(_event_type), "timestamp": TIMESTAMP,
                    "identity_email": EMAIL, "identity_account_id": ID, "profile_id": ID},
}


# --- object rules ------------------------------------------------------------------------

def _create(what: str) -> str:
    return f'to create {what} (mode = "create")'


def _contact(raw: dict[str, Any], path: str, mode: Mode, found: Findings) -> None:
    if mode == "create":
        found.require(raw, ("@collection",), path, _create("a contact"))
        found.require(raw, ("email", "customer_id", "phone_number"), path, _create("a contact"))


def _line_item(raw: dict[str, Any], path: str, mode: Mode, found: Findings) -> None:
    found.require(raw, ("product_id", "sku"), path, "(Ometria matches the product by them)")
    lenient = mode != "create"
    found.require(raw, ("quantity",), path, "in a line item", warn=lenient)
    found.require(raw, ("unit_price", "subtotal"), path, "(the line item's price)", warn=lenient)


def _order(raw: dict[str, Any], path: str, mode: Mode, found: Findings) -> None:
    if mode == "create":
        found.require(raw, ("timestamp",), path, _create("an order"))
        if raw.get("totals") is None:
            for key in ("grand_total", "currency"):
                found.require(raw, (key,), path, _create("an order without totals"))


def _product(raw: dict[str, Any], path: str, mode: Mode, found: Findings) -> None:
    parent = raw.get("is_variant") is not True
    price = raw.get("price")
    if parent and price.__class__ in (int, float) and price <= 0:
        found.warnings.append(Problem(join(path, "price"), "should be > 0 on a parent "
                                      f"product for recommendations, got {show(price)}"))
    if mode == "create":
        found.require(raw, ("title",), path, _create("a product"))
        if parent:
            for key in ("url", "price"):
                found.require(raw, (key,), path, "on a parent product for recommendations",
                              warn=True)


def _custom_event(raw: dict[str, Any], path: str, mode: Mode, found: Findings) -> None:
    """Events are never partial updates: each needs its type and a contact to belong to."""
    found.require(raw, ("event_type",), path, "(the event's type, as configured in Ometria)")
    found.require(raw, ("identity_email", "identity_account_id", "profile_id"), path,
                  "(Ometria links every event to a contact)")
    if mode == "create":
        found.require(raw, ("timestamp",), path, _create("an event"))
    props = raw.get("properties")
    if props.__class__ is not dict:
        return
    for key, value in props.items():
        many = value.__class__ is list
        for index, item in enumerate(value if many else (value,)):
            if item.__class__ is str and len(item) > EVENT_STRING_MAX:
                where = join(join(path, "properties"), str(key)) + (f"[{index}]" if many else "")
                found.errors.append(Problem(where, f"must be at most {EVENT_STRING_MAX} "
                                                   f"characters, got {len(item)}"))


ObjectRule = Callable[[dict[str, Any], str, Mode, Findings], None]
OBJECT_RULES: dict[type[msgspec.Struct], ObjectRule] = {
    r.Contact: _contact, r.OrderLineItem: _line_item, r.Order: _order, r.Product: _product,
    r.CustomEvent: _custom_event,
}
