"""``on_missing = "deactivate"`` (issue 32) through the real CLI against the emulator, with
records of another integration already in it: night 1 sends 500 products, 1,000 orders and
2,000 contacts; night 2's exports lack 40, 60 and 30 of them, and exactly those are deactivated
(nothing else changes, the other integration's records are untouched); night 3's empty exports
deactivate nothing and exit 1; night 4 brings 5 products back, active; ``verify --all`` exits 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from ometria_sync.pipeline import hash64
from tests.e2e.conftest import Workspace, contact_records, jsonl

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

STREAMS = """
[[streams]]
name = "products"
record_type = "product"
source = { kind = "jsonl", path = "data/products.jsonl" }
on_missing = "deactivate"

[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
on_missing = "deactivate"

[[streams]]
name = "orders"
record_type = "order"
source = { kind = "jsonl", path = "data/orders.jsonl" }
on_missing = "deactivate"
"""
GONE_PRODUCTS = set(range(100, 140))
GONE_ORDERS = set(range(0, 1000, 50)) | set(range(501, 541))
GONE_CONTACTS = set(range(1000, 1030))
assert (len(GONE_PRODUCTS), len(GONE_ORDERS), len(GONE_CONTACTS)) == (40, 60, 30)


def products(skip: set[int] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [{"id": f"p{i}", "title": f"Product {i}", "price": 10.0 + i, "currency": "GBP",
             "url": f"https://shop.example.com/p{i}"} for i in range(500) if i not in skip]


def orders(skip: set[int] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [{"id": f"o{i}", "timestamp": "2026-11-01T10:00:00+00:00", "status": "complete",
             "currency": "GBP", "grand_total": 20.0,
             "customer": {"id": f"c{i}", "email": f"user{i}@example.com"},
             "lineitems": [{"product_id": f"p{i % 500}", "quantity": 2, "unit_price": 10.0,
                            "total": 20.0}]}
            for i in range(1000) if i not in skip]


def contacts(skip: set[int] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [dict(r, marketing_optin="EXPLICITLY_OPTEDIN") for i, r in
            enumerate(contact_records(2000)) if i not in skip]


FOREIGN = [
    *({"@type": "product", "id": f"x{i}", "title": "Theirs", "is_active": True}
      for i in range(5)),
    *({"@type": "order", "id": f"x{i}", "status": "complete", "is_valid": True,
       "timestamp": "2026-10-01T10:00:00+00:00"} for i in range(5)),
    # the same collection as ours, ids this job never delivered; and another collection
    *({"@type": "contact", "@collection": "shop", "id": f"x{i}",
       "email": f"x{i}@example.com", "marketing_optin": "EXPLICITLY_OPTEDIN"} for i in range(5)),
    *({"@type": "contact", "@collection": "crm", "id": f"c{i}",
       "email": f"crm{i}@example.com", "marketing_optin": "EXPLICITLY_OPTEDIN"}
      for i in range(1000, 1005)),
]


def export(root: Path, p: list[Any], c: list[Any], o: list[Any]) -> None:
    jsonl(root / "data/products.jsonl", p)
    jsonl(root / "data/contacts.jsonl", c)
    jsonl(root / "data/orders.jsonl", o)


async def settled(emu: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Every record the emulator imported, once its import queue is empty."""
    store = emu.app[STORE]
    while store.queue:
        await asyncio.sleep(0.02)
    records: dict[str, dict[str, dict[str, Any]]] = store.records
    return records


def changed(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
            ) -> dict[str, dict[str, Any]]:
    """Per key whose record differs: the fields that differ, as they are after."""
    diff: dict[str, dict[str, Any]] = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key, {}), after.get(key, {})
        fields = {f: new.get(f) for f in old.keys() | new.keys() if old.get(f) != new.get(f)}
        if fields:
            diff[key] = fields
    return diff


def stream_report(workspace: Workspace, stdout: str, name: str) -> dict[str, Any]:
    path = next(line.split(": ", 1)[1] for line in stdout.splitlines()
                if line.startswith("report: "))
    report = json.loads((workspace.root / path).read_text())
    stream: dict[str, Any] = next(s for s in report["streams"] if s["stream"] == name)
    return stream


