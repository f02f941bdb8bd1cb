"""Omneo transactions and their items, read into typed Structs (see :mod:`.fields`).

``transacted_at`` is a local wall-clock time in the transaction's own IANA ``timezone``
(strongly implied by Omneo's documents, not stated): it is read in that zone, or in the
source's ``timezone`` setting when the transaction has none.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from msgspec import Struct

from ometria_sync.sources.omneo import normalise as n
from ometria_sync.sources.omneo.fields import FieldError, Fields, Location, currency, root
from ometria_sync.sources.omneo.profile import Profile, parse_profile


class Item(Struct, frozen=True, gc=False):
    """One line of a transaction. The product is named by several optional ids."""

    quantity: int | None = None
    price_sell: float | None = None
    price_tax: float | None = None
    discounts: list[float] = []
    is_void: bool = False
    name: str | None = None
    department: str | None = None
    external_id: str | None = None
    sku: str | None = None
    variant_external_id: str | None = None
    product_variant_external_id: str | None = None
    product_variant_sku: str | None = None
    product_variant_id: str | None = None
    product_id: str | None = None


class Transaction(Struct, frozen=True, gc=False):
    """A completed purchase (or, unconfirmed, a return) as Omneo keeps it."""

    id: int
    external_id: str | None = None
    profile_id: str | None = None
    profile: Profile | None = None
    location: Location | None = None
    total: float | None = None
    currency: str | None = None
    transacted_at: dt.datetime | None = None
    is_void: bool = False
    systems: list[str] = []
    tags: list[str] = []
    type: str | None = None
    receipt_ref: str | None = None
    order_number: str | None = None
    items: list[Item] = []


def _discounts(f: Fields) -> list[float]:
    amounts = (d.number("amount") for d in f.children("discounts"))
    return [a for a in amounts if a is not None]


def _department(f: Fields) -> str | None:
    """``department`` is a name, or a Department object with one."""
    if isinstance(f.raw.get("department"), dict):
        found = f.child("department")
        return found.text("name") if found is not None else None
    return f.text("department")


def parse_item(f: Fields) -> Item:
    variant = f.child("product_variant")
    return Item(
        quantity=f.integer("quantity"), price_sell=f.number("price_sell"),
        price_tax=f.number("price_tax"), discounts=_discounts(f),
        is_void=bool(f.flag("is_void")), name=f.text("name"), department=_department(f),
        external_id=f.text("external_id"), sku=f.text("sku"),
        variant_external_id=f.text("variant_external_id"),
        product_variant_external_id=variant.text("external_id") if variant else None,
        product_variant_sku=variant.text("sku") if variant else None,
        product_variant_id=f.text("product_variant_id"), product_id=f.text("product_id"),
    )


def _profile(f: Fields, profile_id: str | None) -> Profile | None:
    """The profile embedded in the transaction (``{email}`` at least), when there is one."""
    embedded = f.child("profile")
    if embedded is None:
        return None
    raw = dict(embedded.raw)
    raw.setdefault("id", profile_id)
    if n.is_absent(raw.get("id")):
        return None
    return parse_profile(raw, f.zone, embedded.path)


def _transacted_at(f: Fields) -> dt.datetime | None:
    local = f.get("timezone", n.zone) or f.zone
    return f.when("transacted_at", local)


def parse_transaction(raw: Any, zone: dt.tzinfo) -> Transaction:
    """Read a transaction. Raises FieldError (the id missing, a field unreadable)."""
    f = root(raw, "", zone)
    transaction_id = f.integer("id")
    if transaction_id is None:
        raise FieldError("id", "missing")
    profile_id = f.text("profile_id")
    return Transaction(
        id=transaction_id, external_id=f.text("external_id"), profile_id=profile_id,
        profile=_profile(f, profile_id), location=_location(f),
        total=f.number("total"), currency=currency(f, "currency"),
        transacted_at=_transacted_at(f), is_void=bool(f.flag("is_void")),
        systems=[s.lower() for s in f.texts("systems")], tags=f.texts("tags"),
        type=f.text("type"), receipt_ref=f.text("receipt_ref"),
        order_number=f.text("order_number"), items=[parse_item(i) for i in f.children("items")],
    )


def _location(f: Fields) -> Location | None:
    """``location`` (an object, or just its id), else ``location_id``."""
    found = f.location("location", "id")
    if found is not None:
        return found
    location_id = f.text("location_id")
    return Location(id=location_id) if location_id is not None else None

