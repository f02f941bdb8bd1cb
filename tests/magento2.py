"""A Magento 2.4 database for tests: the subset schema the magento2 preset reads (Magento's
own table and column names and types, from its db_schema.xml files) and a seeded, messy
generator that writes a catalogue and keeps it as a Python model, so a test computes the
records it expects from the contract's rules on the model, not from the product's code.

Usable at any size (the benchmark's 20,000 products): rows go in by ``executemany``.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import msgspec

from tests.mysql import Database

SCHEMA = """
CREATE TABLE {p}store_website (
  website_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code VARCHAR(32) NULL, name VARCHAR(64) NULL,
  sort_order SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  default_group_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  is_default SMALLINT UNSIGNED NULL DEFAULT 0);
CREATE TABLE {p}store_group (
  group_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  website_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, name VARCHAR(255) NOT NULL,
  root_category_id INT UNSIGNED NOT NULL DEFAULT 0,
  default_store_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, code VARCHAR(32) NULL);
CREATE TABLE {p}store (
  store_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code VARCHAR(32) NULL, website_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  group_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, name VARCHAR(255) NOT NULL,
  sort_order SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  is_active SMALLINT UNSIGNED NOT NULL DEFAULT 0);
CREATE TABLE {p}core_config_data (
  config_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  scope VARCHAR(8) NOT NULL DEFAULT 'default', scope_id INT NOT NULL DEFAULT 0,
  path VARCHAR(255) NOT NULL DEFAULT 'general', value TEXT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY CORE_CONFIG_DATA_SCOPE_SCOPE_ID_PATH (scope, scope_id, path));
CREATE TABLE {p}directory_currency_rate (
  currency_from CHAR(3) NOT NULL, currency_to CHAR(3) NOT NULL,
  rate DECIMAL(24,12) NOT NULL DEFAULT 0, PRIMARY KEY (currency_from, currency_to));
CREATE TABLE {p}eav_entity_type (
  entity_type_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  entity_type_code VARCHAR(50) NOT NULL, entity_model VARCHAR(255) NOT NULL,
  entity_table VARCHAR(255) NULL);
CREATE TABLE {p}eav_attribute (
  attribute_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  entity_type_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, attribute_code VARCHAR(255) NOT NULL,
  backend_type VARCHAR(8) NOT NULL DEFAULT 'static', frontend_input VARCHAR(50) NULL,
  frontend_label VARCHAR(255) NULL,
  UNIQUE KEY EAV_ATTRIBUTE_ENTITY_TYPE_ID_ATTRIBUTE_CODE (entity_type_id, attribute_code));
CREATE TABLE {p}catalog_product_entity (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  attribute_set_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  type_id VARCHAR(32) NOT NULL DEFAULT 'simple', sku VARCHAR(64) NULL,
  has_options SMALLINT NOT NULL DEFAULT 0, required_options SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY CATALOG_PRODUCT_ENTITY_SKU (sku));
{eav}
CREATE TABLE {p}cataloginventory_stock_item (
  item_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  product_id INT UNSIGNED NOT NULL DEFAULT 0, stock_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  qty DECIMAL(12,4) NULL, is_in_stock SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  website_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  UNIQUE KEY CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID_STOCK_ID (product_id, stock_id));
CREATE TABLE {p}catalog_product_super_link (
  link_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  product_id INT UNSIGNED NOT NULL DEFAULT 0, parent_id INT UNSIGNED NOT NULL DEFAULT 0,
  UNIQUE KEY CATALOG_PRODUCT_SUPER_LINK_PRODUCT_ID_PARENT_ID (product_id, parent_id));
CREATE TABLE {p}catalog_product_website (
  product_id INT UNSIGNED NOT NULL, website_id SMALLINT UNSIGNED NOT NULL,
  PRIMARY KEY (product_id, website_id));
