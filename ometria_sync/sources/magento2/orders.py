"""Orders (``entity = "orders"``, the contract's section 6): one record per ``sales_order``
row, keyed by ``(updated_at, entity_id)`` (Magento saves the order on every invoice,
shipment, credit memo, cancel and edit, so its items, addresses and payment are read with
it), with one line item per top-level ``sales_order_item`` (a configurable's child is its
variant), amounts after refunds in exact decimal arithmetic, and the state as ``is_valid``.

A NULL amount or quantity counts as 0 (Magento leaves ``*_refunded`` NULL until a refund).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import msgspec

from ometria_sync.sources.keyset import Row
from ometria_sync.sources.magento2.database import Select
from ometria_sync.sources.magento2.reader import PartPlan
from ometria_sync.sources.magento2.settings import Magento2Settings
from ometria_sync.sources.magento2.values import key, number, put, stamp, text

VALID_STATES = frozenset(("complete", "processing", "pending_payment"))
#: ``state`` 'closed' is a full refund
REFUNDED = "closed"
ORDER_COLUMNS = ("increment_id", "created_at", "state", "status", "order_currency_code",
                 "grand_total", "subtotal", "shipping_amount", "tax_amount", "discount_amount",
                 "store_id", "coupon_code", "remote_ip", "shipping_method", "customer_id",
                 "customer_is_guest", "customer_email", "customer_firstname",
                 "customer_lastname")
ITEM_COLUMNS = ("item_id", "order_id", "parent_item_id", "product_id", "product_options", "sku",
                "qty_ordered", "qty_refunded", "price", "row_total", "amount_refunded",
                "tax_amount", "tax_refunded", "discount_amount", "discount_refunded",
                "discount_tax_compensation_amount", "discount_tax_compensation_refunded")
_ZERO = Decimal(0)


class Related(msgspec.Struct):
    """An order's rows in other tables."""

    items: list[dict[str, Any]] = msgspec.field(default_factory=list)
    #: address_type -> (city, region, postcode, country_id, firstname, lastname)
    addresses: dict[str, tuple[Any, ...]] = msgspec.field(default_factory=dict)
    payment_method: Any = None


def _d(value: Any) -> Decimal:
    """An amount or quantity for arithmetic: NULL is 0."""
    return _ZERO if value is None else Decimal(value)


