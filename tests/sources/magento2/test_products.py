"""The magento2 preset's products against a generated Magento database on the machine's
MariaDB: every field of every product as the contract's rules give it (tests/sources/
magento2/expected.py), the whole catalogue every run, a cut-off read resumed."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.magento2 import Magento2SourceConfig
from tests.magento2 import Shop, create_schema, seed_products, seed_stores
from tests.mysql import Database
from tests.sources.magento2.expected import product_record

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)


def settings(**options: Any) -> Magento2SourceConfig:
    return msgspec.convert({"kind": "magento2", "entity": "products",
                            "dsn_env": "MAGENTO_DSN", **options}, Magento2SourceConfig)


async def read(config: Magento2SourceConfig, start: Any = None) -> list[SourceItem]:
    source = config.open()
    (part,) = await source.parts()
    items: list[SourceItem] = []
    async for chunk in part.read(start):
        items += chunk
    return items


async def shop(db: Database, count: int, prefix: str = "") -> Shop:
    await create_schema(db, prefix)
    model = await seed_stores(db, prefix)
    await seed_products(db, model, count, prefix=prefix)
    return model


async def test_every_product_is_the_record_the_contract_computes(my_db: Database) -> None:
    """Across pages: every type, EAV values by store with the default's fallback, listings
    per active view in the display currency, variants with their smallest parent."""
    model = await shop(my_db, 300)
    items = await read(settings(page_size=37))
    assert [i.error for i in items if i.error] == []
    got = {i.record["id"]: i.record for i in items}
    assert [i.record["id"] for i in items] == [str(n) for n in sorted(model.products)]
    for entity_id, product in model.products.items():
        assert got[str(entity_id)] == product_record(model, product), entity_id


async def test_the_messy_cases_are_all_in_the_catalogue(my_db: Database) -> None:
    """The generator's catalogue holds what the contract's rules are about, so the
    comparison above exercises each of them."""
    model = await shop(my_db, 300)
    records = [product_record(model, p) for p in model.products.values()]
    listings = [li for r in records for li in r["listings"]]
    assert any(r["is_variant"] for r in records)
    assert any(not r["is_active"] for r in records)
    assert any("price" not in r for r in records)
    assert any("is_in_stock" not in r for r in records)
    assert any(r["stores"] == [] for r in records)
    assert any(r["image_url"] is None for r in records)
    assert any(r["special_price_dt_from"] is None and r["special_price"] is not None
               for r in records)  # a zero date
    assert {li.get("currency") for li in listings} == {"GBP", "EUR", None}
    assert any(li["store"] == "2" and "price" in li and li["currency"] == "EUR"
               for li in listings)


async def test_one_product_field_by_field(my_db: Database) -> None:
    """A pinned example: a view's name, a converted price rounded half up, a view's own base
    URL given without its slash, the EUR website's NULL suffix."""
    model = await shop(my_db, 5)
    product = model.products[2]  # the configurable 1's first child
    product.values.update({"name": {0: " Tee ", 2: "T-shirt"}, "price": {0: 10},
                           "url_key": {0: "tee"}, "visibility": {0: 4}, "status": {0: 1},
                           "image": {0: "t/tee.jpg"}})
    product.websites = [1, 2]
    await my_db.execute("DELETE FROM catalog_product_entity_varchar")
    await my_db.execute("DELETE FROM catalog_product_entity_decimal")
    await my_db.execute("DELETE FROM catalog_product_entity_int")
    await my_db.execute("DELETE FROM catalog_product_website")
    await my_db.execute("INSERT INTO catalog_product_website VALUES (2, 1), (2, 2)")
    await my_db.execute(
        "INSERT INTO catalog_product_entity_varchar (attribute_id, store_id, entity_id, value) "
        "VALUES (73, 0, 2, ' Tee '), (73, 2, 2, 'T-shirt'), (121, 0, 2, 'tee'), "
        "(87, 0, 2, 't/tee.jpg')")
    await my_db.execute("INSERT INTO catalog_product_entity_decimal (attribute_id, store_id, "
                        "entity_id, value) VALUES (77, 0, 2, 10)")
    await my_db.execute("INSERT INTO catalog_product_entity_int (attribute_id, store_id, "
                        "entity_id, value) VALUES (99, 0, 2, 4), (97, 0, 2, 1)")
    record = {i.record["id"]: i.record for i in await read(settings())}["2"]
    assert record["title"] == "Tee"
    assert record["price"] == 10 and record["currency"] == "GBP"
    assert record["url"] == "https://shop.example.com/tee.html"
    assert record["image_url"] == "https://shop.example.com/media/catalog/product/t/tee.jpg"
    assert record["is_variant"] is False and record["parent_id"] is None
    assert record["stores"] == ["1", "2", "3", "5"]
    view2 = record["listings"][1]
    assert view2 == {"store": "2", "title": "T-shirt", "is_active": True,
                     "url": "https://fr.shop.example.com/tee.html",
                     "image_url": "https://fr.shop.example.com/media/catalog/product/t/tee.jpg",
                     "currency": "EUR", "price": 11.68}  # 10 x 1.1675, half up
    view3 = record["listings"][2]
    assert view3["url"] == "https://shop.example.eu/tee.htm" and view3["currency"] == "EUR"
    assert record["listings"][3]["url"] == "https://shop.example.eu/tee"  # NULL suffix
    assert "price" not in record["listings"][3]  # CHF: no EUR -> CHF rate
    assert record == product_record(model, product)


async def test_store_ids_limit_stores_and_listings(my_db: Database) -> None:
    model = await shop(my_db, 60)
    items = await read(settings(store_ids=[2, 3]))
    for item in items:
        product = model.products[int(item.record["id"])]
        assert item.record == product_record(model, product, [2, 3])
        assert set(item.record["stores"]) <= {"2", "3"}


async def test_a_table_prefix_is_read(my_db: Database) -> None:
    model = await shop(my_db, 12, prefix="m2_")
    items = await read(settings(table_prefix="m2_"))
    assert [i.record for i in items] == [product_record(model, p)
                                         for p in model.products.values()]


async def test_the_whole_catalogue_every_run_and_a_cut_off_read_resumes(
        my_db: Database) -> None:
    """A finished read's last position is the top: the next run reads everything again. A
    read cut off after product 20 resumes at 21; one cut off at the very end starts over."""
    await shop(my_db, 50)
    config = settings(page_size=8)
    first = await read(config)
    assert first[-1].position == {"after": None}
    assert first[19].position == {"after": ["20"]}
    again = await read(config, first[-1].position)
    assert [i.record for i in again] == [i.record for i in first]
    resumed = await read(config, first[19].position)
    assert [i.record["id"] for i in resumed] == [str(n) for n in range(21, 51)]
    at_end = await read(config, {"after": ["50"]})
    assert len(at_end) == 50
