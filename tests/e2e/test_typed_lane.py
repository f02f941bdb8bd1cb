"""A first run through the typed lane (``schemas/typed_lane.py``), through the CLI against
the emulator: Ometria holds the very records the usual path sends, and a chunk mixing valid
and invalid lines is dead-lettered as before (line and field named)."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import CONTACTS, Workspace, jsonl

ORDERS = """
[[streams]]
name = "orders"
record_type = "order"
source = { kind = "jsonl", path = "data/orders.jsonl" }
"""


def _contacts(n: int) -> list[Any]:
    """Contacts of several shapes: no ``@type``, numbers as integers and as floats, text
    beyond ASCII, lists, nulls; about 150 bytes a line, so several chunks."""
    out: list[Any] = []
    for i in range(n):
        record: dict[str, Any] = {"@collection": "shop" if i % 7 else "club", "id": f"c{i}",
                                  "email": f"u{i}@example.com", "firstname": "Zoë" if i % 3
                                  else "Ann", "lastname": None if i % 5 == 0 else "Lee",
                                  "properties": {"n": i, "f": i / 4, "big": 2**70 + i,
                                                 "tags": ["a", i, 1.5, None, True]},
                                  "timestamp_subscribed": "2024-01-01T00:00:00+01:00"}
        if i % 2:
            record["@type"] = "contact"
        out.append(record)
    return out


def _orders(n: int) -> list[Any]:
    return [{"id": f"o{i}", "@type": "order", "timestamp": "2024-03-01T10:15:00Z",
             "currency": "GBP", "grand_total": i if i % 2 else i + 0.5, "discount": 0,
             "customer": {"id": f"cust{i}", "email": f"u{i}@example.com"},
             "shipping_address": {"city": "Hull", "country_code": "GB"},
             "lineitems": [{"product_id": f"p{j}", "sku": f"S{j}", "quantity": j,
                            "unit_price": 2.5 * j, "discount": -1} for j in range(3)]}
            for i in range(n)]


async def _first_run(workspace: Workspace, emulator: Any, lane: bool) -> dict[str, Any]:
    """A first run (fresh state) with the lane on or off: the emulator's stored records."""
    shutil.rmtree(workspace.root / "state", ignore_errors=True)
    workspace.extra_env = {} if lane else {"OMETRIA_SYNC_TYPED_LANE": "off"}
    async with emulator(rate=100) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        store = emu.app[STORE]
        while store.queue:
            await asyncio.sleep(0.02)
        tables = {rtype: dict(table) for rtype, table in store._tables.items()}
    assert result.code == 0, result.stderr
    return tables


async def test_the_lane_sends_the_very_records_the_usual_path_sends(
        workspace: Workspace, emulator: Any) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", _contacts(4000))
    jsonl(workspace.root / "data/orders.jsonl", _orders(1500))
    workspace.job(CONTACTS + ORDERS, rate_limit_per_second=100)
    fast = await _first_run(workspace, emulator, lane=True)
    usual = await _first_run(workspace, emulator, lane=False)
    assert len(fast["contact"]) == 4000 and len(fast["order"]) == 1500
    assert fast == usual


async def test_a_chunk_mixing_valid_and_invalid_lines_dead_letters_as_before(
        workspace: Workspace, emulator: Any) -> None:
    records = _contacts(4000)
    records[10] = {"id": "c10", "email": "not-an-email"}
    records[20] = "{not json"
    records[3000] = {"id": "c3000", "timestamp_subscribed": "2024-13-01T00:00:00Z"}
    jsonl(workspace.root / "data/contacts.jsonl", records)
    workspace.job(CONTACTS, rate_limit_per_second=100)
    async with emulator(rate=100) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        stats = emu.stats()
    assert result.code == 3, result.stderr
    assert stats["records_accepted"] == 3997
    dead = {d["line"]: d for d in workspace.dead_letters()}
    assert sorted(dead) == [11, 21, 3001]
    assert dead[11]["reasons"][0]["path"] == "email"
    assert dead[3001]["reasons"][0]["path"] == "timestamp_subscribed"
    assert "invalid JSON" in dead[21]["reasons"][0]["message"]
