"""``on_missing = "deactivate"`` on the Magento 2 preset, through the real CLI against the
emulator: Magento deletes rows outright, so the preset's built-in weekly keys sweep (no SQL to
write) tells which delivered products, customers, guest subscribers and orders are gone; with
a ``table_prefix`` and ``store_ids``, exactly the deleted ones are deactivated once the sweep is
due, and the other integration's records are untouched."""

from __future__ import annotations

from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace
from tests.e2e.test_on_missing import changed, settled
from tests.e2e.test_on_missing_postgres import age_the_last_sweep
from tests.magento2 import create_schema, seed_contacts, seed_orders, seed_products, seed_stores
from tests.mysql import Database

pytestmark = [pytest.mark.mysql, pytest.mark.e2e]
P = "m2_"


def stream(entity: str, record_type: str) -> str:
    return f"""
[[streams]]
name = "{entity}"
record_type = "{record_type}"
on_missing = "deactivate"
[streams.source]
kind = "magento2"
entity = "{entity}"
dsn_env = "MAGENTO_DSN"
page_size = 25
table_prefix = "{P}"
store_ids = [1, 2, 3]
"""


FOREIGN = [{"@type": "product", "id": "x1", "title": "Theirs", "is_active": True},
           {"@type": "order", "id": "x1", "status": "complete", "is_valid": True,
            "timestamp": "2026-10-01T10:00:00+00:00"}]


def ids(where: str, values: list[Any]) -> str:
    return f"{where} IN ({', '.join(repr(v) for v in values)})"


async def test_rows_deleted_in_the_shop_are_deactivated_by_the_weekly_sweep(
        workspace: Workspace, emulator: Any, my_db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGENTO_DSN", my_db.dsn)
    await create_schema(my_db, P)
    shop = await seed_stores(my_db, P)
    await seed_products(my_db, shop, 60, prefix=P)
    await seed_contacts(my_db, 60, prefix=P)
    await seed_orders(my_db, 150, prefix=P)  # a third or so invalid
    workspace.job(stream("products", "product") + stream("contacts", "contact")
                  + stream("orders", "order"), rate_limit_per_second=200)
    async with emulator(rate=200) as emu:
        emu.app[STORE].accept(FOREIGN)
        emu.app[STORE].drain(len(FOREIGN))
        night1 = await workspace.run("run", "job.toml", url=emu.url)
        assert night1.code in (0, 3), night1.stdout + night1.stderr  # 3: invalid rows
        first = await settled(emu)

        parents = {p for row in shop.products.values() for p in row.parents}
        products = [k for k in sorted(first["product"], key=lambda k: k.zfill(9))
                    if k.isdigit() and int(k) not in parents
                    and first["product"][k]["is_active"]][:3]
        await my_db.execute(f"DELETE FROM {P}catalog_product_entity WHERE "
                            + ids("entity_id", [int(k) for k in products]))
        customers = [k for k in sorted(first["contact"]) if k.removeprefix("default/").isdigit()
                     ][:3]
        gone = [int(k.removeprefix("default/")) for k in customers]
        for table, column in (("customer_entity", "entity_id"),
                              ("customer_address_entity", "parent_id"),
                              ("newsletter_subscriber", "customer_id")):
            await my_db.execute(f"DELETE FROM {P}{table} WHERE " + ids(column, gone))
        guests = [k for k in sorted(first["contact"]) if "subscriber-" in k][:1]
        await my_db.execute(f"DELETE FROM {P}newsletter_subscriber WHERE " + ids(
            "subscriber_id", [int(k.rsplit("-", 1)[1]) for k in guests]))
        orders = [k for k in sorted(first["order"]) if k != "x1"][:3]
        await my_db.execute(f"DELETE FROM {P}sales_order WHERE " + ids("TRIM(increment_id)",
                                                                        orders))
        assert len(products) == 3 and len(guests) == 1 and len(orders) == 3

        not_due = await workspace.run("run", "job.toml", url=emu.url)  # the sweep is weekly
        assert not_due.code in (0, 3), not_due.stdout + not_due.stderr
        assert changed(first["product"], (await settled(emu))["product"]) == {}
        age_the_last_sweep(workspace, days=7.1)
        night2 = await workspace.run("run", "job.toml", url=emu.url)
        assert night2.code in (0, 3), night2.stdout + night2.stderr
        second = await settled(emu)

    assert changed(first["product"], second["product"]) == {
        k: {"is_active": False} for k in products}
    assert set(changed(first["contact"], second["contact"])) == {*customers, *guests}
    assert all(second["contact"][k]["marketing_optin"] == "EXPLICITLY_OPTEDOUT"
               for k in (*customers, *guests))
    assert set(changed(first["order"], second["order"])) <= set(orders)
    assert all(second["order"][k]["is_valid"] is False
               and second["order"][k]["status"] == "cancelled" for k in orders)
    assert second["product"]["x1"] == first["product"]["x1"]
    assert second["order"]["x1"] == first["order"]["x1"]
