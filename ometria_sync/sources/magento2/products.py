"""Products (``entity = "products"``, the contract's section 4): one whole record per
``catalog_product_entity`` row, every type, from its EAV attributes by store, its stock item,
super links (configurable parents) and websites, with one listing per selected active view
of its websites. The whole catalogue is read every run (stock, links and mass actions change
a product without moving ``updated_at``); change detection sends what differs.

**A(code, S)** is the attribute's value at ``store_id = S`` when that row exists with a
non-NULL value, else its value at ``store_id = 0``, else none; ``A(code)`` is ``A(code, 0)``.
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
from ometria_sync.sources.magento2.stores import Scope, Stores, load_stores
from ometria_sync.sources.magento2.values import cents, key, number, put, stamp, text

CODES = ("name", "status", "price", "special_price", "special_from_date", "special_to_date",
         "url_key", "image", "visibility")
_BACKENDS = frozenset(("varchar", "int", "decimal", "datetime", "text"))
NOT_VISIBLE = 1  # visibility: not visible individually
ENABLED = 1  # status
_MEDIA = "media/catalog/product"


class Facts(msgspec.Struct):
    """What a product's record is built from, beyond its own row."""

    #: attribute code -> store id -> value
    values: dict[str, dict[int, Any]] = msgspec.field(default_factory=dict)
    in_stock: bool | None = None
    parent_id: int | None = None
    websites: set[int] = msgspec.field(default_factory=set)


class Products:
    """Gathers and builds product records (an :class:`~.database.Assembler`)."""

    def __init__(self, settings: Magento2Settings, stores: Stores,
                 attributes: dict[int, tuple[str, str]]) -> None:
        self._settings = settings
        self._stores = stores
        #: attribute_id -> (code, backend type)
        self._attributes = attributes
        self._views = [v for v in stores.views.values()
                       if v.is_active and settings.selected(v.id)]

    async def gather(self, select: Select, rows: list[dict[str, Any]]) -> None:
        table = self._settings.table
        ids = [int(r["entity_id"]) for r in rows]
        marks = ", ".join(["%s"] * len(ids))
        facts: dict[int, Facts] = {i: Facts() for i in ids}
        stores = [0, *(v.id for v in self._views)]
        by_backend: dict[str, list[int]] = defaultdict(list)
        for attribute_id, (_, backend) in self._attributes.items():
            by_backend[backend].append(attribute_id)
        for backend, attribute_ids in sorted(by_backend.items()):
            for attribute_id, store_id, entity_id, value in await select(
                    f"SELECT attribute_id, store_id, entity_id, value FROM "
                    f"{table('catalog_product_entity_' + backend)} WHERE entity_id IN ({marks}) "
                    f"AND attribute_id IN ({', '.join(map(str, attribute_ids))}) "
                    f"AND store_id IN ({', '.join(map(str, stores))})", ids):
                code = self._attributes[int(attribute_id)][0]
                facts[int(entity_id)].values.setdefault(code, {})[int(store_id)] = value
        for product_id, in_stock in await select(
                f"SELECT product_id, is_in_stock FROM {table('cataloginventory_stock_item')} "
                f"WHERE stock_id = 1 AND website_id = 0 AND product_id IN ({marks})", ids):
            facts[int(product_id)].in_stock = int(in_stock or 0) == 1
        for product_id, parent_id in await select(
                f"SELECT product_id, MIN(parent_id) FROM {table('catalog_product_super_link')} "
                f"WHERE product_id IN ({marks}) GROUP BY product_id", ids):
            facts[int(product_id)].parent_id = int(parent_id)
        for product_id, website_id in await select(
                f"SELECT product_id, website_id FROM {table('catalog_product_website')} "
                f"WHERE product_id IN ({marks})", ids):
            facts[int(product_id)].websites.add(int(website_id))
        for row in rows:
            row["facts"] = facts[int(row["entity_id"])]

    def record_id(self, row: Row) -> str | None:
        return key(row["entity_id"])

    def record(self, row: Row) -> dict[str, Any]:
        facts: Facts = row["facts"]

        def a(code: str, store: int = 0) -> Any:
            by_store = facts.values.get(code, {})
            found = by_store.get(store)
            return by_store.get(0) if found is None else found

        default = self._stores.default
        record: dict[str, Any] = {"@type": "product", "id": key(row["entity_id"])}
        put(record, "title", text(a("name")))
        put(record, "sku", text(row["sku"]))
        put(record, "price", number(a("price")))
        put(record, "currency", default.base_currency)
        record["special_price"] = number(a("special_price"))
        record["special_price_dt_from"] = stamp(a("special_from_date"))
        record["special_price_dt_to"] = stamp(a("special_to_date"))
        visibility = a("visibility")
        put(record, "url", _url(default, a("url_key"), visibility))
        if default.base_url is not None:
            record["image_url"] = _image(default, a("image"))
        record["is_active"] = _enabled(a("status"))
        put(record, "is_in_stock", facts.in_stock)
        variant = _int(visibility) == NOT_VISIBLE and facts.parent_id is not None
        record["is_variant"] = variant
        record["parent_id"] = key(facts.parent_id) if variant else None
        views = [v for v in self._views if v.website_id in facts.websites]
        record["stores"] = [str(v.id) for v in views]
        record["listings"] = [self._listing(v.id, a) for v in views]
        return record

    def _listing(self, store: int, a: Any) -> dict[str, Any]:
        scope = self._stores.scope(store)
        listing: dict[str, Any] = {"store": str(store)}
        put(listing, "title", text(a("name", store)))
        put(listing, "url", _url(scope, a("url_key", store), a("visibility", store)))
        if scope.base_url is not None:
            put(listing, "image_url", _image(scope, a("image", store)))
        listing["is_active"] = _enabled(a("status", store))
        if scope.rate is not None:
            put(listing, "currency", scope.display_currency)
            for field, code in (("price", "price"), ("special_price", "special_price")):
                value = a(code, store)
                if value is not None:
                    listing[field] = number(cents(Decimal(value) * scope.rate))
        return listing


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _enabled(status: Any) -> bool:
    return _int(status) == ENABLED


