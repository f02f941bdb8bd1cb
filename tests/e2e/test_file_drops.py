"""Nightly CSV drops in a folder, synced by the real CLI: each night sends only what is new."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import KEY, Workspace

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

DROPS = """
[[streams]]
name = "orders"
record_type = "order"
mode = "create"
[streams.source]
kind = "glob"
pattern = "drops/orders-*.csv.gz"
timezone = "Europe/London"
drop = ["note"]
constants = { "@merge" = true }
[streams.source.columns]
order_id = "id"
placed = { field = "timestamp", type = "timestamp" }
total = { field = "grand_total", type = "number" }
sku = "lineitems[].sku"
qty = { field = "lineitems[].quantity", type = "integer" }
price = { field = "lineitems[].unit_price", type = "number" }
"""
HEADER = "order_id,placed,total,currency,sku,qty,price,note\n"


def _drop(root: Path, night: int, orders: range) -> None:
    rows = "".join(f"o{n},2024-03-0{night} 10:00,{n}.5,GBP,S{n},1,{n}.5,x\n"
                   f"o{n},,,,T{n},2,1,\n" for n in orders)
    path = root / "drops" / f"orders-2024-03-0{night}.csv.gz"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress((HEADER + rows).encode()))


async def test_each_night_sends_only_the_new_drop(workspace: Workspace,
                                                  emulator: Emulator) -> None:
    workspace.job(DROPS)
    _drop(workspace.root, 1, range(0, 300))
    async with emulator(rate=50) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stdout + first.stderr
        _drop(workspace.root, 2, range(300, 450))
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0, second.stdout + second.stderr
        for _ in range(100):  # the emulator imports asynchronously, like Ometria
            if emu.stats()["queue_depth"] == 0:
                break
            await asyncio.sleep(0.05)
        stats = emu.stats()
        async with (aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as http,
                    http.get(f"{emu.url}/orders/o307") as answer):
            order = await answer.json()
    assert stats["distinct_ids"] == 450
    assert stats["records_accepted"] == 450  # night 2 sent only night 2's orders
    assert stats["import_errors"] == 0
    assert order["timestamp"] == "2024-03-02T10:00:00+00:00"
    assert order["grand_total"] == 307.5
    assert order["lineitems"] == [{"sku": "S307", "quantity": 1, "unit_price": 307.5},
                                  {"sku": "T307", "quantity": 2, "unit_price": 1}]
