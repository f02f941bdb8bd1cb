"""The records the contract (/work/shared/magento2-preset.md) says a Magento database holds,
computed from the test generator's model by the contract's own rules, written out here again
on purpose: never from the product's code."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.magento2 import (
    CustomerRow,
    OrderItemRow,
    OrderRow,
    People,
    ProductRow,
    Shop,
    SubscriberRow,
)

_NO = object()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _number(value: Any) -> Any:
    """Section 2: the same value as a JSON number (compared by value: 10.5 == 10.5)."""
    return None if value is None else float(Decimal(value))


def _stamp(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    return None  # NULL or the zero date


def _config(shop: Shop, path: str, view: int | None, *, stores: bool = True) -> Any:
    """Section 3: the first row among stores, websites, default (the default scope alone
    for ``view`` None); _NO when none exists."""
    scopes: list[tuple[str, int]] = []
    if view is not None:
        if stores:
            scopes.append(("stores", view))
        scopes.append(("websites", shop.views[view][0]))
    scopes.append(("default", 0))
    for scope, scope_id in scopes:
        if (scope, scope_id, path) in shop.config:
            return shop.config[(scope, scope_id, path)]
    return _NO


def _base_url(shop: Shop, view: int | None) -> str | None:
    url = _config(shop, "web/secure/base_url", view)
    if url is _NO or _text(url) is None:
        return None
    url = str(url).strip()
    return url if url.endswith("/") else url + "/"


def _suffix(shop: Shop, view: int | None) -> str:
    found = _config(shop, "catalog/seo/product_url_suffix", view)
    if found is _NO:
        return ".html"
    return "" if found is None else str(found).strip()


def _base_currency(shop: Shop, view: int | None) -> str | None:
    found = _config(shop, "currency/options/base", view, stores=False)
    return None if found is _NO else _text(found)


def _display_currency(shop: Shop, view: int) -> str | None:
    found = _config(shop, "currency/options/default", view)
    return _base_currency(shop, view) if found is _NO else _text(found)


def _a(product: ProductRow, code: str, store: int = 0) -> Any:
    """A(code, S): the value at S when that row exists with a non-NULL value, else at 0."""
    by_store = product.values.get(code, {})
    if by_store.get(store) is not None:
        return by_store[store]
    return by_store.get(0)


def _url(shop: Shop, view: int | None, product: ProductRow, store: int) -> str | None:
    base, url_key = _base_url(shop, view), _text(_a(product, "url_key", store))
    visibility = _a(product, "visibility", store)
    if base is None or url_key is None or visibility == 1:
        return None
    return base + url_key + _suffix(shop, view)


def _image(shop: Shop, view: int | None, product: ProductRow, store: int) -> Any:
    base, image = _base_url(shop, view), _text(_a(product, "image", store))
    if base is None:
        return _NO
    if image is None or image == "no_selection":
        return None
    return base + "media/catalog/product" + ("" if image.startswith("/") else "/") + image


def _converted(value: Any, rate: Decimal) -> float | None:
    if value is None:
        return None
    return float((Decimal(value) * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _listing(shop: Shop, product: ProductRow, view: int) -> dict[str, Any]:
    listing: dict[str, Any] = {"store": str(view)}
    fields: dict[str, Any] = {"title": _text(_a(product, "name", view)),
              "url": _url(shop, view, product, view)}
    image = _image(shop, view, product, view)
    fields["image_url"] = None if image is _NO else image
    listing.update({k: v for k, v in fields.items() if v is not None})
    listing["is_active"] = _a(product, "status", view) == 1
    display = _display_currency(shop, view)
    base = _base_currency(shop, view)  # the view's website's base currency
    rate: Decimal | None = Decimal(1)
    if base is not None and display is not None and display != base:
        rate = shop.rates.get((base, display))
    if rate is not None:
        fields = {"currency": display,
                  "price": _converted(_a(product, "price", view), rate),
                  "special_price": _converted(_a(product, "special_price", view), rate)}
        listing.update({k: v for k, v in fields.items() if v is not None})
    return listing


def product_record(shop: Shop, product: ProductRow, store_ids: list[int] | None = None
                   ) -> dict[str, Any]:
    """Section 4, field by field."""
    record: dict[str, Any] = {"@type": "product", "id": str(product.entity_id)}
    optional = {"title": _text(_a(product, "name")), "sku": _text(product.sku),
                "price": _number(_a(product, "price")),
                "currency": _base_currency(shop, None),
                "url": _url(shop, None, product, 0)}
    record.update({k: v for k, v in optional.items() if v is not None})
    record["special_price"] = _number(_a(product, "special_price"))
    record["special_price_dt_from"] = _stamp(_a(product, "special_from_date"))
    record["special_price_dt_to"] = _stamp(_a(product, "special_to_date"))
    image = _image(shop, None, product, 0)
    if image is not _NO:
        record["image_url"] = image
    record["is_active"] = _a(product, "status") == 1
    stock = [i for s, w, i in product.stock if s == 1 and w == 0]
    if stock:
        record["is_in_stock"] = stock[0] == 1
    variant = _a(product, "visibility") == 1 and bool(product.parents)
    record["is_variant"] = variant
    record["parent_id"] = str(min(product.parents)) if variant else None
    views = sorted(s for s, (w, active) in shop.views.items()
                   if active and w in product.websites
                   and (store_ids is None or s in store_ids))
    record["stores"] = [str(s) for s in views]
    record["listings"] = [_listing(shop, product, s) for s in views]
    return record


def _day(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def _phone(value: Any) -> str | None:
    number = _text(value)
    if number is None:
        return None
    for noise in " -.()":
        number = number.replace(noise, "")
    if number.startswith("00"):
        number = "+" + number[2:]
    return number if re.fullmatch(r"\+[1-9][0-9]{6,14}", number) else None


def _selected_view(shop: Shop, store_id: int | None, store_ids: list[int] | None) -> bool:
    return (store_id is not None and store_id > 0 and store_id in shop.views
            and (store_ids is None or store_id in store_ids))


def _optin(record: dict[str, Any], row: SubscriberRow | None) -> None:
    """Section 5's status table."""
    if row is None:
        return
    status = row.subscriber_status
    record["marketing_optin"] = {1: "EXPLICITLY_OPTEDIN", 3: "EXPLICITLY_OPTEDOUT"}.get(
        status, "NOT_SPECIFIED")
    when = _stamp(row.change_status_at)
    if status == 1 and when is not None:
        record["timestamp_subscribed"] = when
    if status == 3 and when is not None:
        record["timestamp_unsubscribed"] = when


