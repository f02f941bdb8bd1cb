"""A Magento-style export goes in as it is, with a job file alone: the real CLI against the
emulator, every valid row delivered with the right values, only the truly bad rows refused,
each with a reason a person understands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

CUSTOMERS = """\
entity_id,email,firstname,lastname,created_at,dob,gender,is_subscribed,country,phone
1,ann@example.com,Ann,Lee,2023-04-01 10:22:13,31/12/1980,2,1,UK,07700 900123
2,bob@example.com,Bob,Ray,2023-01-15 09:00:00,01/02/1975,1,0,United Kingdom,+44 7700 900124
3, padded@example.com ,Cy,Oh,2023-07-01 00:30:00,,3,0,uk,
4,,Dee,Nomail,2023-05-05 05:05:05,,,0,GB,07700 900125
5,not-an-email,Eve,Bad,2023-04-01 10:22:13,,2,1,UK,
6,zero@example.com,Fay,Zero,0000-00-00 00:00:00,,2,1,UK,
7,feb@example.com,Gus,Feb,2023-02-30 10:00:00,,1,0,UK,
8,gender@example.com,Hal,Odd,2023-04-01 10:22:13,,7,1,UK,
9,phone@example.com,Ian,Phone,2023-04-01 10:22:13,,1,1,UK,call me
10,dob@example.com,Jo,Dob,2023-04-01 10:22:13,31/02/1980,2,0,UK,
11,ellen@example.com,Ellen,Berg,2024-07-22 01:07:21,15/06/1990,2,1,Germany,+49 30 123456789
"""

PRODUCTS = """\
entity_id,sku,name,price,status,url_key,image,qty
1001,MUG-1,Blue mug,49.0000,1,blue-mug,/b/l/blue-mug.jpg,173.0000
1002,MUG-2,Red mug,12.5000,2,red-mug,/r/e/red-mug.jpg,0.0000
1003,MUG-3,Odd mug,N/A,1,odd-mug,,5.0000
"""

ORDERS = """\
increment_id,created_at,status,order_currency_code,customer_id,customer_email,subtotal,\
discount_amount,shipping_amount,tax_amount,grand_total,sku,name,qty_ordered,price,row_total,\
item_discount_amount
100000001,2023-04-01 10:22:13,complete,GBP,1,ann@example.com,110.5000,-4.9000,4.9900,0.0000,\
110.5900,MUG-1,Blue mug,2.0000,49.0000,98.0000,4.9000
100000001,2023-04-01 10:22:13,complete,GBP,1,ann@example.com,110.5000,-4.9000,4.9900,0.0000,\
110.5900,MUG-2,Red mug,1.0000,12.5000,12.5000,0.0000
100000002,2023-12-24 18:00:00,pending,GBP,2,bob@example.com,12.5000,0.0000,0.0000,0.0000,\
12.5000,MUG-2,Red mug,1.0000,12.5000,12.5000,0.0000
100000003,2023-12-25 18:00:00,pending,GBP,2,bob@example.com,12.5000,0.0000,0.0000,0.0000,\
twelve,MUG-2,Red mug,1.0000,12.5000,12.5000,0.0000
"""

JOB = """
[[streams]]
name = "customers"
record_type = "contact"
[streams.source]
kind = "csv"
path = "customers.csv"
timezone = "Europe/London"
constants = { "@collection" = "magento" }
[streams.source.columns]
entity_id = { field = ["id", "customer_id"] }
created_at = { field = "timestamp_acquired", type = "timestamp", on_error = "omit" }
dob = { field = "date_of_birth", expr = "date(value, '%d/%m/%Y')" }
gender = { field = "gender", values = { "1" = "m", "2" = "f", "3" = "" } }
is_subscribed.field = "marketing_optin"
is_subscribed.values = { "0" = "NOT_SPECIFIED", "1" = "EXPLICITLY_OPTEDIN" }
country = { field = "country_id", expr = "country(value)" }
phone = { field = "phone_number", expr = "e164(value, 'GB')", on_error = "omit" }

[[streams]]
name = "products"
record_type = "product"
[streams.source]
kind = "csv"
path = "products.csv"
drop = ["qty"]
constants = { currency = "GBP" }
[streams.source.columns]
entity_id = "id"
name = "title"
price = { field = "price", type = "number" }
status = { field = "is_active", type = "boolean", values = { "1" = "true", "2" = "false" } }
url_key = { field = "url", expr = "'https://shop.example/' + value + '.html'" }
image = { field = "image_url", expr = "'https://shop.example/media/catalog/product' + value" }

