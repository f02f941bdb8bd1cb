"""The value rules of each record type, as tables on the Structs' fields, and the string formats
and ISO code lists they use.

``FIELD_RULES`` attaches a rule to a field of a Struct (a string format, a code list, a sign);
``OBJECT_RULES`` checks an object as a whole (one of two fields, what a new record needs). Both
are applied by :func:`ometria_sync.schemas.check.check_values` in its one pass over a record.

A value Ometria documents a format for is refused when it breaks it: ISO 3166-1 alpha-2
countries (``country_id`` as well as addresses' ``country_code``: the reference documents the
country format once, for every country field), ISO 4217 currencies, E.164 phone numbers, the
``marketing_optin`` values. A rule we are unsure of (the reference's unconfirmed points: gender
values, SMS collections) is a warning, so that a record Ometria would take is never refused.
``mode = "update"`` (the default) checks only the fields a record carries, because Ometria
merges partial records; ``mode = "create"`` also requires what a new record needs.

Formats: each ``*_problem`` check returns the reason a value is wrong (to follow ``path: ``),
or None when it is right. Codes: the real ISO code lists Ometria's records use, ISO 4217
currencies and ISO 3166-1 countries, taken from pycountry (which follows the ISO tables) once,
at import, into frozensets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import msgspec
import pycountry

from ometria_sync.schemas import records as r
from ometria_sync.schemas.problems import Findings, Mode, Problem, field_path, show_value

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies)
COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)

#: Codes people write that are not ISO, and the ISO code they mean.
_COUNTRY_SLIPS = {"UK": "GB", "EL": "GR"}


def currency_problem(code: str) -> str | None:
    """Why ``code`` is not an ISO 4217 currency code, or None when it is one."""
    if code in CURRENCIES:
        return None
    hint = f' (did you mean "{code.upper()}"?)' if code.upper() in CURRENCIES else ""
    return f'must be an ISO 4217 currency code such as "GBP", got {show_value(code)}{hint}'


def country_problem(code: str) -> str | None:
    """Why ``code`` is not an ISO 3166-1 alpha-2 country code, or None when it is one."""
    if code in COUNTRIES:
        return None
    upper = code.upper()
    meant = _COUNTRY_SLIPS.get(upper, upper if upper in COUNTRIES else None)
    hint = f' (did you mean "{meant}"?)' if meant else ""
    return f'must be an ISO 3166-1 alpha-2 country code such as "GB", got {show_value(code)}{hint}'


# ISO 8601 date-time with a UTC offset: Z, +hh, +hhmm or +hh:mm (seed documents use "+00").
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)", re.ASCII
)
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?", re.ASCII)
_SPACED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}.*", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# A pragmatic address check: a dot-atom local part, an @, and a dotted domain whose last label
# starts with a letter; labels do not start or end with a hyphen (letters beyond ASCII are
# allowed, for internationalised addresses).
_EMAIL = re.compile(
    r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
    r"@(?:[^\W_][\w-]*(?<!-)\.)+[^\W\d_][\w-]*(?<!-)"
)
_E164 = re.compile(r"\+[1-9]\d{1,14}", re.ASCII)
_SPACE = re.compile(r"\s")
_NO_SPACE = re.compile(r"\S+")  # fullmatch: non-empty, no space (what id_problem accepts)

TIMESTAMP_EXAMPLE = "2024-03-01T10:15:00+00:00"


def timestamp_problem(value: str) -> str | None:
    """ISO 8601 extended date and time with an offset (``Z``, ``+00``, ``+0100`` and ``+01:00``
    all count); a real calendar date and time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if (parsed is not None and parsed.tzinfo is not None
            and value[4:5] == "-" and value[7:8] == "-" and value[10:11] == "T"):
        return None
    if parsed is None and _TIMESTAMP.fullmatch(value) is not None:
        return f"is not a real date-time, got {show_value(value)}"
    if _NAIVE.fullmatch(value) is not None:
        return (f"must be an ISO 8601 date-time with a UTC offset, e.g. "
                f"{TIMESTAMP_EXAMPLE}, got {show_value(value)} (no offset)")
    if parsed is not None and _SPACED.fullmatch(value) is not None:
        return (f"must be an ISO 8601 date-time with a UTC offset, e.g. "
                f"{TIMESTAMP_EXAMPLE}, got {show_value(value)} "
                '(date and time are separated by "T")')
    return (f"must be an ISO 8601 date-time with a UTC offset, e.g. {TIMESTAMP_EXAMPLE}, "
            f"got {show_value(value)}")


