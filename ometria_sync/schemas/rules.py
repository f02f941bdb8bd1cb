"""The value rules of each record type, as tables on the Structs' fields, checked in one pass.

``FIELD_RULES`` attaches a rule to a field of a Struct (a string format, a code list, a sign);
``OBJECT_RULES`` checks an object as a whole (one of two fields, what a new record needs).
``check_values`` walks a record once, guided by its Struct: it applies the rules, reports the
text ``"null"`` (Ometria stores it as "Null") and collects fields the Struct does not know.

Rules look only at values of the right JSON type: a wrongly typed value has already been
reported by the type check. A rule Ometria documents is an error; a rule we are unsure of (the
reference's unconfirmed points) is a warning, so that a record Ometria would take is never
refused. ``mode = "update"`` (the default) checks only the fields a record carries, because
Ometria merges partial records; ``mode = "create"`` also requires what a new record needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ometria_sync.schemas import records as r
from ometria_sync.schemas.codes import country_problem, currency_problem
from ometria_sync.schemas.formats import (
    date_problem,
    email_problem,
    id_problem,
    phone_problem,
    timestamp_problem,
)
from ometria_sync.schemas.problems import Problem, join, show
from ometria_sync.schemas.shape import container_in, struct_in

Mode = Literal["update", "create"]
Format = Callable[[str], str | None]

MARKETING_OPTIN = ("EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED")
GENDERS = frozenset(("m", "f", "o"))
SMS_COLLECTIONS = frozenset(("optin:sms", "double_optin:sms"))
EVENT_TYPE_MAX = 32  # characters; Ometria truncates longer names
EVENT_STRING_MAX = 512  # characters in a custom event's string property
NULL_TEXTS = frozenset(("null", "NULL", "Null"))
NULL_TEXT_MESSAGE = ('is the text "null", which Ometria would store as "Null": send JSON null '
                     "to delete the field, or leave the key out to keep it")
UNKNOWN_FIELD = "unknown field (sent as it is; strict = true refuses it)"


class Findings:
    """Errors and warnings of one record, appended to by the rules."""

    __slots__ = ("errors", "warnings")

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def require(self, raw: dict[str, Any], keys: tuple[str, ...], path: str, why: str,
                *, warn: bool = False) -> None:
        """At least one of ``keys`` holds a value (not missing, not null)."""
        if all(raw.get(k) is None for k in keys):
            if len(keys) == 1:
                problem = Problem(join(path, keys[0]), f"is required {why}")
            else:
                problem = Problem(path, f"needs one of {', '.join(keys)} {why}")
            (self.warnings if warn else self.errors).append(problem)


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


# --- the walk ----------------------------------------------------------------------------

class _Field:
    """One field of a level: its rule, and where the walk goes below it."""

    __slots__ = ("child", "free", "items", "sign", "text", "warn")

    def __init__(self, rule: Rule | None) -> None:
        self.text = rule.text if rule else None
        self.sign = rule.sign if rule else 0
        self.warn = rule.warn if rule else False
        self.child: Level | None = None  # an object of a known Struct
        self.items: Level | None = None  # a list of objects of a known Struct
        self.free = False  # properties, lists of strings: only checked for "null" texts


class Level:
    """A Struct's fields with their rules, built once per Struct."""

    __slots__ = ("fields", "rule")

    def __init__(self, struct: type[msgspec.Struct]) -> None:
        rules = FIELD_RULES.get(struct, {})
        self.rule = OBJECT_RULES.get(struct)
        self.fields: dict[str, _Field] = {}
        for info in msgspec.structs.fields(struct):
            spec = _Field(rules.get(info.encode_name))
            child = struct_in(info.type)
            items = container_in(info.type, list)
            if child is not None:
                spec.child = Level(child)
            elif items is not None and (item := struct_in(items[0])) is not None:
                spec.items = Level(item)
            elif items is not None or container_in(info.type, dict) is not None:
                spec.free = True
            self.fields[info.encode_name] = spec


def check_values(raw: dict[str, Any], level: Level, path: str, mode: Mode, found: Findings,
                 unknown: list[Problem]) -> None:
    """Apply ``level``'s rules to ``raw`` and the objects below it; unknown fields go to
    ``unknown``. (The hot path of validation: one loop over the fields present.)"""
    fields = level.fields
    for key, value in raw.items():
        spec = fields.get(key)
        if spec is None:
            unknown.append(Problem(join(path, str(key)), UNKNOWN_FIELD))
            if value.__class__ is not str:
                check_json(value, join(path, str(key)), found)
            continue
        kind = value.__class__
        if kind is str:
            if spec.text is not None or value in NULL_TEXTS:
                _text(spec, value, path, key, found)
        elif kind is dict or kind is list:
            _descend(spec, value, join(path, key), mode, found, unknown)
        elif kind is float or kind is int:
            if kind is float and value - value != 0.0:  # NaN or an infinity
                check_json(value, join(path, key), found)
            elif spec.sign:
                _sign(spec.sign, kind, value, join(path, key), found)
        elif kind is not bool and value is not None:  # no JSON form (a range, a bit string)
            check_json(value, join(path, key), found)
    if level.rule is not None:
        level.rule(raw, path, mode, found)


