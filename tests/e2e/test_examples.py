"""config/examples/: each platform's job file runs on its sample export against the emulator;
the valid rows arrive with the right values and only the sample's one bad row is refused."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
EXAMPLES = Path(__file__).parents[2] / "config" / "examples"

#: example -> (record type, keys stored, the refused line and its reason)
EXPECTED = {
    "magento2/customers": ("contact", [
        "magento/ann.lee@example.com", "magento/bob.ray@example.com",
        "magento/cy.oh@example.com", "magento/dee@example.com", "magento/fay@example.com",
        "magento/gus@example.com"], 6, 'must be an email address, got "eve@example"'),
    "magento2/products": ("product", ["MUG-BLUE", "MUG-RED", "TEE-S"], 5,
                          "column 'price' (price): not a number: 'price on request'"),
    "magento2/orders": ("order", ["100000001", "100000002"], 5,
                        "column 'qty_ordered' (lineitems[].quantity): not an integer: "
                        "'2.5000'"),
    "shopify/customers": ("contact", [
        "shopify/7418420838707", "shopify/7418420871475", "shopify/7418420904243",
        "shopify/7418420937011"], 6, 'must be an email address, got "eve@@example.com"'),
    "shopify/products": ("product", ["blue-mug", "gift-card", "red-mug"], 5,
                         "column 'Variant Price' (price): not a number: '£15'"),
}


async def run_example(name: str, workspace: Workspace,
                      emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Run the example's job from a copy of its folder; the stored records of its type."""
    folder, stem = name.split("/")
    workspace.root.mkdir(parents=True, exist_ok=True)
    for path in (EXAMPLES / folder).glob(f"{stem}.*"):
        shutil.copy(path, workspace.root / path.name)
    rtype, keys, line, reason = EXPECTED[name]
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", f"{stem}.toml", url=emu.url)
        store = emu.app[STORE]
        store.drain(10_000)
        stored = store.table(rtype)
    assert result.code == 3, result.stderr
    assert sorted(stored) == keys
    assert [(d["line"], [r["message"] for r in d["reasons"]])
            for d in workspace.dead_letters()] == [(line, [reason])]
    return stored


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_example_delivers_its_valid_rows(name: str, workspace: Workspace,
                                                    emulator: Emulator) -> None:
    await run_example(name, workspace, emulator)


async def test_magento_values_arrive_as_ometria_wants_them(tmp_path: Path,
                                                           emulator: Emulator) -> None:
    contacts = await run_example("magento2/customers", Workspace(tmp_path / "c"), emulator)
    ann = contacts["magento/ann.lee@example.com"]
    assert {k: ann.get(k) for k in ("email", "gender", "date_of_birth", "timestamp_acquired",
                                    "prefix", "properties")} == {
        "email": "ann.lee@example.com", "gender": "f", "date_of_birth": "1980-12-31",
        "timestamp_acquired": "2023-04-01T09:22:13+00:00", "prefix": "Ms",
        "properties": {"customer_group": "General", "website": "base", "store": "default",
                       "created_in": "Default Store View"}}
    assert contacts["magento/cy.oh@example.com"]["email"] == "cy.oh@example.com"
    assert "gender" not in contacts["magento/cy.oh@example.com"]
    assert "timestamp_acquired" not in contacts["magento/fay@example.com"]
    assert "date_of_birth" not in contacts["magento/gus@example.com"]  # 29 Feb 1989

    products = await run_example("magento2/products", Workspace(tmp_path / "p"), emulator)
    assert {k: products["MUG-RED"].get(k) for k in ("price", "is_active", "is_in_stock", "url",
                                                    "image_url")} == {
        "price": 12.5, "is_active": False, "is_in_stock": False,
        "url": "https://shop.example/red-mug.html",
        "image_url": "https://shop.example/media/catalog/product/r/e/red-mug.jpg"}

    orders = await run_example("magento2/orders", Workspace(tmp_path / "o"), emulator)
    first = orders["100000001"]
    assert [(i["sku"], i["quantity"], i["discount"]) for i in first["lineitems"]] == [
        ("MUG-BLUE", 2, -4.9), ("MUG-RED", 1, -0.0)]
    assert first["discount"] == -4.9 and first["timestamp"] == "2023-04-01T09:22:13+00:00"
    assert "id" not in orders["100000002"]["customer"]  # a guest


async def test_shopify_values_arrive_as_ometria_wants_them(tmp_path: Path,
                                                           emulator: Emulator) -> None:
    contacts = await run_example("shopify/customers", Workspace(tmp_path / "c"), emulator)
    ann = contacts["shopify/7418420838707"]
    assert {k: ann.get(k) for k in ("id", "customer_id", "marketing_optin", "phone_number",
                                    "country_id", "properties")} == {
        "id": "7418420838707", "customer_id": "7418420838707",
        "marketing_optin": "EXPLICITLY_OPTEDIN", "phone_number": "+447700900123",
        "country_id": "GB", "properties": {"city": "London", "total_spent": 129.0,
                                           "total_orders": 3, "tags": "vip, newsletter"}}
    assert contacts["shopify/7418420871475"]["phone_number"] == "+447700900124"
    assert contacts["shopify/7418420904243"]["country_id"] == "FR"

    products = await run_example("shopify/products", Workspace(tmp_path / "p"), emulator)
    assert {k: products["red-mug"].get(k) for k in ("title", "sku", "price", "is_active",
                                                    "url")} == {
        "title": "Red mug", "sku": "MUG-RED", "price": 12.5, "is_active": False,
        "url": "https://shop.example/products/red-mug"}
    assert products["blue-mug"]["is_active"] is True