def date_problem(value: str) -> str | None:
    """A calendar date written ``YYYY-MM-DD``."""
    if _DATE.fullmatch(value) is None:
        return f"must be a date written YYYY-MM-DD, got {show_value(value)}"
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        return f"is not a real date ({exc}), got {show_value(value)}"
    return None


def email_problem(value: str) -> str | None:
    """A syntactically valid address: local part, ``@``, a domain with a dot."""
    if len(value) > 254 or _EMAIL.fullmatch(value) is None:
        return f"must be an email address, got {show_value(value)}"
    return None


def phone_problem(value: str) -> str | None:
    """E.164: a ``+``, the country code and the number, digits only, at most 15."""
    if _E164.fullmatch(value) is None:
        return f'must be an E.164 phone number such as "+447700900123", got {show_value(value)}'
    return None


def id_problem(value: str) -> str | None:
    """Ometria ids are non-empty strings without spaces."""
    if not value:
        return "must not be empty"
    if _SPACE.search(value) is not None:
        return f"must not contain spaces, got {show_value(value)}"
    return None


Format = Callable[[str], str | None]

MARKETING_OPTIN = ("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED")
GENDERS = frozenset(("m", "f", "o"))
SMS_COLLECTIONS = frozenset(("optin:sms", "double_optin:sms"))
EVENT_TYPE_MAX = 32  # characters; Ometria truncates longer names
EVENT_STRING_MAX = 512  # characters in a custom event's string property


class Rule(msgspec.Struct, frozen=True, gc=False):
    """A field's rule: ``text`` checks a string; ``sign`` -1 means <= 0, +1 means >= 0 for an
    integer; ``warn`` makes a broken rule a warning. ``says`` is what it accepts in words and
    ``example`` a value it accepts: ``ometria-sync fields`` shows them (the tests hold every
    rule to having both, and every example to passing the validator at its field)."""

    text: Format | None = None
    sign: int = 0
    warn: bool = False
    says: str = ""
    example: Any = None
    #: a test in C (a set's ``__contains__``, a pattern's ``fullmatch``) that is true only of
    #: a string ``text`` finds nothing in: the clean check tries it before calling ``text``
    accepts: Callable[[str], object] | None = None


# --- string rules ------------------------------------------------------------------------

def _marketing_optin(value: str) -> str | None:
    if value in MARKETING_OPTIN:
        return None
    return f"must be one of {', '.join(MARKETING_OPTIN)}, got {show_value(value)}"


def _gender(value: str) -> str | None:
    if value in GENDERS:
        return None
    return (f"is usually one of m, f, o, got {show_value(value)} "
            "(kept: Ometria's values are unconfirmed)")


def _collection(value: str) -> str | None:
    if value in SMS_COLLECTIONS:
        return (f"{show_value(value)} is one of Ometria's SMS double opt-in collections: "
                "pushing here sends or records an SMS opt-in")
    return None


def _event_type(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) >= EVENT_TYPE_MAX:
        return (f"must be under {EVENT_TYPE_MAX} characters (Ometria truncates longer "
                f"names), got {len(value)}: {show_value(value)}")
    return None


ID = Rule(id_problem, says="a non-empty string without spaces", example="10001",
          accepts=_NO_SPACE.fullmatch)
TIMESTAMP = Rule(timestamp_problem, example=TIMESTAMP_EXAMPLE,
                 says="ISO 8601 date-time with a UTC offset (Z, +00, +0100, +01:00)")
