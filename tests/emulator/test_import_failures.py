"""Imports that fail the way Ometria's do (``import_failure_rate``, ``silent_share``), and read
views that answer as the seed documents describe (UTC timestamps, lower-case emails,
``updateSince``, the Profile object's dates and identities)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from ometria_sync.cli import build_parser
from ometria_sync.emulator.store import IMPORT_FAILED
from tests.emulator.support import Emu, EmuFactory, contact, order


async def _import(emu: Emu, records: list[dict[str, Any]]) -> list[str]:
    request_ids = []
    for start in range(0, len(records), 100):
        response = await emu.push(records[start:start + 100])
        assert response.status == 202
        body = await response.json()
        assert body["accepted"] == len(records[start:start + 100])
        request_ids.append(body["request_id"])
    emu.drain()
    return request_ids


async def test_failed_imports_are_accepted_then_lost_some_listed_some_silent(
        emulator: EmuFactory) -> None:
    emu = await emulator(import_failure_rate=0.1, silent_share=0.5)
    await _import(emu, [order(f"o{i}") for i in range(600)])
    lost = emu.store.lost
    stats = await emu.stats()
    assert 30 <= len(lost) <= 90  # 10% of 600, give or take
    assert stats["import_failures"] == len(lost)
    assert stats["records_imported"] == 600 - len(lost)
    silent = [x for x in lost if x["silent"]]
    listed = [x for x in lost if not x["silent"]]
    assert stats["import_failures_silent"] == len(silent)
    assert 0.25 <= len(silent) / len(lost) <= 0.75
    errors = await emu.json("/v2/push/_errors")
    # listed failures carry Ometria's error shape; silent ones leave no trace at all
    assert sorted(e["record_id"] for e in errors) == sorted(x["id"] for x in listed)
    assert {(e["error_message"], e["error_path"], e["record_type"]) for e in errors} == {
        (IMPORT_FAILED, "root", "order")}
    for gone in lost:
        assert (await emu.get(f"/v2/orders/{gone['id']}")).status == 404
    listed_ids = {o["id"] for o in await emu.json("/v2/orders", limit=250)}
    listed_ids |= {o["id"] for o in await emu.json("/v2/orders", limit=250, offset=250)}
    listed_ids |= {o["id"] for o in await emu.json("/v2/orders", limit=250, offset=500)}
    assert listed_ids == {f"o{i}" for i in range(600)} - {x["id"] for x in lost}


async def test_no_failures_without_the_option(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [order(f"o{i}") for i in range(300)])
    assert emu.store.lost == []
    assert (await emu.stats())["records_imported"] == 300


async def test_all_silent_and_none_silent(emulator: EmuFactory) -> None:
    quiet = await emulator(import_failure_rate=1.0, silent_share=1.0)
    await _import(quiet, [order("o1"), order("o2")])
    assert await quiet.json("/v2/push/_errors") == []
    assert (await quiet.get("/v2/orders/o1")).status == 404
    loud = await emulator(import_failure_rate=1.0, silent_share=0.0)
    await _import(loud, [contact("c1", email="a@example.com")])
    [error] = await loud.json("/v2/push/_errors")
    assert error["record_id"] == "c1"
    assert error["error_message"] == IMPORT_FAILED


async def test_a_later_version_that_fails_leaves_the_earlier_one(emulator: EmuFactory) -> None:
    emu = await emulator(import_failure_rate=0.0)
    await _import(emu, [order("o1", grand_total=10.0)])
    emu.store.import_failure_rate = 1.0
    await _import(emu, [order("o1", grand_total=99.0)])
    assert (await emu.json("/v2/orders/o1"))["grand_total"] == 10.0


async def test_orders_read_back_normalised_as_ometria_stores_them(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [order("o1", timestamp="2024-03-01T12:15:00+02:00",
                              customer={"id": "u1", "email": "Ann@Example.COM"},
                              lineitems=[{"sku": "s1", "quantity": 2, "unit_price": 1.0,
                                          "subtotal": 2.0},
                                         {"sku": "s2", "quantity": 3, "unit_price": 1.0,
                                          "subtotal": 3.0}])])
    stored = await emu.json("/v2/orders/o1")
    assert stored["timestamp"] == "2024-03-01T10:15:00+00:00"
    assert stored["customer"] == {"id": "u1", "email": "ann@example.com"}
    assert stored["total_unit_quantity"] == 5
    assert await emu.json("/v2/orders") == [stored]


async def test_profile_dates_identities_and_update_since(emulator: EmuFactory) -> None:
    emu = await emulator()
    await _import(emu, [contact("c1", customer_id="u1", email="Ann@Example.com",
                                timestamp_acquired="2024-01-01T01:00:00+01:00",
                                timestamp_subscribed="2024-01-02T00:00:00Z",
                                marketing_optin="EXPLICITLY_OPTEDIN")])
    middle = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(0.01)
    await _import(emu, [contact("c2", email="bob@example.com")])
    ann = await emu.json("/v2/profiles", email="ann@example.com")
    assert ann["dates"]["acquired"] == "2024-01-01T00:00:00+00:00"
    assert ann["dates"]["marketing_optin"] == "2024-01-02T00:00:00+00:00"
    assert ann["identities"] == [{"id": "u1", "type": "customer_id"},
                                 {"id": "ann@example.com", "type": "email"}]
    assert [p["email"] for p in await emu.json("/v2/profiles", limit=250)] == [
        "ann@example.com", "bob@example.com"]
    assert [p["email"] for p in await emu.json("/v2/profiles", updateSince=middle)] == [
        "bob@example.com"]
    assert len(await emu.json("/v2/profiles", updateSince="2000-01-01")) == 2
    bad = await emu.get("/v2/profiles", updateSince="yesterday")
    assert bad.status == 400


@pytest.mark.parametrize("value", ["-0.1", "1.5", "x"])
def test_cli_refuses_a_failure_rate_outside_0_1(value: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["emulator", "--import-failure-rate", value])


def test_cli_passes_the_failure_options() -> None:
    args = build_parser().parse_args(["emulator", "--import-failure-rate", "0.02",
                                      "--silent-share", "0.25"])
    assert (args.import_failure_rate, args.silent_share) == (0.02, 0.25)