[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "csv"
path = "orders.csv"
timezone = "Europe/London"
[streams.source.columns]
increment_id = "id"
created_at = { field = "timestamp", type = "timestamp" }
order_currency_code = "currency"
customer_id = "customer.id"
customer_email = "customer.email"
subtotal = { field = "subtotal", type = "number" }
discount_amount = { field = "discount", type = "number" }
shipping_amount = { field = "shipping", type = "number" }
tax_amount = { field = "tax", type = "number" }
grand_total = { field = "grand_total", type = "number" }
sku = "lineitems[].sku"
name = "lineitems[].properties.name"
qty_ordered = { field = "lineitems[].quantity", type = "integer" }
price = { field = "lineitems[].unit_price", type = "number" }
row_total = { field = "lineitems[].subtotal", type = "number" }
item_discount_amount = { field = "lineitems[].discount", type = "number", expr = "-value" }
"""


async def test_a_magento_export_goes_in_as_it_is(workspace: Workspace,
                                                 emulator: Emulator) -> None:
    for name, text in (("customers", CUSTOMERS), ("products", PRODUCTS), ("orders", ORDERS)):
        (workspace.root / f"{name}.csv").write_text(text)
    workspace.job(JOB)
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        store = emu.app[STORE]
        store.drain(10_000)
        contacts, products, orders = (store.table(t) for t in ("contact", "product", "order"))
    assert result.code == 3, result.stderr  # some rows are truly bad: exit 3, the rest sent

    # every valid row arrived, and only those
    assert sorted(contacts, key=lambda k: int(k.split("/")[1])) == [
        f"magento/{n}" for n in (1, 2, 3, 4, 6, 7, 9, 11)]
    assert sorted(products) == ["1001", "1002"]
    assert sorted(orders) == ["100000001", "100000002"]

    ann = contacts["magento/1"]
    assert {k: ann.get(k) for k in (
        "id", "customer_id", "email", "firstname", "timestamp_acquired", "date_of_birth",
        "gender", "marketing_optin", "country_id", "phone_number")} == {
        "id": "1", "customer_id": "1", "email": "ann@example.com", "firstname": "Ann",
        "timestamp_acquired": "2023-04-01T10:22:13+01:00", "date_of_birth": "1980-12-31",
        "gender": "f", "marketing_optin": "EXPLICITLY_OPTEDIN", "country_id": "GB",
        "phone_number": "+447700900123"}
    assert contacts["magento/2"]["timestamp_acquired"] == "2023-01-15T09:00:00+00:00"
    assert contacts["magento/2"]["country_id"] == "GB"
    assert contacts["magento/2"]["marketing_optin"] == "NOT_SPECIFIED"
    assert contacts["magento/3"]["email"] == "padded@example.com"
    assert "gender" not in contacts["magento/3"] and "phone_number" not in contacts["magento/3"]
    assert "email" not in contacts["magento/4"]
    assert "timestamp_acquired" not in contacts["magento/6"]  # zero date: left out
    assert "timestamp_acquired" not in contacts["magento/7"]  # 30 February: left out
    assert "phone_number" not in contacts["magento/9"]
    assert contacts["magento/11"]["country_id"] == "DE"
    assert contacts["magento/11"]["phone_number"] == "+4930123456789"

    mug = products["1001"]
    assert {k: mug.get(k) for k in ("sku", "title", "price", "is_active", "url", "image_url",
                                    "currency")} == {
        "sku": "MUG-1", "title": "Blue mug", "price": 49.0, "is_active": True,
        "url": "https://shop.example/blue-mug.html",
        "image_url": "https://shop.example/media/catalog/product/b/l/blue-mug.jpg",
        "currency": "GBP"}
    assert "qty" not in mug and "properties" not in mug
    assert products["1002"]["is_active"] is False and products["1002"]["price"] == 12.5

    order = orders["100000001"]
    assert order["timestamp"] == "2023-04-01T10:22:13+01:00"
    assert (order["grand_total"], order["discount"], order["customer"]["email"]) == (
        110.59, -4.9, "ann@example.com")
    assert [(i["sku"], i["quantity"], i["unit_price"], i["discount"], i["properties"]["name"])
            for i in order["lineitems"]] == [
        ("MUG-1", 2, 49.0, -4.9, "Blue mug"), ("MUG-2", 1, 12.5, -0.0, "Red mug")]

    reasons = {(d["stream"], d["line"], d["id"]): [r["message"] for r in d["reasons"]]
               for d in workspace.dead_letters()}
    assert reasons == {  # a row refused by the mapping still names its record's id
        ("customers", 6, "5"): ['must be an email address, got "not-an-email"'],
        ("customers", 9, "8"): ["column 'gender' (gender): '7' is not one of the mapped "
                                "values ('1', '2', '3')"],
        ("customers", 11, "10"): ["column 'dob' (date_of_birth): expr \"date(value, "
                                  "'%d/%m/%Y')\" failed for '31/02/1980': not a date in the "
                                  "form '%d/%m/%Y': '31/02/1980'"],
        ("products", 4, "1003"): ["column 'price' (price): not a number: 'N/A'"],
        ("orders", 5, "100000003"): ["column 'grand_total' (grand_total): not a number: "
                                     "'twelve'"]}
    # the left-out fields are counted warnings in the run summary
    assert 'left out (on_error = "omit"): column \'created_at\'' in result.stdout