CREATE TABLE {p}customer_entity (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  website_id SMALLINT UNSIGNED NULL, email VARCHAR(255) NULL,
  group_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, store_id SMALLINT UNSIGNED NULL DEFAULT 0,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  is_active SMALLINT UNSIGNED NOT NULL DEFAULT 1, prefix VARCHAR(40) NULL,
  firstname VARCHAR(255) NULL, middlename VARCHAR(255) NULL, lastname VARCHAR(255) NULL,
  suffix VARCHAR(40) NULL, dob DATE NULL, default_billing INT UNSIGNED NULL,
  default_shipping INT UNSIGNED NULL, gender INT UNSIGNED NULL,
  UNIQUE KEY CUSTOMER_ENTITY_EMAIL_WEBSITE_ID (email, website_id));
CREATE TABLE {p}customer_address_entity (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id INT UNSIGNED NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  is_active SMALLINT UNSIGNED NOT NULL DEFAULT 1, city VARCHAR(255) NOT NULL,
  company VARCHAR(255) NULL, country_id VARCHAR(255) NOT NULL, firstname VARCHAR(255) NOT NULL,
  lastname VARCHAR(255) NOT NULL, postcode VARCHAR(255) NULL, region VARCHAR(255) NULL,
  street TEXT NOT NULL, telephone VARCHAR(255) NOT NULL);
CREATE TABLE {p}newsletter_subscriber (
  subscriber_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  store_id SMALLINT UNSIGNED NULL DEFAULT 0, change_status_at TIMESTAMP NULL DEFAULT NULL,
  customer_id INT UNSIGNED NOT NULL DEFAULT 0, subscriber_email VARCHAR(150) NULL,
  subscriber_status INT NOT NULL DEFAULT 0, subscriber_confirm_code VARCHAR(32) NULL);
CREATE TABLE {p}sales_order (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  state VARCHAR(32) NULL, status VARCHAR(32) NULL, coupon_code VARCHAR(255) NULL,
  store_id SMALLINT UNSIGNED NULL, customer_id INT UNSIGNED NULL,
  discount_amount DECIMAL(20,4) NULL, grand_total DECIMAL(20,4) NULL,
  shipping_amount DECIMAL(20,4) NULL, subtotal DECIMAL(20,4) NULL,
  tax_amount DECIMAL(20,4) NULL, customer_is_guest SMALLINT UNSIGNED NULL,
  increment_id VARCHAR(32) NULL, order_currency_code VARCHAR(3) NULL,
  customer_email VARCHAR(128) NULL, customer_firstname VARCHAR(128) NULL,
  customer_lastname VARCHAR(128) NULL, remote_ip VARCHAR(45) NULL,
  shipping_method VARCHAR(120) NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY SALES_ORDER_UPDATED_AT (updated_at));
CREATE TABLE {p}sales_order_item (
  item_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id INT UNSIGNED NOT NULL DEFAULT 0, parent_item_id INT UNSIGNED NULL,
  store_id SMALLINT UNSIGNED NULL, product_id INT UNSIGNED NULL, product_type VARCHAR(255) NULL,
  product_options LONGTEXT NULL, sku VARCHAR(255) NULL, name VARCHAR(255) NULL,
  qty_ordered DECIMAL(12,4) NULL DEFAULT 0, qty_refunded DECIMAL(12,4) NULL DEFAULT 0,
  price DECIMAL(12,4) NOT NULL DEFAULT 0, tax_amount DECIMAL(20,4) NULL DEFAULT 0,
  tax_refunded DECIMAL(20,4) NULL, discount_amount DECIMAL(20,4) NULL DEFAULT 0,
  discount_refunded DECIMAL(20,4) NULL DEFAULT 0, amount_refunded DECIMAL(20,4) NULL DEFAULT 0,
  row_total DECIMAL(20,4) NOT NULL DEFAULT 0,
  discount_tax_compensation_amount DECIMAL(20,4) NULL,
  discount_tax_compensation_refunded DECIMAL(20,4) NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY SALES_ORDER_ITEM_ORDER_ID (order_id));
