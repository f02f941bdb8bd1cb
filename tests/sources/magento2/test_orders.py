"""The magento2 preset's orders against a generated Magento database: every order, field by
field and line by line, as the contract's rules give it (tests/sources/magento2/
expected.py); store views limiting what is read; a refund written with the order's
updated_at sent on the next run."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.magento2 import Magento2SourceConfig
from tests.magento2 import PRODUCT_ATTRIBUTES, OrderRow, create_schema, seed_orders, seed_stores
from tests.mysql import Database
from tests.sources.magento2.expected import order_record

pytestmark = pytest.mark.mysql

#: eav_attribute as create_schema writes it: id -> code
CODES = {**{i: code for code, (i, _) in PRODUCT_ATTRIBUTES.items()}, 5: "name", 93: "color",
         144: "size"}


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)


def settings(**options: Any) -> Magento2SourceConfig:
    return msgspec.convert({"kind": "magento2", "entity": "orders", "dsn_env": "MAGENTO_DSN",
                            "page_size": 29, **options}, Magento2SourceConfig)


async def read(config: Magento2SourceConfig, start: Any = None) -> list[SourceItem]:
    (part,) = await config.open().parts()
    assert part.key == "orders"
    return [item async for chunk in part.read(start) for item in chunk]


async def shop(db: Database, count: int) -> dict[int, OrderRow]:
    await create_schema(db)
    await seed_stores(db)
    return await seed_orders(db, count)


@pytest.mark.parametrize("store_ids", [None, [2, 3]])
async def test_every_order_is_the_record_the_contract_computes(
        my_db: Database, store_ids: list[int] | None) -> None:
    orders = await shop(my_db, 250)
    items = await read(settings(store_ids=store_ids))
    assert [i.error for i in items if i.error] == []
    wanted = sorted((o for o in orders.values()
                     if store_ids is None or o.store_id in store_ids),
                    key=lambda o: (o.updated_at, o.entity_id))
    assert len(items) == len(wanted)
    for item, order in zip(items, wanted, strict=True):
        assert item.record == order_record(order, CODES), order.entity_id


async def test_the_generated_orders_hold_the_cases_the_rules_are_about(
        my_db: Database) -> None:
    orders = await shop(my_db, 250)
    records = [order_record(o, CODES) for o in orders.values()]
    lines = [li for r in records for li in r["lineitems"]]
    assert {r.get("status") for r in records if not r["is_valid"]} >= {"refunded", "canceled"}
    assert any("id" not in r for r in records) and any(" " in r.get("id", "") for r in records)
    assert any("shipping_address" not in r for r in records)
    assert any("id" in r.get("customer", {}) for r in records)
    assert any(r.get("customer", {}).get("firstname", "").startswith("Bill") for r in records)
    assert any("variant_id" in li for li in lines) and any(
        "variant_id" not in li and "variant_options" in li for li in lines)
    assert any(li.get("variant_options", [{}])[0].get("type") == "color" for li in lines)
    assert any("quantity_refunded" in li for li in lines)
    assert any(li["quantity"] % 1 for li in lines)  # 1.5: refused by validation, section 8
    assert any(r["discount"] < 0 for r in records)


async def test_a_refund_saved_with_the_order_is_read_on_resume(my_db: Database) -> None:
    orders = await shop(my_db, 40)
    config = settings(lookback_seconds=0)
    first = await read(config)
    order = orders[7]
    item = order.items[0]
    await my_db.execute("UPDATE sales_order_item SET qty_refunded = 1, amount_refunded = price "
                        "WHERE item_id = %s", item.item_id)
    await my_db.execute("UPDATE sales_order SET state = 'closed', updated_at = "
                        "'2031-01-01 00:00:00' WHERE entity_id = 7")
    (again,) = await read(config, first[-1].position)
    item.qty_refunded, item.amount_refunded = 1, item.price
    order.state = "closed"
    assert again.record == order_record(order, CODES)
    assert again.record["status"] == "refunded" and again.record["is_valid"] is False


async def test_a_late_commit_older_than_the_checkpoint_is_read_by_the_look_back(
        my_db: Database) -> None:
    """An order committed after the read, stamped 100 s before the checkpoint: the resumed
    read starts lookback_seconds (300) earlier and finds it."""
    await shop(my_db, 30)
    first = await read(settings())
    last = first[-1].position
    assert isinstance(last, dict)
    checkpoint = last["after"][0]
    await my_db.execute("INSERT INTO sales_order (entity_id, increment_id, state, status, "
                        "order_currency_code, created_at, updated_at) VALUES (999, 'late-1', "
                        "'new', 'pending', 'GBP', %s - INTERVAL 100 SECOND, %s - INTERVAL 100 "
                        "SECOND)", checkpoint, checkpoint)
    again = await read(settings(), last)
    assert "late-1" in [i.record.get("id") for i in again]
    without = await read(settings(lookback_seconds=0), last)
    assert "late-1" not in [i.record.get("id") for i in without]


async def test_a_row_the_preset_refuses_names_its_order(
        my_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row whose record cannot be built is the row's error, not the run's, and the item
    carries the order's id (its increment_id): the dead letter and the ledger name it."""
    from ometria_sync.sources.magento2.orders import Orders

    orders = await shop(my_db, 20)
    victim = min(o for o in orders if orders[o].increment_id is not None
                 and " " not in orders[o].increment_id.strip())
    built = Orders.record

    def record(self: Orders, row: Any) -> dict[str, Any]:
        if int(row["entity_id"]) == victim:
            raise ValueError("cannot be built")
        return built(self, row)

    monkeypatch.setattr(Orders, "record", record)
    refused = [i for i in await read(settings()) if i.error]
    assert [(i.id, "cannot be built" in (i.error or "")) for i in refused] == [
        (orders[victim].increment_id.strip(), True)]