def _text(spec: _Field, value: str, path: str, key: str, found: Findings) -> None:
    if value in NULL_TEXTS:
        found.errors.append(Problem(join(path, key), NULL_TEXT_MESSAGE))
    elif spec.text is not None:
        message = spec.text(value)
        if message is not None:
            problems = found.warnings if spec.warn else found.errors
            problems.append(Problem(join(path, key), message))


def _descend(spec: _Field, value: dict[str, Any] | list[Any], path: str, mode: Mode,
             found: Findings, unknown: list[Problem]) -> None:
    if isinstance(value, dict):
        if spec.child is not None:
            check_values(value, spec.child, path, mode, found, unknown)
        elif spec.free:
            _free_texts(value, path, found)
            check_json(value, path, found)
    elif spec.items is not None:
        for index, item in enumerate(value):
            if item.__class__ is dict:
                check_values(item, spec.items, f"{path}[{index}]", mode, found, unknown)
    elif spec.free:
        _null_texts_in_list(value, path, found)
        check_json(value, path, found)


_JSON_SCALARS = frozenset((int, bool, type(None)))


def check_json(value: Any, path: str, found: Findings) -> None:
    """Every number in ``value`` is finite and every value has a JSON form.

    The encoder writes NaN and the infinities as ``null``, which clears the field in Ometria,
    and raises on values JSON has no form for (a database range, a bit string): either way the
    record is refused here, with the field's path, and the run goes on. (A valid value is
    checked without building a single path: paths are only made for the problems.)"""
    if not _json_clean(value):
        _json_problems(value, path, found)


def _json_clean(value: Any) -> bool:
    """True when ``value`` holds only finite numbers and JSON values (the fast path)."""
    kind = value.__class__
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return kind is str or kind in _JSON_SCALARS or (kind is float and value - value == 0.0)
    for item in items:
        kind = item.__class__
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item - item != 0.0:
                return False
        elif not _json_clean(item):
            return False
    return True


def _json_problems(value: Any, path: str, found: Findings) -> None:
    kind = value.__class__
    if kind is dict:
        for key, item in value.items():
            if item.__class__ is not str:
                _json_problems(item, join(path, str(key)), found)
    elif kind is list:
        for index, item in enumerate(value):
            if item.__class__ is not str:
                _json_problems(item, f"{path}[{index}]", found)
    elif kind is float:
        if value - value != 0.0:
            _add_once(found, Problem(path, f"must be a finite number, got {show(value)}"))
    elif kind not in _JSON_SCALARS and not isinstance(value, (str, int, float, dict, list)):
        _add_once(found, Problem(path, f"has no JSON form (type {type(value).__name__}; "
                                       "convert it in the source, e.g. cast it to text in the "
                                       f"query), got {show(value)}"))


def _add_once(found: Findings, problem: Problem) -> None:
    """Add ``problem`` unless the type check already named its path."""
    if all(p.path != problem.path for p in found.errors):
        found.errors.append(problem)


def _sign(sign: int, kind: type, value: float, path: str, found: Findings) -> None:
    if sign < 0 and value > 0:
        found.errors.append(Problem(path, f"must be <= 0, got {show(value)}"))
    elif sign > 0 and kind is int and value < 0:
        found.errors.append(Problem(path, f"must be >= 0, got {show(value)}"))


def _free_texts(raw: dict[str, Any], path: str, found: Findings) -> None:
    """``"null"`` texts in free key/values (properties) and the lists in them."""
    values = raw.values()
    if "null" in values or "NULL" in values or "Null" in values:
        found.errors.extend(Problem(join(path, str(k)), NULL_TEXT_MESSAGE)
                            for k, v in raw.items() if v.__class__ is str and v in NULL_TEXTS)
    for key, value in raw.items():
        if value.__class__ is list:
            _null_texts_in_list(value, join(path, str(key)), found)


def _null_texts_in_list(items: list[Any], path: str, found: Findings) -> None:
    if "null" in items or "NULL" in items or "Null" in items:
        found.errors.extend(Problem(f"{path}[{i}]", NULL_TEXT_MESSAGE)
                            for i, v in enumerate(items) if v.__class__ is str and v in NULL_TEXTS)