CREATE TABLE {p}sales_order_address (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, parent_id INT UNSIGNED NULL,
  region VARCHAR(255) NULL, postcode VARCHAR(255) NULL, lastname VARCHAR(255) NULL,
  street VARCHAR(255) NULL, city VARCHAR(255) NULL, email VARCHAR(255) NULL,
  telephone VARCHAR(255) NULL, country_id VARCHAR(2) NULL, firstname VARCHAR(255) NULL,
  address_type VARCHAR(255) NULL, KEY SALES_ORDER_ADDRESS_PARENT_ID (parent_id));
CREATE TABLE {p}sales_order_payment (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id INT UNSIGNED NOT NULL, method VARCHAR(128) NULL,
  KEY SALES_ORDER_PAYMENT_PARENT_ID (parent_id))
"""

_EAV_TABLE = """CREATE TABLE {p}catalog_product_entity_{t} (
  value_id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  attribute_id SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  store_id SMALLINT UNSIGNED NOT NULL DEFAULT 0, entity_id INT UNSIGNED NOT NULL DEFAULT 0,
  value {kind} NULL,
  UNIQUE KEY CATALOG_PRODUCT_ENTITY_{T}_ENTITY_ID_ATTRIBUTE_ID_STORE_ID
    (entity_id, attribute_id, store_id));"""
EAV_TYPES = {"varchar": "VARCHAR(255)", "int": "INT", "decimal": "DECIMAL(20,6)",
             "datetime": "DATETIME", "text": "MEDIUMTEXT"}
#: product attributes as Magento 2.4 installs them: code -> (attribute_id, backend_type)
PRODUCT_ATTRIBUTES = {"name": (73, "varchar"), "price": (77, "decimal"),
                      "special_price": (78, "decimal"), "special_from_date": (79, "datetime"),
                      "special_to_date": (80, "datetime"), "status": (97, "int"),
                      "visibility": (99, "int"), "url_key": (121, "varchar"),
                      "image": (87, "varchar"), "description": (75, "text")}
ZERO = "0000-00-00 00:00:00"


async def create_schema(db: Database, prefix: str = "") -> None:
    """Every table the preset reads, empty, named with ``prefix``."""
    eav = "\n".join(_EAV_TABLE.format(p=prefix, t=t, T=t.upper(), kind=k)
                    for t, k in EAV_TYPES.items())
    for statement in SCHEMA.format(p=prefix, eav=eav).split(";"):
        if statement.strip():
            await db.execute(statement)
    await db.execute(f"INSERT INTO {prefix}eav_entity_type VALUES (1, 'customer', "
                     "'Magento\\\\Customer\\\\Model\\\\ResourceModel\\\\Customer', "
                     "'customer_entity'), (4, 'catalog_product', "
                     "'Magento\\\\Catalog\\\\Model\\\\ResourceModel\\\\Product', "
                     "'catalog_product_entity')")
    await insert(db, f"{prefix}eav_attribute",
                 ("attribute_id", "entity_type_id", "attribute_code", "backend_type"),
                 [(i, 4, code, t) for code, (i, t) in PRODUCT_ATTRIBUTES.items()]
                 # a customer attribute of the same code, another entity type: never read
                 + [(5, 1, "name", "varchar"), (93, 4, "color", "int"),
                    (144, 4, "size", "int")])


async def insert(db: Database, table: str, columns: tuple[str, ...],
                 rows: list[tuple[Any, ...]], chunk: int = 2000) -> None:
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
           f"({', '.join(['%s'] * len(columns))})")
    async with db.conn.cursor() as cursor:
        # zero dates as old shops hold them; the admin rows' id 0 kept
        await cursor.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        for start in range(0, len(rows), chunk):
            await cursor.executemany(sql, rows[start:start + chunk])


class Shop(msgspec.Struct):
    """What the generator wrote, as the test's model of the database."""

    #: store_id -> (website_id, is_active)
    views: dict[int, tuple[int, bool]]
    #: (scope, scope_id, path) -> value
    config: dict[tuple[str, int, str], str | None]
    rates: dict[tuple[str, str], Decimal]
    products: dict[int, ProductRow] = msgspec.field(default_factory=dict)