def customer_record(shop: Shop, people: People, customer: CustomerRow,
                    store_ids: list[int] | None = None,
                    subscribers: dict[int, list[SubscriberRow]] | None = None
                    ) -> dict[str, Any]:
    """Section 5, a customer (``subscribers``: people's subscriber rows by customer, when
    the caller grouped them once)."""
    record: dict[str, Any] = {"@type": "contact", "@merge": True,
                              "id": str(customer.entity_id),
                              "customer_id": str(customer.entity_id)}
    billing = people.addresses.get(customer.default_billing or -1)
    optional = {"email": _text(customer.email), "prefix": _text(customer.prefix),
                "firstname": _text(customer.firstname),
                "middlename": _text(customer.middlename), "lastname": _text(customer.lastname),
                "gender": {1: "m", 2: "f"}.get(customer.gender or 0),
                "date_of_birth": _day(customer.dob),
                "timestamp_acquired": _stamp(customer.created_at),
                "country_id": _text(billing.country_id) if billing else None,
                "phone_number": _phone(billing.telephone) if billing else None,
                "store_ids": ([str(customer.store_id)] if _selected_view(
                    shop, customer.store_id, store_ids) else None)}
    record.update({k: v for k, v in optional.items() if v is not None})
    mine = (subscribers.get(customer.entity_id, []) if subscribers is not None
            else people.subscribers.values())
    rows = [s for s in mine if s.customer_id == customer.entity_id
            and (store_ids is None or s.store_id in store_ids)]
    for status in (1, 3, None):
        matching = [s for s in rows if status is None or s.subscriber_status == status]
        if matching:
            _optin(record, max(matching, key=lambda s: s.subscriber_id))
            break
    return record


def guest_record(shop: Shop, row: SubscriberRow, store_ids: list[int] | None = None
                 ) -> dict[str, Any]:
    """Section 5, a guest subscriber."""
    record: dict[str, Any] = {"@type": "contact", "@merge": True,
                              "id": f"subscriber-{row.subscriber_id}"}
    if _text(row.subscriber_email) is not None:
        record["email"] = _text(row.subscriber_email)
    if _selected_view(shop, row.store_id, store_ids):
        record["store_ids"] = [str(row.store_id)]
    _optin(record, row)
    return record