async def test_four_nights_deactivate_exactly_what_left_and_bring_back_what_returns(
        tmp_path: Path, emulator: Emulator) -> None:
    workspace = Workspace(tmp_path)
    workspace.job(STREAMS)
    async with emulator(rate=50) as emu:
        store = emu.app[STORE]
        store.accept(FOREIGN)
        store.drain(len(FOREIGN))

        export(tmp_path, products(), contacts(), orders())
        night1 = await workspace.run("run", "job.toml", url=emu.url)
        assert night1.code == 0, night1.stderr
        after1 = await settled(emu)
        assert len(after1["product"]) == 505 and len(after1["order"]) == 1005
        assert len(after1["contact"]) == 2010
        assert workspace.dead_letters() == []

        export(tmp_path, products(GONE_PRODUCTS), contacts(GONE_CONTACTS), orders(GONE_ORDERS))
        plan = await workspace.run("plan", "job.toml", url=emu.url)
        assert plan.code == 0, plan.stdout + plan.stderr
        table = {line.split()[0]: line.split() for line in plan.stdout.splitlines()[2:5]}
        assert [table[s][5] for s in ("products", "contacts", "orders")] == ["40", "30", "60"]
        dry = await workspace.run("run", "job.toml", "--dry-run", url=emu.url)
        assert dry.code == 0, dry.stdout + dry.stderr
        folder = tmp_path / dry.stdout.split("payloads written to ")[1].split()[0] / "products"
        payloads = [r for f in sorted(folder.glob("*.json"))
                    for r in json.loads(f.read_text())]
        assert payloads == [{"@merge": True, "@type": "product", "id": f"p{i}",
                             "is_active": False} for i in sorted(
                                 GONE_PRODUCTS, key=lambda i: hash64(f"p{i}".encode()))]
        assert await settled(emu) == after1  # neither sent anything
        night2 = await workspace.run("run", "job.toml", url=emu.url)
        assert night2.code == 0, night2.stderr
        after2 = await settled(emu)
        assert changed(after1["product"], after2["product"]) == {
            f"p{i}": {"is_active": False} for i in GONE_PRODUCTS}
        assert changed(after1["order"], after2["order"]) == {
            f"o{i}": {"is_valid": False, "status": "cancelled"} for i in GONE_ORDERS}
        assert changed(after1["contact"], after2["contact"]) == {
            f"shop/c{i}": {"marketing_optin": "EXPLICITLY_OPTEDOUT"} for i in GONE_CONTACTS}
        # the whole order is kept: its lines and totals are what night 1 sent
        assert after2["order"]["o501"]["lineitems"] == orders()[501]["lineitems"]
        assert emu.stats()["max_requests_in_any_second"] <= 50  # deactivations paced too
        assert emu.stats()["requests_by_status"].get("429", 0) == 0
        counts = stream_report(workspace, night2.stdout, "orders")
        assert (counts["missing"], counts["deactivated"]) == (len(GONE_ORDERS), len(GONE_ORDERS))
        assert counts["read"] == 1000 - len(GONE_ORDERS)

        trace = await workspace.run("trace", "job.toml", "p100", url=emu.url)
        assert "products: deactivated in Ometria (on_missing)" in trace.stdout
        trace = await workspace.run("trace", "job.toml", "shop/c1", url=emu.url)
        assert "contacts: seen by the last complete read of the source" in trace.stdout

        export(tmp_path, [], [], [])
        night3 = await workspace.run("run", "job.toml", url=emu.url)
        assert night3.code == 1
        assert "the source is empty but 460 ids were delivered before" in night3.stdout + \
            night3.stderr
        assert "--allow-mass-delete" in night3.stdout + night3.stderr
        assert await settled(emu) == after2

        back = {100, 101, 102, 103, 104}
        export(tmp_path, products(GONE_PRODUCTS - back), contacts(GONE_CONTACTS),
               orders(GONE_ORDERS))
        night4 = await workspace.run("run", "job.toml", url=emu.url)
        assert night4.code == 0, night4.stderr
        after4 = await settled(emu)
        assert changed(after2["product"], after4["product"]) == {
            f"p{i}": {"is_active": True} for i in back}
        assert changed(after2["order"], after4["order"]) == {}
        assert changed(after2["contact"], after4["contact"]) == {}
        assert stream_report(workspace, night4.stdout, "products")["reactivated"] == 5

        verify = await workspace.run("verify", "job.toml", "--all", url=emu.url)
        assert verify.code == 0, verify.stdout + verify.stderr

        # verify checks the deactivations too: one reactivated behind the job's back is found
        store.accept([{"@type": "product", "id": "p110", "is_active": True}])
        store.drain(1)
        tampered = await workspace.run("verify", "job.toml", "--all", "--json", url=emu.url)
        assert tampered.code != 0
        found = json.loads(tampered.stdout)
        assert [(r["id"], r["status"], r["source"]) for r in found["records"]] == [
            ("p110", "different", "deactivated (on_missing)")]