class ProductRow(msgspec.Struct):
    entity_id: int
    sku: str | None
    type_id: str
    #: code -> store_id -> value (a row with NULL value is present with None)
    values: dict[str, dict[int, Any]]
    #: cataloginventory_stock_item (stock_id, website_id, is_in_stock) rows
    stock: list[tuple[int, int, int]]
    parents: list[int]
    websites: list[int]


STORES = {1: (1, True), 2: (1, True), 3: (2, True), 4: (2, False), 5: (2, True)}
CONFIG: dict[tuple[str, int, str], str | None] = {
    ("default", 0, "web/secure/base_url"): "https://shop.example.com/",
    ("stores", 2, "web/secure/base_url"): "https://fr.shop.example.com",  # no trailing /
    ("websites", 2, "web/secure/base_url"): "https://shop.example.eu/",
    ("default", 0, "currency/options/base"): "GBP",
    ("stores", 3, "currency/options/base"): "USD",  # the stores scope: never read for base
    ("websites", 2, "currency/options/base"): "EUR",
    ("stores", 2, "currency/options/default"): "EUR",
    ("stores", 5, "currency/options/default"): "CHF",  # no EUR -> CHF rate
    ("websites", 2, "catalog/seo/product_url_suffix"): None,  # NULL: no suffix
    ("stores", 3, "catalog/seo/product_url_suffix"): ".htm",
}
RATES = {("GBP", "EUR"): Decimal("1.167500000000"), ("GBP", "GBP"): Decimal(1),
         ("EUR", "GBP"): Decimal("0.856531049250")}


async def seed_stores(db: Database, prefix: str = "") -> Shop:
    """Two websites (GBP and EUR), five views (one inactive), configuration at every scope."""
    await insert(db, f"{prefix}store_website", ("website_id", "code", "name"),
                 [(0, "admin", "Admin"), (1, "base", "UK"), (2, "eu", "EU")])
    await insert(db, f"{prefix}store_group", ("group_id", "website_id", "name", "code"),
                 [(1, 1, "UK", "uk"), (2, 2, "EU", "eu")])
    await insert(db, f"{prefix}store",
                 ("store_id", "code", "website_id", "group_id", "name", "is_active"),
                 [(0, "admin", 0, 0, "Admin", 1)]
                 + [(s, f"view{s}", w, w, f"View {s}", int(a)) for s, (w, a) in STORES.items()])
    await insert(db, f"{prefix}core_config_data", ("scope", "scope_id", "path", "value"),
                 [(*k, v) for k, v in CONFIG.items()])
    await insert(db, f"{prefix}directory_currency_rate", ("currency_from", "currency_to", "rate"),
                 [(*k, v) for k, v in RATES.items()])
    return Shop(dict(STORES), dict(CONFIG), dict(RATES))


def _product_values(rng: random.Random, n: int, child: bool) -> dict[str, dict[int, Any]]:
    values: dict[str, dict[int, Any]] = {}
    name = rng.choice([f"Product {n}", f"  Product {n}  ", "   ", f"Étagère {n}"])
    values["name"] = {0: name}
    if rng.random() < 0.3:
        values["name"][2] = f"Produit {n}"
    if rng.random() < 0.1:
        values["name"][3] = None  # a NULL at the view: the default's value
    values["status"] = {0: rng.choice([1, 1, 1, 2])}
    if rng.random() < 0.2:
        values["status"][3] = 2 if values["status"][0] == 1 else 1
    if rng.random() < 0.9:
        values["price"] = {0: Decimal(rng.randint(100, 99999)) / 100}
        if rng.random() < 0.2:
            values["price"][3] = Decimal("12.345000")  # rounds half up at a rate of 1
    if rng.random() < 0.3:
        values["special_price"] = {0: Decimal(rng.randint(50, 5000)) / 100}
        values["special_from_date"] = {0: rng.choice([dt.datetime(2024, 3, 1), ZERO])}
        if rng.random() < 0.5:
            values["special_to_date"] = {0: dt.datetime(2024, 12, 31, 23, 59, 59)}
    values["visibility"] = {0: 1 if child else rng.choice([1, 2, 3, 4, 4])}
    if rng.random() < 0.1:
        values["visibility"][2] = 1
    if rng.random() < 0.85:
        values["url_key"] = {0: f"product-{n}"}
        if rng.random() < 0.2:
            values["url_key"][2] = f"produit-{n}"
    image = rng.choice([None, f"/p/{n}.jpg", f"p/{n}.png", "no_selection", " "])
    if image is not None:
        values["image"] = {0: image}
    values["description"] = {0: f"About {n}"}
    return values