def _url(scope: Scope, url_key: Any, visibility: Any) -> str | None:
    path = text(url_key)
    if scope.base_url is None or path is None or _int(visibility) == NOT_VISIBLE:
        return None
    return f"{scope.base_url}{path}{scope.suffix}"


def _image(scope: Scope, image: Any) -> str | None:
    path = text(image)
    if path is None or path == "no_selection":
        return None
    return f"{scope.base_url}{_MEDIA}{'' if path.startswith('/') else '/'}{path}"


async def open_products(select: Select, settings: Magento2Settings) -> Products:
    """The stores, configuration and the product attributes' ids, read once per read."""
    table = settings.table
    stores = await load_stores(select, table, configuration=True)
    attributes = {int(i): (str(c), str(b)) for i, c, b in await select(
        f"SELECT a.attribute_id, a.attribute_code, a.backend_type FROM "
        f"{table('eav_attribute')} AS a JOIN {table('eav_entity_type')} AS t "
        "ON t.entity_type_id = a.entity_type_id WHERE t.entity_type_code = 'catalog_product' "
        f"AND a.attribute_code IN ({', '.join(['%s'] * len(CODES))})", list(CODES))
        if b in _BACKENDS}
    return Products(settings, stores, attributes)


def product_parts(settings: Magento2Settings) -> list[PartPlan]:
    """One part, the whole catalogue by ``entity_id`` every run."""
    query = (f"SELECT entity_id, sku FROM {settings.table('catalog_product_entity')} "
             "WHERE {cursor_after}")
    return [PartPlan("products", query, ["entity_id"], open_products, cycle=True)]
