"""Transaction -> Ometria order: the default mapping and its settings, table-driven with the
exact order expected, and the transactions that are dead-lettered with their path."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from ometria_sync.schemas import validate_record
from ometria_sync.sources.omneo import OmneoTransactionsConfig
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.orders import to_order
from ometria_sync.sources.omneo.profile import Profile, parse_profile
from ometria_sync.sources.omneo.properties import PropertyMapping
from ometria_sync.sources.omneo.transaction import parse_transaction
from tests.sources.omneo import samples

PID = samples.profile_id(1)
LINE = {"quantity": 2, "unit_price": 12.5, "subtotal": 25.0, "total": 25.0, "product_id": "V1",
        "sku": "1012311", "tax": 1.14, "discount": -2.5,
        "properties": {"omneo_name": "Shirt 1", "omneo_department": "Menswear",
                       "omneo_item_external_id": "L1"}}
ORDER = {
    "@type": "order", "id": "omneo-5", "timestamp": "2024-06-15T14:32:00+10:00",
    "grand_total": 25.0, "currency": "AUD", "status": "complete", "is_valid": True,
    "tax": 1.14, "discount": -2.5, "channel": "instore", "store": "CHD",
    "customer": {"id": PID, "email": "ann1@example.com"},
    "properties": {"omneo_external_id": "R5", "omneo_receipt_ref": "RC5", "omneo_type": "sale",
                   "omneo_tags": "vip;sale", "omneo_store_name": "Chadstone"},
    "lineitems": [LINE],
}


def expect(*, without: tuple[str, ...] = (), line: dict[str, Any] | None = None,
           **fields: Any) -> dict[str, Any]:
    order = {**ORDER, **fields}
    if line is not None:
        order["lineitems"] = [{**LINE, **line}]
    return {k: v for k, v in order.items() if k not in without}


def item(**overrides: Any) -> list[dict[str, Any]]:
    return [samples.item(1, **overrides)]


PROFILE = samples.profile(1)
CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any], dict[str, Any]]] = [
    ("documented shape, numbers as strings", {}, PROFILE, {}, ORDER),
    ("transacted_at is local time in the transaction's zone",
     {"timezone": "Europe/London", "transacted_at": "2024-06-15 14:32:00"}, PROFILE, {},
     expect(timestamp="2024-06-15T14:32:00+01:00")),
    ("no zone on the transaction: the source's timezone", {"timezone": None}, PROFILE,
     {"timezone": "Asia/Singapore"}, expect(timestamp="2024-06-15T14:32:00+08:00")),
    ("a transacted_at with its own offset keeps it",
     {"transacted_at": "2024-06-15T04:32:00Z"}, PROFILE, {},
     expect(timestamp="2024-06-15T04:32:00+00:00")),
    ("web sale is online", {"systems": ["WEB", "pos"]}, PROFILE, {}, expect(channel="online")),
    ("unknown system: the default channel", {"systems": []}, PROFILE,
     {"default_channel": "app"}, expect(channel="app")),
    ("unknown system, no default: no channel", {"systems": None}, PROFILE, {},
     expect(without=("channel",))),
    ("location as a bare id", {"location": 7}, PROFILE, {},
     expect(store="7", properties={k: v for k, v in ORDER["properties"].items()
                                   if k != "omneo_store_name"})),
    ("location without a code: its external id",
     {"location": {"id": 7, "external_id": "M7", "name": "Chadstone"}}, PROFILE, {},
     expect(store="M7")),
    ("void transaction is cancelled and invalid", {"is_void": "1"}, PROFILE, {},
     expect(status="cancelled", is_valid=False)),
    ("void lines are left out and not counted",
     {"items": [samples.item(1), samples.item(2, is_void=True, price_tax="9")]}, PROFILE, {},
     ORDER),
    ("no discounts, no tax", {"items": item(discounts=[], price_tax=None)}, PROFILE, {},
     expect(without=("tax", "discount"),
            lineitems=[{k: v for k, v in LINE.items() if k not in ("discount", "tax")}])),
    ("discounts summed in decimal",
     {"items": item(discounts=[{"amount": "0.1"}, {"amount": 0.2}, []])}, PROFILE, {},
     expect(discount=-0.3, line={"discount": -0.3})),
    ("currency from the profile", {"currency": None}, PROFILE | {"currency": "nzd"}, {},
     expect(currency="NZD")),
    ("currency from the default", {"currency": []}, None, {"default_currency": "SGD"},
     expect(currency="SGD", customer={"id": PID})),
    ("guest transaction: no customer", {"profile_id": None}, None, {},
     expect(without=("customer",))),
    ("profile unknown (404): the id alone", {}, None, {}, expect(customer={"id": PID})),
    ("customer id from the profile's external id", {}, PROFILE,
     {"customer_id": "external_id"}, expect(customer={"id": "EXT1",
                                                      "email": "ann1@example.com"})),
    ("order id from the receipt number", {}, PROFILE, {"order_id": "external_id"},
     expect(id="R5")),
    ("another prefix", {}, PROFILE, {"order_id_prefix": "om_"}, expect(id="om_5")),
    ("price_sell per line", {"items": item(price_sell="25.00", quantity=3)}, PROFILE,
     {"price_sell": "line"},
     expect(line={"quantity": 3, "unit_price": 8.3333, "subtotal": 24.9999,
                  "total": 24.9999})),
    ("product id from the variant, sku from the variant",
     {"items": item(variant_external_id=None, sku=None)}, PROFILE, {},
     expect(line={"product_id": "PV1", "sku": "SKU1"})),
    ("product id sources configured", {}, PROFILE, {"product_id": ["product_id", "sku"]},
     expect(line={"product_id": "501"})),
    ("a product named by its sku only",
     {"items": item(variant_external_id=None, product_variant=[])}, PROFILE, {},
     expect(line={"product_id": "1012311"})),
    ("properties renamed and dropped", {}, PROFILE,
     {"properties": PropertyMapping(prefix="", rename={"name": "title"},
                                    drop=["external_id", "receipt_ref", "order_number",
                                          "type", "tags", "store_name", "department",
                                          "item_external_id"])},
     expect(without=("properties",), line={"properties": {"title": "Shirt 1"}})),
    ("no lines at all", {"items": []}, PROFILE, {},
     expect(without=("lineitems", "tax", "discount"))),
]


@pytest.mark.parametrize(("raw", "profile", "settings", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_transaction_to_order(raw: dict[str, Any], profile: dict[str, Any] | None,
                              settings: dict[str, Any], expected: dict[str, Any]) -> None:
    config = OmneoTransactionsConfig(**settings)
    tx = parse_transaction(samples.transaction(5, 1, **raw), zoneinfo.ZoneInfo(config.timezone))
    known: Profile | None = parse_profile(profile, dt.UTC) if profile else None
    order = to_order(tx, known, config)
    assert order == expected
    verdict = validate_record("order", order, mode="create", strict=True)
    assert verdict.errors == [] and verdict.warnings == []


def test_the_embedded_profile_gives_the_email() -> None:
    tx = parse_transaction(samples.transaction(5, 1, profile={"email": "x@example.com"}), dt.UTC)
    assert to_order(tx, tx.profile, OmneoTransactionsConfig())["customer"] == {
        "id": PID, "email": "x@example.com"}


REFUSED = [
    ({"total": "-25.00"}, {}, "total: omneo_return_not_mapped: a negative total (-25.0)"),
    ({"items": [samples.item(1), samples.item(2, quantity=-1)]}, {},
     "items[1].quantity: omneo_return_not_mapped: a negative quantity (-1)"),
    ({"transacted_at": None}, {}, "transacted_at: missing"),
    ({"total": None}, {}, "total: missing"),
    ({"total": "25,00"}, {}, 'total: not a number: "25,00"'),
    ({"currency": None}, {}, "currency: missing, and neither the profile nor"),
    ({"currency": "dollars"}, {}, "currency: not an ISO 4217 currency code: 'dollars'"),
    ({"timezone": "Melbourne"}, {}, 'timezone: not a known time zone: "Melbourne"'),
    ({"transacted_at": "15/06/2024 2:32pm"}, {}, "transacted_at: not a date-time"),
    ({"id": "R-5"}, {}, 'id: not a number: "R-5"'),
    ({"items": item(quantity="1.5")}, {}, 'items[0].quantity: not a whole number: "1.5"'),
    ({"items": item(quantity=None)}, {}, "items[0].quantity: missing"),
    ({"items": item(price_sell=None)}, {}, "items[0].price_sell: missing"),
    ({"items": item(price_sell="12.50", quantity=0)}, {"price_sell": "line"},
     "items[0].quantity: 0, so the unit price of the line is unknown"),
    ({"items": item(sku=None, variant_external_id=None, product_variant=None)}, {},
     "items[0]: no id names the product"),
    ({"items": item(discounts=[{"amount": "ten"}])}, {},
     'items[0].discounts[0].amount: not a number: "ten"'),
    ({"items": {"name": "not a list"}}, {}, "items: expected a list, got an object"),
    ({"external_id": None}, {"order_id": "external_id"},
     'external_id: missing (the source has order_id = "external_id")'),
]


@pytest.mark.parametrize(("raw", "settings", "message"), REFUSED)
def test_transactions_that_cannot_be_orders_say_where_and_why(
        raw: dict[str, Any], settings: dict[str, Any], message: str) -> None:
    with pytest.raises(FieldError) as info:
        tx = parse_transaction(samples.transaction(5, None, **raw), dt.UTC)
        to_order(tx, None, OmneoTransactionsConfig(**settings))
    assert str(info.value).startswith(message)