async def seed_products(db: Database, shop: Shop, count: int, seed: int = 7,
                        prefix: str = "") -> None:
    """``count`` products: every fifth a configurable with two or three simple children (not
    visible individually, super-linked), some disabled, some in no website, some without a
    stock item or a price, store-level overrides, zero dates, odd image paths."""
    rng = random.Random(seed)
    n = 0
    while n < count:
        n += 1
        configurable = n % 5 == 1 and n + 3 <= count
        parent_id = n
        kids = rng.choice([2, 3]) if configurable else 0
        for index in range(kids + 1):
            if index:
                n += 1
            child = index > 0
            row = ProductRow(
                entity_id=n, sku=rng.choice([f"SKU-{n}", f" sku-{n} "]),
                type_id="configurable" if configurable and not child else "simple",
                values=_product_values(rng, n, child),
                stock=([] if rng.random() < 0.1 else [(1, 0, rng.choice([0, 1, 1]))]),
                parents=[parent_id] if child else [],
                websites=rng.choice([[1], [2], [1, 2], [1, 2], []]))
            if configurable and not child:
                row.values.pop("price", None)  # a configurable parent has no price
            if child and rng.random() < 0.2:
                row.parents.append(parent_id + 10_000)  # a second link: the smallest wins
            shop.products[n] = row
    await _write_products(db, shop, prefix)


async def _write_products(db: Database, shop: Shop, prefix: str) -> None:
    products = list(shop.products.values())
    await insert(db, f"{prefix}catalog_product_entity",
                 ("entity_id", "type_id", "sku", "updated_at"),
                 [(p.entity_id, p.type_id, p.sku, ZERO if p.entity_id % 7 == 0 else
                   dt.datetime(2024, 5, 1)) for p in products])
    by_type: dict[str, list[tuple[Any, ...]]] = {t: [] for t in EAV_TYPES}
    for p in products:
        for code, by_store in p.values.items():
            attribute_id, backend = PRODUCT_ATTRIBUTES[code]
            by_type[backend] += [(attribute_id, s, p.entity_id, v) for s, v in by_store.items()]
    for backend, rows in by_type.items():
        await insert(db, f"{prefix}catalog_product_entity_{backend}",
                     ("attribute_id", "store_id", "entity_id", "value"), rows)
    await insert(db, f"{prefix}cataloginventory_stock_item",
                 ("product_id", "stock_id", "website_id", "is_in_stock", "qty"),
                 [(p.entity_id, s, w, i, 5) for p in products for s, w, i in p.stock])
    await insert(db, f"{prefix}catalog_product_super_link", ("product_id", "parent_id"),
                 [(p.entity_id, parent) for p in products for parent in p.parents])
    await insert(db, f"{prefix}catalog_product_website", ("product_id", "website_id"),
                 [(p.entity_id, w) for p in products for w in p.websites])


class CustomerRow(msgspec.Struct):
    entity_id: int
    website_id: int
    store_id: int | None
    email: str | None
    prefix: str | None
    firstname: str | None
    middlename: str | None
    lastname: str | None
    gender: int | None
    dob: Any
    created_at: Any
    updated_at: Any
    default_billing: int | None


class AddressRow(msgspec.Struct):
    entity_id: int
    parent_id: int
    country_id: str
    telephone: str
    updated_at: Any