EMAIL = Rule(email_problem, says="an email address", example="ada@example.com")
CURRENCY = Rule(currency_problem, says="an ISO 4217 currency code", example="GBP",
                accepts=CURRENCIES.__contains__)
COUNTRY = Rule(country_problem, says="an ISO 3166-1 alpha-2 country code (GB, not UK)",
               example="GB", accepts=COUNTRIES.__contains__)
DISCOUNT = Rule(sign=-1, says="<= 0 (a discount is negative)", example=-5.0)
COUNT = Rule(sign=1, says=">= 0", example=2)

FIELD_RULES: dict[type[msgspec.Struct], dict[str, Rule]] = {
    r.Contact: {
        "customer_id": ID, "email": EMAIL,
        "phone_number": Rule(phone_problem, example="+447700900123",
                             says="E.164: +, country code and number, digits only"),
        "marketing_optin": Rule(_marketing_optin, example="EXPLICITLY_OPTEDIN",
                                says="EXPLICITLY_OPTEDIN, EXPLICITLY_OPTEDOUT or NOT_SPECIFIED",
                                accepts=frozenset(MARKETING_OPTIN).__contains__),
        "timestamp_acquired": TIMESTAMP, "timestamp_subscribed": TIMESTAMP,
        "timestamp_unsubscribed": TIMESTAMP,
        "date_of_birth": Rule(date_problem, says="a calendar date written YYYY-MM-DD",
                              example="1980-12-31"),
        "gender": Rule(_gender, warn=True, says="m, f or o", example="f",
                       accepts=GENDERS.__contains__),
        "country_id": COUNTRY,
        "@collection": Rule(_collection, warn=True, example="newsletter",
                            says="any name; optin:sms and double_optin:sms send an SMS opt-in"),
    },
    r.SmsChannel: {"dt_updated_marketing": TIMESTAMP, "dt_updated_transactional": TIMESTAMP},
    r.Order: {"timestamp": TIMESTAMP, "currency": CURRENCY, "web_id": ID, "discount": DISCOUNT},
    r.OrderCustomer: {"id": ID, "email": EMAIL},
    r.OrderAddress: {"country_code": COUNTRY},
    r.OrderTotal: {"currency": CURRENCY, "discount": DISCOUNT},
    r.OrderLineItem: {"product_id": ID, "variant_id": ID, "quantity": COUNT,
                      "quantity_refunded": COUNT, "discount": DISCOUNT},
    r.LineItemTotal: {"currency": CURRENCY, "discount": DISCOUNT},
    r.Product: {"parent_id": ID, "currency": CURRENCY, "special_price_dt_from": TIMESTAMP,
                "special_price_dt_to": TIMESTAMP},
    r.ProductListing: {"currency": CURRENCY},
    r.CustomEvent: {"event_type": Rule(_event_type, says="non-empty, under 32 characters",
                                       example="wishlist_add"),
                    "timestamp": TIMESTAMP,
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
        found.warnings.append(Problem(field_path(path, "price"), "should be > 0 on a parent "
                                      f"product for recommendations, got {show_value(price)}"))
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
                where = (field_path(field_path(path, "properties"), str(key))
                         + (f"[{index}]" if many else ""))
                found.errors.append(Problem(where, f"must be at most {EVENT_STRING_MAX} "
                                                   f"characters, got {len(item)}"))


ObjectRule = Callable[[dict[str, Any], str, Mode, Findings], None]
OBJECT_RULES: dict[type[msgspec.Struct], ObjectRule] = {
    r.Contact: _contact, r.OrderLineItem: _line_item, r.Order: _order, r.Product: _product,
    r.CustomEvent: _custom_event,
}
#: what an object rule checks of one of its fields, in words (it is the object rule that
#: checks it: these rules are shown by ``fields``, never applied on their own)
OBJECT_FIELD_RULES: dict[type[msgspec.Struct], dict[str, Rule]] = {
    r.Product: {"price": Rule(warn=True, says="> 0 on a parent product (for recommendations)",
                              example=49.5)},
}
