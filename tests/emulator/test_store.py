"""The emulator's store (save/load, merge, keys), its sliding window, and ``--store``
persistence through ``running_emulator``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ometria_sync.emulator import EmulatorOptions, create_app, running_emulator
from ometria_sync.emulator.behaviour import STORE
from ometria_sync.emulator.store import EmulatorStore, SlidingWindow, merge, record_key
from ometria_sync.schemas import MAX_RECORD_BYTES
from tests.emulator.support import AUTH, KEY, contact, order, product


def _filled_store() -> tuple[EmulatorStore, list[str]]:
    store = EmulatorStore(100)
    ids = [
        store.accept([contact("c1", email="ann@example.com", properties={"tier": "gold"}),
                      contact("c1", "crm", email="crm@example.com"),
                      contact("c2", email="bad")])[0],
        store.accept([order("o1", customer={"id": "u1"}), order("o2", currency="ZZZ")])[0],
        store.accept([product("p1", properties={"pad": "x" * MAX_RECORD_BYTES}),
                      product("p2", is_in_stock=False)])[0],
    ]
    store.drain(100)
    return store, ids


def test_store_keeps_records_encoded_and_decodes_copies() -> None:
    store, _ = _filled_store()
    records = store.records
    assert set(records) == {"contact", "order", "product"}
    assert records["contact"] == {
        "shop/c1": contact("c1", email="ann@example.com", properties={"tier": "gold"}),
        "crm/c1": contact("c1", "crm", email="crm@example.com")}
    assert records["order"] == {"o1": order("o1", customer={"id": "u1"})}
    assert records["product"] == {"p2": product("p2", is_in_stock=False)}
    # what callers get is a decoded copy: changing it changes nothing stored
    records["order"]["o1"]["status"] = "tampered"
    fetched = store.get("order", "o1")
    assert fetched is not None
    fetched["currency"] = "EUR"
    assert store.records["order"]["o1"]["status"] == "complete"
    assert store.get("order", "o1") == order("o1", customer={"id": "u1"})
    assert store.get("order", "o9") is None
    assert store.find_contact("c1") == records["contact"]["shop/c1"]
    assert store.find_contact("c9") is None


def test_store_errors_for_oversize_and_invalid_records() -> None:
    store, (first, second, third) = _filled_store()
    assert [(e["record_id"], e["error_path"], e["request_id"]) for e in store.errors] == [
        ("p1", "root", third),  # rejected at once, before the queued ones were imported
        ("c2", "root > email", first),
        ("o2", "root > currency", second),
    ]
    assert store.errors[0]["error_message"] == "Payload invalid: Record is too large."
    assert (store.stats.accepted, store.stats.rejected) == (6, 1)
    assert (store.stats.imported, store.stats.import_errors) == (4, 2)


def test_save_then_load_gives_back_the_same_records_and_errors(tmp_path: Path) -> None:
    store, _ = _filled_store()
    path = tmp_path / "emulator.json"
    store.save(str(path))
    assert path.exists()
    assert not (tmp_path / "emulator.json.tmp").exists()
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {"records", "errors"}
    assert on_disk["records"]["order"]["o1"]["customer"] == {"id": "u1"}

    again = EmulatorStore(100)
    again.load(str(path))
    assert again.records == store.records
    assert list(again.errors) == list(store.errors)
    assert again.find_contact("c1") == contact("c1", email="ann@example.com",
                                               properties={"tier": "gold"})
    # the loaded store goes on merging into what it loaded
    again.accept([{"@type": "contact", "@collection": "shop", "id": "c1", "email": None}])
    again.drain(1)
    assert again.records["contact"]["shop/c1"] == contact("c1", properties={"tier": "gold"})


def test_load_of_a_missing_file_leaves_the_store_empty(tmp_path: Path) -> None:
    store = EmulatorStore(10)
    store.load(str(tmp_path / "absent.json"))
    assert store.records == {}
    assert list(store.errors) == []


def test_loaded_errors_are_capped_at_100(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    errors = [{"error_message": "not a valid value", "error_path": f"root > f{i}"}
              for i in range(150)]
    path.write_text(json.dumps({"records": {}, "errors": errors}))
    store = EmulatorStore(10)
    store.load(str(path))
    assert list(store.errors) == errors[50:]


def test_create_app_loads_the_store_file(tmp_path: Path) -> None:
    store, _ = _filled_store()
    path = tmp_path / "emulator.json"
    store.save(str(path))
    app = create_app(EmulatorOptions(store=str(path)))
    assert app[STORE].records == store.records
    assert list(app[STORE].errors) == list(store.errors)


async def test_running_emulator_persists_to_its_store_file(tmp_path: Path) -> None:
    path = tmp_path / "persisted.json"
    options = EmulatorOptions(api_key=KEY, port=0, store=str(path), drain_per_second=0.0)
    async with running_emulator(options) as emu, aiohttp.ClientSession(headers=AUTH) as http:
        assert emu.url == f"http://127.0.0.1:{emu.port}/v2"
        assert emu.port > 0
        async with http.post(f"{emu.url}/push", json=[contact("c1", email="a@example.com"),
                                                      contact("c2", email="bad")]) as answer:
            assert answer.status == 202
        emu.app[STORE].drain(10)
        assert emu.stats()["records_imported"] == 1
    assert path.exists()

    async with running_emulator(options) as emu, aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{emu.url}/contacts/c1") as answer:
            assert answer.status == 200
            assert await answer.json() == contact("c1", email="a@example.com")
        async with http.get(f"{emu.url}/push/_errors") as answer:
            errors = await answer.json()
        assert [(e["record_id"], e["error_path"]) for e in errors] == [("c2", "root > email")]
        # stats start afresh; only the data is kept
        assert emu.stats()["records_imported"] == 0


async def test_running_emulator_without_store_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with (running_emulator(EmulatorOptions(api_key=KEY, port=0)) as emu,
                aiohttp.ClientSession(headers=AUTH) as http,
                http.post(f"{emu.url}/push", json=[contact("c1")]) as answer):
        assert answer.status == 202
    assert list(tmp_path.iterdir()) == []


# --- merge and keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "incoming", "expected"), [
    (None, {"id": "1", "a": 1}, {"id": "1", "a": 1}),
    (None, {"id": "1", "a": None}, {"id": "1"}),
    ({"id": "1", "a": 1, "b": 2}, {"id": "1", "b": 3}, {"id": "1", "a": 1, "b": 3}),
    ({"id": "1", "a": 1, "b": 2}, {"id": "1", "a": None}, {"id": "1", "b": 2}),
    ({"id": "1", "o": {"x": 1, "y": 2}}, {"o": {"x": 5}}, {"id": "1", "o": {"x": 5}}),
    ({"id": "1", "a": ""}, {"a": ""}, {"id": "1", "a": ""}),
    # @merge with one field: that field changes, nothing else; the control key is not stored
    ({"id": "p", "title": "T", "is_active": True}, {"id": "p", "is_active": False, "@merge": True},
     {"id": "p", "title": "T", "is_active": False}),
    # lists: added and removed, never stored as control keys
    ({"id": "c", "lists": ["7"]}, {"id": "c", "@add_to_lists": [9, 8], "@merge": True},
     {"id": "c", "lists": ["7", "8", "9"]}),
    ({"id": "c", "lists": ["7", "8"]}, {"id": "c", "@remove_from_lists": ["7"], "@merge": True},
     {"id": "c", "lists": ["8"]}),
])
def test_merge(stored: dict[str, Any] | None, incoming: dict[str, Any],
               expected: dict[str, Any]) -> None:
    before = None if stored is None else dict(stored)
    assert merge(stored, incoming) == expected
    assert stored == before  # the stored record is not modified in place


@pytest.mark.parametrize(("record", "key"), [
    (contact("c1", "shop"), ("contact", "shop/c1")),
    ({"@type": "contact", "id": "c1"}, ("contact", "default/c1")),
    ({"@type": "contact", "@collection": "", "id": "c1"}, ("contact", "default/c1")),
    (order("o1", **{"@collection": "ignored"}), ("order", "o1")),
    (product("p1"), ("product", "p1")),
    ({"@type": "custom_event", "id": "e1"}, ("custom_event", "e1")),
])
def test_record_key(record: dict[str, Any], key: tuple[str, str]) -> None:
    assert record_key(record) == key


# --- the sliding window -----------------------------------------------------------------------


def test_sliding_window_counts_the_last_second() -> None:
    window = SlidingWindow()
    assert [window.add(t) for t in (0.0, 0.1, 0.2, 0.3)] == [1, 2, 3, 4]
    assert window.add(0.9) == 5
    # an arrival exactly one second later no longer shares the window with the first
    assert window.add(1.0) == 5
    assert window.add(1.25) == 4  # 0.1 and 0.2 have left: 0.3, 0.9, 1.0, 1.25
    assert window.peak == 5
    assert window.count(1.25) == 4
    assert window.count(2.0) == 1  # only 1.25 is within (1.0, 2.0]
    assert window.add(5.0) == 1
    assert window.peak == 5


def test_sliding_window_span() -> None:
    window = SlidingWindow(span=0.5)
    assert [window.add(t) for t in (0.0, 0.25, 0.5, 0.625, 1.0, 1.0)] == [1, 2, 2, 3, 2, 3]
    assert window.peak == 3