def contact_records(shop: Shop, people: People, store_ids: list[int] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Every contact the database holds: its customers (of the listed views' websites) and
    its guest subscribers (of the listed views, with an email)."""
    websites = None if store_ids is None else {shop.views[s][0] for s in store_ids}
    subscribers: dict[int, list[SubscriberRow]] = {}
    for row in people.subscribers.values():
        subscribers.setdefault(row.customer_id, []).append(row)
    records = {str(c.entity_id): customer_record(shop, people, c, store_ids, subscribers)
               for c in people.customers.values()
               if websites is None or c.website_id in websites}
    for row in people.subscribers.values():
        guest = row.customer_id not in people.customers
        if (guest and _text(row.subscriber_email) is not None
                and (store_ids is None or row.store_id in store_ids)):
            records[f"subscriber-{row.subscriber_id}"] = guest_record(shop, row, store_ids)
    return records


def _zero(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def _options(item: OrderItemRow, codes: dict[int, str]) -> list[dict[str, str]] | None:
    """Section 6: ``attributes_info`` entries with a value, as {type, id, label}."""
    try:
        decoded = json.loads(item.product_options or "")
    except ValueError:
        return None
    options = []
    for entry in decoded.get("attributes_info", []) if isinstance(decoded, dict) else []:
        if entry.get("value") is None:
            continue
        option_id = entry.get("option_id")
        code = codes.get(int(option_id)) if option_id is not None else None
        options.append({"type": code or str(entry.get("label")),
                        "id": str(entry["option_value"] if entry.get("option_value")
                                  is not None else entry["value"]),
                        "label": str(entry["value"])})
    return options or None


def _line(item: OrderItemRow, children: list[OrderItemRow], codes: dict[int, str]
          ) -> dict[str, Any]:
    refunded = _zero(item.qty_refunded)
    subtotal = item.row_total - _zero(item.amount_refunded)
    tax = _zero(item.tax_amount) - _zero(item.tax_refunded)
    discount = -max(Decimal(0), abs(_zero(item.discount_amount))
                    - abs(_zero(item.discount_refunded)))
    line: dict[str, Any] = {
        "product_id": None if item.product_id is None else str(item.product_id),
        "variant_id": str(children[0].product_id) if len(children) == 1 else None,
        "variant_options": _options(item, codes), "sku": _text(item.sku)}
    line = {k: v for k, v in line.items() if v is not None}
    line["quantity"] = float(_zero(item.qty_ordered) - refunded)
    if refunded > 0:
        line["quantity_refunded"] = float(refunded)
        line["refunded"] = float(_zero(item.amount_refunded))
    line.update({"unit_price": float(item.price), "subtotal": float(subtotal),
                 "tax": float(tax), "discount": float(discount),
                 "total": float(subtotal + tax + discount
                                + _zero(item.discount_tax_compensation_amount)
                                - _zero(item.discount_tax_compensation_refunded))})
    return line


def _order_address(order: OrderRow, kind: str) -> dict[str, Any] | None:
    rows = sorted(a for a in order.addresses if a[1] == kind)
    if not rows:
        return None
    _, _, city, region, postcode, country, _, _ = rows[0]
    address = {k: _text(v) for k, v in (("city", city), ("state", region),
                                         ("postcode", postcode), ("country_code", country))}
    return {k: v for k, v in address.items() if v is not None} or None


def order_record(order: OrderRow, codes: dict[int, str]) -> dict[str, Any]:
    """Section 6, field by field (``codes``: eav_attribute id -> code)."""
    record: dict[str, Any] = {"@type": "order"}
    valid = order.state in ("complete", "processing", "pending_payment")
    status = "refunded" if order.state == "closed" else _text(order.status)
    payments = sorted(order.payments)
    billing = sorted(a for a in order.addresses if a[1] == "billing")
    customer = {"id": (str(order.customer_id) if order.customer_is_guest == 0
                       and order.customer_id is not None else None),
                "email": _text(order.customer_email),
                "firstname": _text(order.customer_firstname)
                or (_text(billing[0][6]) if billing else None),
                "lastname": _text(order.customer_lastname)
                or (_text(billing[0][7]) if billing else None)}
    customer = {k: v for k, v in customer.items() if v is not None}
    optional = {"id": _text(order.increment_id), "timestamp": _stamp(order.created_at),
                "status": status, "currency": _text(order.order_currency_code),
                "store": None if order.store_id is None else str(order.store_id),
                "coupon_code": _text(order.coupon_code), "ip_address": _text(order.remote_ip),
                "shipping_method": _text(order.shipping_method),
                "payment_method": _text(payments[0][1]) if payments else None,
                "customer": customer or None,
                "billing_address": _order_address(order, "billing"),
                "shipping_address": _order_address(order, "shipping")}
    record.update({k: v for k, v in optional.items() if v is not None})
    record.update({"is_valid": valid, "grand_total": float(_zero(order.grand_total)),
                   "subtotal": float(_zero(order.subtotal)),
                   "shipping": float(_zero(order.shipping_amount)),
                   "tax": float(_zero(order.tax_amount)),
                   "discount": float(-abs(_zero(order.discount_amount))),
                   "channel": "online"})
    tops = [i for i in order.items if i.parent_item_id is None]
    record["lineitems"] = [_line(i, [c for c in order.items if c.parent_item_id == i.item_id],
                                 codes) for i in sorted(tops, key=lambda i: i.item_id)]
    return record


def as_stored(record: dict[str, Any]) -> dict[str, Any]:
    """What Ometria (the emulator) keeps of ``record`` as sent: ``@merge`` is an instruction
    it applies, not a field it stores."""
    return {k: v for k, v in record.items() if k != "@merge"}
