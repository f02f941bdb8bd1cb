"""An Omneo transaction as an Ometria order (reference section 8.2).

Money is added up in decimal, so that ``0.1 x 3`` is ``0.3``. What cannot be expressed raises
:class:`~ometria_sync.sources.omneo.fields.FieldError` with the Omneo path, and the transaction
is dead-lettered whole (a partial order would misstate revenue):

* a return (``total < 0`` or a line with ``quantity < 0``): ``omneo_return_not_mapped``,
  because Ometria wants refunds on the original order and the link to it is unconfirmed;
* no timestamp, no total, no currency (after the profile's and ``default_currency``);
* a line item without a quantity, a price, or any id to name its product.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ometria_sync.sources.omneo.contacts import customer_id
from ometria_sync.sources.omneo.fields import FieldError
from ometria_sync.sources.omneo.normalise import iso
from ometria_sync.sources.omneo.profile import Profile
from ometria_sync.sources.omneo.properties import (
    LINE_ITEM_PROPERTIES,
    ORDER_PROPERTIES,
    table,
)
from ometria_sync.sources.omneo.settings import OmneoTransactionsSettings
from ometria_sync.sources.omneo.transaction import Item, Transaction

RETURN_NOT_MAPPED = "omneo_return_not_mapped"


def to_order(tx: Transaction, profile: Profile | None,
             settings: OmneoTransactionsSettings) -> dict[str, Any]:
    """The order to push, or FieldError. ``profile`` is the transaction's profile as far as it
    is known (embedded or looked up)."""
    _refuse_returns(tx)
    if tx.transacted_at is None:
        raise FieldError("transacted_at", "missing")
    if tx.total is None:
        raise FieldError("total", "missing")
    live = [(index, item) for index, item in enumerate(tx.items) if not item.is_void]
    order: dict[str, Any] = {
        "@type": "order", "id": order_id(tx, settings), "timestamp": iso(tx.transacted_at),
        "grand_total": tx.total, "currency": _currency(tx, profile, settings),
        "status": "cancelled" if tx.is_void else "complete", "is_valid": not tx.is_void,
    }
    optional = {
        "tax": _sum(i.price_tax for _, i in live if i.price_tax is not None),
        "discount": _negative(a for _, i in live for a in i.discounts),
        "channel": _channel(tx, settings),
        "store": _store(tx),
        "customer": _customer(tx, profile, settings),
        "properties": settings.properties.apply(table(ORDER_PROPERTIES, tx)) or None,
        "lineitems": [line_item(item, index, settings) for index, item in live] or None,
    }
    order.update((k, v) for k, v in optional.items() if v is not None)
    return order


def order_id(tx: Transaction, settings: OmneoTransactionsSettings) -> str:
    if settings.order_id == "external_id":
        if not tx.external_id:
            raise FieldError("external_id", 'missing (the source has order_id = "external_id")')
        return tx.external_id
    return f"{settings.order_id_prefix}{tx.id}"


def line_item(item: Item, index: int, settings: OmneoTransactionsSettings) -> dict[str, Any]:
    path = f"items[{index}]"
    product_id = next((v for v in (getattr(item, name) for name in settings.product_id) if v),
                      None)
    sku = item.sku or item.product_variant_sku
    if not (product_id or sku):
        raise FieldError(path, "no id names the product (set product_id to the ids Omneo has)")
    if item.quantity is None:
        raise FieldError(f"{path}.quantity", "missing")
    if item.price_sell is None:
        raise FieldError(f"{path}.price_sell", "missing")
    unit = _unit_price(item.price_sell, item.quantity, path, settings)
    line_total = float(Decimal(repr(unit)) * item.quantity)
    line: dict[str, Any] = {"quantity": item.quantity, "unit_price": unit,
                            "subtotal": line_total, "total": line_total}
    optional = {
        "product_id": product_id, "sku": sku, "tax": item.price_tax,
        "discount": _negative(item.discounts),
        "properties": settings.properties.apply(table(LINE_ITEM_PROPERTIES, item)) or None,
    }
    line.update((k, v) for k, v in optional.items() if v is not None)
    return line


def _unit_price(price_sell: float, quantity: int, path: str,
                settings: OmneoTransactionsSettings) -> float:
    if settings.price_sell == "unit":
        return price_sell
    if quantity == 0:
        raise FieldError(f"{path}.quantity", "0, so the unit price of the line is unknown")
    return float(round(Decimal(repr(price_sell)) / quantity, 4))


def _refuse_returns(tx: Transaction) -> None:
    if tx.total is not None and tx.total < 0:
        raise FieldError("total", f"{RETURN_NOT_MAPPED}: a negative total ({tx.total}) is a "
                                  "return, which Ometria records on the original order")
    for index, item in enumerate(tx.items):
        if item.quantity is not None and item.quantity < 0:
            raise FieldError(f"items[{index}].quantity",
                             f"{RETURN_NOT_MAPPED}: a negative quantity ({item.quantity}) is "
                             "a return, which Ometria records on the original order")


def _currency(tx: Transaction, profile: Profile | None,
              settings: OmneoTransactionsSettings) -> str:
    code = tx.currency or (profile.currency if profile else None) or settings.default_currency
    if code is None:
        raise FieldError("currency", "missing, and neither the profile nor the source's "
                                     "default_currency names one")
    return code


def _channel(tx: Transaction, settings: OmneoTransactionsSettings) -> str | None:
    if "web" in tx.systems:
        return "online"
    if "pos" in tx.systems:
        return "instore"
    return settings.default_channel


def _store(tx: Transaction) -> str | None:
    where = tx.location
    if where is None:
        return None
    return where.external_code or where.external_id or where.id


def _customer(tx: Transaction, profile: Profile | None,
              settings: OmneoTransactionsSettings) -> dict[str, str] | None:
    """The profile's customer id and email; None for an anonymous (guest) transaction."""
    if tx.profile_id is None:
        return None
    known = profile or Profile(id=tx.profile_id)
    found = {"id": customer_id(known, settings), "email": known.email}
    customer = {k: v for k, v in found.items() if v}
    return customer or None


def _sum(values: Iterable[float]) -> float | None:
    listed = list(values)
    return float(sum((Decimal(repr(v)) for v in listed), Decimal(0))) if listed else None


def _negative(amounts: Iterable[float]) -> float | None:
    """Discounts as Ometria wants them: one amount, never positive."""
    total = _sum(abs(a) for a in amounts)
    return -total if total else None