class SubscriberRow(msgspec.Struct):
    subscriber_id: int
    store_id: int | None
    customer_id: int
    subscriber_email: str | None
    subscriber_status: int
    change_status_at: Any


class People(msgspec.Struct):
    customers: dict[int, CustomerRow] = msgspec.field(default_factory=dict)
    addresses: dict[int, AddressRow] = msgspec.field(default_factory=dict)
    subscribers: dict[int, SubscriberRow] = msgspec.field(default_factory=dict)


PHONES = ["+44 20 7946 0958", "0044 (20) 7946-0958", "020 7946 0958", "12",
          " +33.1.23.45.67.89 ", "+0 123 4567 890"]
_VIEWS_OF = {1: [1, 2], 2: [3, 4, 5]}


async def seed_contacts(db: Database, count: int, seed: int = 11, prefix: str = "") -> People:
    """``count`` customers (genders 0-3 and NULL, zero and NULL dates, odd phones, names with
    spaces, some with no billing address or one that is not their default), their addresses,
    and subscriber rows of customers (several per customer, every status) and guests (empty
    emails, a customer id that does not exist, NULL change dates)."""
    rng = random.Random(seed)
    people = People()
    address_id = subscriber_id = 0
    for n in range(1, count + 1):
        website = rng.choice([1, 2])
        stamp_ = dt.datetime(2024, 1, 1) + dt.timedelta(minutes=rng.randint(0, 500_000))
        customer = CustomerRow(
            n, website, rng.choice([*_VIEWS_OF[website], 0, None]),
            rng.choice([f"user{n}@example.com", f" User{n}@Example.com ", f"not-an-email-{n}"]
                       if n % 13 == 0 else [f"user{n}@example.com"]),
            rng.choice([None, "Dr", " "]), rng.choice([f"Ann{n}", f" Ann{n} ", None]),
            rng.choice([None, "Q"]), rng.choice([f"Lee{n}", "  "]),
            rng.choice([None, 0, 1, 2, 3]),
            rng.choice([None, dt.date(1980, 2, 29), "0000-00-00"]),
            ZERO if n % 17 == 0 else stamp_ - dt.timedelta(days=30),
            ZERO if n % 29 == 0 else stamp_, None)
        for index in range(rng.choice([0, 1, 1, 2])):
            address_id += 1
            people.addresses[address_id] = AddressRow(
                address_id, n, rng.choice(["GB", "FR", " gb "]), rng.choice(PHONES),
                stamp_ + dt.timedelta(seconds=index))
            if index == 0 and rng.random() < 0.9:
                customer.default_billing = address_id
        people.customers[n] = customer
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            subscriber_id += 1
            people.subscribers[subscriber_id] = SubscriberRow(
                subscriber_id, rng.choice(_VIEWS_OF[website]), n, customer.email,
                rng.choice([1, 2, 3, 4]), rng.choice([stamp_, None, ZERO]))
    for _ in range(max(3, count // 3)):
        subscriber_id += 1
        people.subscribers[subscriber_id] = SubscriberRow(
            subscriber_id, rng.choice([1, 2, 3, 5, 0]), rng.choice([0, 0, count + 1000]),
            rng.choice([f"guest{subscriber_id}@example.com", " ", None,
                        f" Guest{subscriber_id}@example.com"]),
            rng.choice([1, 2, 3, 4]),
            rng.choice([dt.datetime(2024, 6, 1) + dt.timedelta(hours=subscriber_id), None]))
    await _write_people(db, people, prefix)
    return people


async def _write_people(db: Database, people: People, prefix: str) -> None:
    await insert(db, f"{prefix}customer_entity",
                 ("entity_id", "website_id", "store_id", "email", "prefix", "firstname",
                  "middlename", "lastname", "gender", "dob", "created_at", "updated_at",
                  "default_billing"),
                 [tuple(msgspec.structs.astuple(c)) for c in people.customers.values()])
    await insert(db, f"{prefix}customer_address_entity",
                 ("entity_id", "parent_id", "country_id", "telephone", "updated_at", "city",
                  "firstname", "lastname", "street"),
                 [(*msgspec.structs.astuple(a), "Town", "A", "B", "1 Street")
                  for a in people.addresses.values()])
    await insert(db, f"{prefix}newsletter_subscriber",
                 ("subscriber_id", "store_id", "customer_id", "subscriber_email",
                  "subscriber_status", "change_status_at"),
                 [tuple(msgspec.structs.astuple(s)) for s in people.subscribers.values()])


class OrderItemRow(msgspec.Struct):
    item_id: int
    order_id: int
    parent_item_id: int | None
    product_id: int | None
    product_options: str | None
    sku: str | None
    qty_ordered: Decimal | None
    qty_refunded: Decimal | None
    price: Decimal
    row_total: Decimal
    amount_refunded: Decimal | None
    tax_amount: Decimal | None
    tax_refunded: Decimal | None
    discount_amount: Decimal | None
    discount_refunded: Decimal | None
    discount_tax_compensation_amount: Decimal | None
    discount_tax_compensation_refunded: Decimal | None


class OrderRow(msgspec.Struct):
    entity_id: int
    increment_id: str | None
    created_at: Any
    updated_at: Any
    state: str | None
    status: str | None
    order_currency_code: str | None
    grand_total: Decimal | None
    subtotal: Decimal | None
    shipping_amount: Decimal | None
    tax_amount: Decimal | None
    discount_amount: Decimal | None
    store_id: int | None
    coupon_code: str | None
    remote_ip: str | None
    shipping_method: str | None
    customer_id: int | None
    customer_is_guest: int | None
    customer_email: str | None
    customer_firstname: str | None
    customer_lastname: str | None
    #: (entity_id, address_type, city, region, postcode, country_id, firstname, lastname)
    addresses: list[tuple[Any, ...]] = msgspec.field(default_factory=list)
    #: (entity_id, method)
    payments: list[tuple[int, str | None]] = msgspec.field(default_factory=list)
    items: list[OrderItemRow] = msgspec.field(default_factory=list)


STATES = [("complete", "complete"), ("processing", "processing"),
          ("pending_payment", "pending_payment"), ("closed", "closed"),
          ("canceled", "canceled"), ("new", "pending"), ("holded", "holded"),
          ("payment_review", "fraud"), (None, None), ("processing", "custom_status")]
_OPTIONS = ('{"info_buyRequest":{"qty":1},"attributes_info":[{"label":"Color","value":"Red",'
            '"option_id":93,"option_value":"5"},{"label":"Size","value":"M","option_id":"144",'
            '"option_value":167},{"label":"Gift wrap","value":"Yes"},{"label":"Empty"}]}')
_PHP = 'a:1:{s:15:"info_buyRequest";a:1:{s:3:"qty";i:1;}}'


def _money(rng: random.Random, top: int = 20000) -> Decimal:
    return Decimal(rng.randint(0, top)) / 100


def _order_items(rng: random.Random, order_id: int, next_id: int) -> list[OrderItemRow]:
    items: list[OrderItemRow] = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        price = _money(rng, 9000)
        qty = Decimal(rng.choice(["1.0000", "2.0000", "3.0000", "1.5000"]))
        refunded_qty = rng.choice([None, Decimal(0), Decimal(1)]) if qty >= 1 else None
        configurable = rng.random() < 0.4
        row_total = price * qty
        parent = OrderItemRow(
            next_id, order_id, None, rng.randint(1, 500),
            rng.choice([_OPTIONS, _PHP, None, "{}"]) if configurable else None,
            rng.choice([f"SKU-{next_id}", f" SKU-{next_id} "]), qty, refunded_qty, price,
            row_total, price if refunded_qty else rng.choice([None, Decimal(0)]),
            (row_total * Decimal("0.2")).quantize(Decimal("0.0001")),
            rng.choice([None, Decimal("1.5000")]), rng.choice([None, Decimal("5.0000")]),
            rng.choice([None, Decimal("2.0000")]), rng.choice([None, Decimal("0.8333")]),
            rng.choice([None, Decimal("0.1667")]))
        items.append(parent)
        next_id += 1
        for _ in range(rng.choice([1, 1, 2]) if configurable else 0):
            items.append(OrderItemRow(next_id, order_id, parent.item_id, rng.randint(501, 900),
                                      None, parent.sku, qty, None, Decimal(0), Decimal(0), None,
                                      None, None, None, None, None, None))
            next_id += 1
    return items


async def seed_orders(db: Database, count: int, seed: int = 5, prefix: str = "") -> (
        dict[int, OrderRow]):
    """``count`` orders in every state, with refunds (NULL until one), coupons, guests and
    customers, names only on the billing address, virtual orders without a shipping
    address, configurable lines with one or two child rows and their options (JSON, PHP
    serialised, none), several payments, a NULL or spaced increment_id, zero dates."""
    rng = random.Random(seed)
    orders: dict[int, OrderRow] = {}
    item_id = address_id = payment_id = 0
    for n in range(1, count + 1):
        state, status = rng.choice(STATES)
        guest = rng.random() < 0.3
        stamp_ = dt.datetime(2024, 1, 1) + dt.timedelta(minutes=rng.randint(0, 500_000))
        order = OrderRow(
            n, None if n % 97 == 0 else (f"0000{n} x" if n % 89 == 0 else f"00000{n}"),
            ZERO if n % 31 == 0 else stamp_, stamp_ + dt.timedelta(hours=1),
            state, status, rng.choice(["GBP", "EUR", "GBP"]), _money(rng), _money(rng),
            rng.choice([None, _money(rng, 900)]), rng.choice([None, _money(rng, 900)]),
            rng.choice([None, Decimal("-10.0000"), Decimal("0.0000"), Decimal("5.0000")]),
            rng.choice([1, 2, 3, None]), rng.choice([None, "SAVE10", " "]),
            rng.choice(["203.0.113.7", None]), rng.choice(["flatrate_flatrate", None]),
            None if guest else rng.randint(1, 300), 1 if guest else rng.choice([0, 0, None]),
            f"buyer{n}@example.com", rng.choice([None, f"Kim{n}"]),
            rng.choice([None, f"Park{n}", "  "]))
        kinds = ["billing"] + ([] if rng.random() < 0.2 else ["shipping"])
        for kind in kinds:
            address_id += 1
            order.addresses.append((address_id, kind, rng.choice(["Leeds", None]),
                                    rng.choice([None, "Yorkshire"]), "LS1 1AA",
                                    rng.choice(["GB", "FR"]), f"Bill{n}", f"Ing{n}"))
        if rng.random() < 0.05:
            address_id += 1
            order.addresses.append((address_id, "shipping", None, " ", None, None, "X", "Y"))
        for _ in range(rng.choice([1, 1, 2])):
            payment_id += 1
            order.payments.append((payment_id, rng.choice(["checkmo", "braintree", None])))
        order.items = _order_items(rng, n, item_id + 1)
        item_id += len(order.items)
        orders[n] = order
    await _write_orders(db, orders, prefix)
    return orders


async def _write_orders(db: Database, orders: dict[int, OrderRow], prefix: str) -> None:
    names = [f for f in OrderRow.__struct_fields__
             if f not in ("addresses", "payments", "items")]
    await insert(db, f"{prefix}sales_order", tuple(names),
                 [tuple(getattr(o, f) for f in names) for o in orders.values()])
    await insert(db, f"{prefix}sales_order_address",
                 ("parent_id", "entity_id", "address_type", "city", "region", "postcode",
                  "country_id", "firstname", "lastname"),
                 [(o.entity_id, *a) for o in orders.values() for a in o.addresses])
    await insert(db, f"{prefix}sales_order_payment", ("parent_id", "entity_id", "method"),
                 [(o.entity_id, *p) for o in orders.values() for p in o.payments])
    await insert(db, f"{prefix}sales_order_item", OrderItemRow.__struct_fields__,
                 [msgspec.structs.astuple(i) for o in orders.values() for i in o.items])