class Orders:
    """Gathers and builds orders (an :class:`~.database.Assembler`)."""

    def __init__(self, settings: Magento2Settings) -> None:
        self._settings = settings
        #: attribute_id -> attribute_code, as the pages need them
        self._codes: dict[int, str] = {}

    async def gather(self, select: Select, rows: list[dict[str, Any]]) -> None:
        table = self._settings.table
        ids = [int(r["entity_id"]) for r in rows]
        marks = ", ".join(["%s"] * len(ids))
        related = {i: Related() for i in ids}
        for values in await select(f"SELECT {', '.join(ITEM_COLUMNS)} FROM "
                                   f"{table('sales_order_item')} WHERE order_id IN ({marks}) "
                                   "ORDER BY item_id", ids):
            item = dict(zip(ITEM_COLUMNS, values, strict=True))
            related[int(item["order_id"])].items.append(item)
        for parent_id, kind, *address in await select(
                f"SELECT parent_id, address_type, city, region, postcode, country_id, "
                f"firstname, lastname FROM {table('sales_order_address')} WHERE parent_id IN "
                f"({marks}) AND address_type IN ('billing', 'shipping') ORDER BY entity_id", ids):
            related[int(parent_id)].addresses.setdefault(str(kind), tuple(address))
        for parent_id, method in await select(
                f"SELECT parent_id, method FROM {table('sales_order_payment')} WHERE parent_id "
                f"IN ({marks}) ORDER BY entity_id DESC", ids):
            related[int(parent_id)].payment_method = method  # the lowest entity_id last
        await self._learn_codes(select, related.values())
        for row in rows:
            row["related"] = related[int(row["entity_id"])]

    async def _learn_codes(self, select: Select, related: Any) -> None:
        wanted = {option for r in related for item in r.items
                  for option in _option_ids(item["product_options"])} - set(self._codes)
        if wanted:
            self._codes.update((int(i), str(c)) for i, c in await select(
                f"SELECT attribute_id, attribute_code FROM "
                f"{self._settings.table('eav_attribute')} WHERE attribute_id IN "
                f"({', '.join(map(str, sorted(wanted)))})"))

    def record_id(self, row: Row) -> str | None:
        return text(row["increment_id"])

    def record(self, row: Row) -> dict[str, Any]:
        related: Related = row["related"]
        record: dict[str, Any] = {"@type": "order"}
        put(record, "id", text(row["increment_id"]))
        put(record, "timestamp", stamp(row["created_at"]))
        state = text(row["state"])
        record["is_valid"] = state in VALID_STATES
        put(record, "status", "refunded" if state == REFUNDED else text(row["status"]))
        put(record, "currency", text(row["order_currency_code"]))
        for field, column in (("grand_total", "grand_total"), ("subtotal", "subtotal"),
                              ("shipping", "shipping_amount"), ("tax", "tax_amount")):
            record[field] = number(_d(row[column]))
        record["discount"] = number(-abs(_d(row["discount_amount"])))
        record["channel"] = "online"
        put(record, "store", key(row["store_id"]))
        put(record, "coupon_code", text(row["coupon_code"]))
        put(record, "ip_address", text(row["remote_ip"]))
        put(record, "shipping_method", text(row["shipping_method"]))
        put(record, "payment_method", text(related.payment_method))
        put(record, "customer", _customer(row, related.addresses.get("billing")))
        for field, kind in (("billing_address", "billing"), ("shipping_address", "shipping")):
            put(record, field, _address(related.addresses.get(kind)))
        children: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item in related.items:
            if item["parent_item_id"] is not None:
                children[int(item["parent_item_id"])].append(item)
        record["lineitems"] = [self._line(item, children[int(item["item_id"])])
                               for item in related.items if item["parent_item_id"] is None]
        return record

    def _line(self, item: dict[str, Any], children: list[dict[str, Any]]) -> dict[str, Any]:
        line: dict[str, Any] = {}
        put(line, "product_id", key(item["product_id"]))
        if len(children) == 1:
            put(line, "variant_id", key(children[0]["product_id"]))
        put(line, "variant_options", self._options(item["product_options"]))
        put(line, "sku", text(item["sku"]))
        refunded_qty = _d(item["qty_refunded"])
        line["quantity"] = number(_d(item["qty_ordered"]) - refunded_qty)
        if refunded_qty > 0:
            line["quantity_refunded"] = number(refunded_qty)
            line["refunded"] = number(_d(item["amount_refunded"]))
        subtotal = _d(item["row_total"]) - _d(item["amount_refunded"])
        tax = _d(item["tax_amount"]) - _d(item["tax_refunded"])
        discount = -max(_ZERO, abs(_d(item["discount_amount"]))
                        - abs(_d(item["discount_refunded"])))
        total = (subtotal + tax + discount + _d(item["discount_tax_compensation_amount"])
                 - _d(item["discount_tax_compensation_refunded"]))
        line["unit_price"] = number(_d(item["price"]))
        for field, value in (("subtotal", subtotal), ("tax", tax), ("discount", discount),
                             ("total", total)):
            line[field] = number(value)
        return line

    def _options(self, raw: Any) -> list[dict[str, str]] | None:
        options = []
        for entry in _attributes_info(raw):
            value = entry.get("value")
            if value is None:
                continue
            option_id, option_value = entry.get("option_id"), entry.get("option_value")
            code = self._codes.get(_as_int(option_id) or -1)
            options.append({"type": code if code is not None else str(entry.get("label")),
                            "id": str(option_value if option_value is not None else value),
                            "label": str(value)})
        return options or None


def _attributes_info(raw: Any) -> list[dict[str, Any]]:
    """``product_options``' ``attributes_info`` entries; none when it is not JSON (a
    PHP-serialised value from before Magento 2.2)."""
    if raw is None:
        return []
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return []
    info = decoded.get("attributes_info") if isinstance(decoded, dict) else None
    return [e for e in info if isinstance(e, dict)] if isinstance(info, list) else []


def _option_ids(raw: Any) -> set[int]:
    return {i for e in _attributes_info(raw)
            if (i := _as_int(e.get("option_id"))) is not None}


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _customer(row: Row, billing: tuple[Any, ...] | None) -> dict[str, Any] | None:
    customer: dict[str, Any] = {}
    if row["customer_is_guest"] is not None and int(row["customer_is_guest"]) == 0:
        put(customer, "id", key(row["customer_id"]))
    put(customer, "email", text(row["customer_email"]))
    put(customer, "firstname", text(row["customer_firstname"])
        or (text(billing[4]) if billing else None))
    put(customer, "lastname", text(row["customer_lastname"])
        or (text(billing[5]) if billing else None))
    return customer or None


def _address(address: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if address is None:
        return None
    found: dict[str, Any] = {}
    for field, value in zip(("city", "state", "postcode", "country_code"), address[:4],
                            strict=True):
        put(found, field, text(value))
    return found or None


async def open_orders(select: Select, settings: Magento2Settings) -> Orders:
    return Orders(settings)


def order_parts(settings: Magento2Settings) -> list[PartPlan]:
    """One part by ``(updated_at, entity_id)``; the raw column, so Magento's
    ``SALES_ORDER_UPDATED_AT`` index serves every page."""
    stores = ("" if settings.store_ids is None else
              f"store_id IN ({', '.join(map(str, settings.store_ids))}) AND ")
    query = (f"SELECT updated_at, entity_id, {', '.join(ORDER_COLUMNS)} FROM "
             f"{settings.table('sales_order')} WHERE {stores}{{cursor_after}}")
    return [PartPlan("orders", query, ["updated_at", "entity_id"], open_orders, timed=True)]
