"""Omneo to Ometria with the real CLI: the Omneo stand-in (profiles, aggregations, transactions,
messy values, 429 and 500 answers) on one side, the Ometria emulator on the other. Contacts and
orders are read back from the emulator; a second run sends only what changed in Omneo."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import KEY, Workspace
from tests.sources.omneo import samples
from tests.sources.omneo.standin import TOKEN, OmneoData, StandIn, running_standin

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

STREAMS = """
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "omneo_profiles"
base_url = "{url}"
rate_limit_per_second = 200
concurrency = 8
page_size = 7
backoff_base = 0.01
backoff_cap = 0.05
properties = {{ rename = {{ spend_12m = "ltv_12m" }}, drop = ["store_join_code"] }}

[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "omneo_transactions"
base_url = "{url}"
rate_limit_per_second = 200
page_size = 6
backoff_base = 0.01
backoff_cap = 0.05
default_currency = "AUD"
"""
PROFILES = 30
TRANSACTIONS = 24


def omneo_data() -> OmneoData:
    data = OmneoData()
    for n in range(1, PROFILES + 1):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
        if n % 5:  # every fifth profile has no aggregations yet (404)
            data.aggregations[samples.profile_id(n)] = samples.aggregations(n)
    data.profiles[samples.profile_id(7)]["gender"] = {"value": "male"}  # dead-lettered
    data.aggregations[samples.profile_id(8)]["spend_all"] = "1,200"  # dead-lettered
    data.profiles[samples.profile_id(9)]["profile_type"] = "deleted"  # not sent
    data.profiles[samples.profile_id(11)]["first_name"] = "Unknown"
    for n in range(1, TRANSACTIONS + 1):
        data.transactions[n] = samples.transaction(n, n % 6 or None, updated=100 + n)
    data.transactions[5]["total"] = "-25.00"  # a return: dead-lettered
    data.transactions[6]["currency"] = None  # the profile's currency... it has none: default
    return data


async def drained(emu: Any) -> dict[str, Any]:
    for _ in range(200):  # the emulator imports asynchronously, like Ometria
        stats: dict[str, Any] = emu.stats()
        if stats["queue_depth"] == 0:
            return stats
        await asyncio.sleep(0.05)
    raise AssertionError("the emulator's import queue never drained")


async def read_back(emu: Any, path: str) -> Any:
    async with (aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as http,
                http.get(f"{emu.url}{path}") as answer):
        assert answer.status == 200, path
        return await answer.json()


async def run(workspace: Workspace, emu: Any) -> Any:
    return await workspace.run("run", "job.toml", url=emu.url)


def write_job(workspace: Workspace, standin: StandIn) -> Path:
    return workspace.job(STREAMS.format(url=standin.url), rate_limit_per_second=50)


async def test_profiles_and_transactions_arrive_and_a_rerun_sends_only_changes(
        workspace: Workspace, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNEO_TOKEN", TOKEN)
    async with running_standin(omneo_data()) as omneo, emulator(rate=50) as emu:
        omneo.fail("profiles", 429, 500)
        omneo.fail("aggregations", 500, 429, 503, 429)
        omneo.fail("transactions", 502)
        omneo.fail("profile", 429)
        write_job(workspace, omneo)
        first = await run(workspace, emu)
        stats = await drained(emu)
        contact = await read_back(emu, f"/contacts/{samples.profile_id(1)}")
        no_aggregations = await read_back(emu, f"/contacts/{samples.profile_id(10)}")
        unknown_name = await read_back(emu, f"/contacts/{samples.profile_id(11)}")
        # as imported, before the read view rewrites the timestamp in UTC, as Ometria does
        order = emu.app[STORE].get("order", "omneo-1")
        guest = await read_back(emu, "/orders/omneo-6")
        omneo_first = list(omneo.seen)

        assert first.code == 3, first.stdout + first.stderr  # some records dead-lettered
        assert TOKEN not in first.stdout + first.stderr
        # 30 profiles: 2 dead-lettered, 1 deleted; 24 transactions: 1 return dead-lettered
        assert stats["records_accepted"] == 27 + 23 and stats["import_errors"] == 0
        assert not any(omneo.faults.values())  # every scripted 429/5xx was answered
        assert [s.route for s in omneo_first].count("aggregations") == 28 + 4  # 4 refused

        assert contact == {  # read back: "@merge" was applied, not kept
            "@type": "contact", "@collection": "omneo",
            "id": samples.profile_id(1), "customer_id": samples.profile_id(1),
            "email": "ann1@example.com", "prefix": "Ms", "firstname": "Ann",
            "lastname": "Lee1", "gender": "f", "date_of_birth": "1990-02-01",
            "phone_number": "+61412300001", "country_id": "AU",
            "timestamp_acquired": "2021-01-27T00:00:00+00:00",
            "marketing_optin": "EXPLICITLY_OPTEDIN",
            "timestamp_subscribed": "2024-03-01T10:15:00+00:00",
            "channels": {"sms": {"allow_marketing": False}},
            "properties": {
                "omneo_tier": "gold", "omneo_points": 120.0, "omneo_rewards": 10.5,
                "omneo_ltv_12m": 2000.5, "omneo_spend_all": 2500.0, "omneo_atv_12m": 400.1,
                "omneo_atv_all": 312.5, "omneo_shop_count": 8, "omneo_discount_avg": 0.0,
                "omneo_first_spend_at": "2020-12-07T13:04:30+00:00",
                "omneo_last_spend_at": "2024-04-07T13:04:30+00:00",
                "omneo_frequency": "FH", "omneo_recency": "RC", "omneo_join": "J3",
                "omneo_channel": "CM", "omneo_store_join": "Omneo Store",
                "omneo_top_location": "Chadstone", "omneo_top_location_code": "2",
                "omneo_likely_country": "Australia", "omneo_likely_country_iso": "AU",
                "omneo_brands": "Nike;Acme"},
        }
        assert no_aggregations["properties"] == {"omneo_tier": "gold", "omneo_points": 120.0,
                                                 "omneo_rewards": 10.5}
        assert "firstname" not in unknown_name and unknown_name["lastname"] == "Lee11"
        assert order == {
            "@type": "order", "id": "omneo-1", "timestamp": "2024-06-15T14:32:00+10:00",
            "grand_total": 25.0, "currency": "AUD", "status": "complete", "is_valid": True,
            "tax": 1.14, "discount": -2.5, "channel": "instore", "store": "CHD",
            "customer": {"id": samples.profile_id(1), "email": "ann1@example.com"},
            "properties": {"omneo_external_id": "R1", "omneo_receipt_ref": "RC1",
                           "omneo_type": "sale", "omneo_tags": "vip;sale",
                           "omneo_store_name": "Chadstone"},
            "lineitems": [{"quantity": 2, "unit_price": 12.5, "subtotal": 25.0, "total": 25.0,
                           "product_id": "V1", "sku": "1012311", "tax": 1.14,
                           "discount": -2.5,
                           "properties": {"omneo_name": "Shirt 1",
                                          "omneo_department": "Menswear",
                                          "omneo_item_external_id": "L1"}}],
        }
        assert "customer" not in guest and guest["currency"] == "AUD"

        dead = {d["reasons"][0]["message"] for d in workspace.dead_letters()}
        assert dead == {
            f"omneo profile {samples.profile_id(7)}: gender: expected text, got an object",
            f'omneo profile {samples.profile_id(8)}: aggregations.spend_all: not a number: '
            '"1,200"',
            "omneo transaction 5: total: omneo_return_not_mapped: a negative total (-25.0) is "
            "a return, which Ometria records on the original order",
        }

        # Omneo changes: two profiles (one of them only in its aggregations' figures, which
        # Omneo recalculates on a new transaction), one transaction voided, one new
        omneo.seen.clear()
        omneo.data.profiles[samples.profile_id(3)] |= {"email": "new3@example.com",
                                                       "updated_at": samples.stamp(500)}
        omneo.data.profiles[samples.profile_id(12)]["updated_at"] = samples.stamp(501)
        omneo.data.aggregations[samples.profile_id(12)]["spend_12m"] = "2100.00"
        omneo.data.transactions[2] |= {"is_void": True, "updated_at": samples.stamp(600)}
        omneo.data.transactions[25] = samples.transaction(25, 1, updated=601)
        second = await run(workspace, emu)
        after = await drained(emu)
        changed = await read_back(emu, f"/contacts/{samples.profile_id(3)}")
        figures = await read_back(emu, f"/contacts/{samples.profile_id(12)}")
        voided = await read_back(emu, "/orders/omneo-2")
        new = await read_back(emu, "/orders/omneo-25")

    assert second.code == 0, second.stdout + second.stderr
    assert after["records_accepted"] - stats["records_accepted"] == 4
    assert changed["email"] == "new3@example.com"
    assert figures["properties"]["omneo_ltv_12m"] == 2100.0
    assert (voided["status"], voided["is_valid"]) == ("cancelled", False)
    assert new["customer"]["id"] == samples.profile_id(1)
    lists = [s.query for s in omneo.seen if s.route in ("profiles", "transactions")
             and s.query.get("page[size]") != "1"]  # not the preflight's one-row requests
    assert lists[0]["filter[updated_at]"] == samples.stamp(PROFILES)
    assert sorted(s.path.split("/")[-2] for s in omneo.seen if s.route == "aggregations") == [
        samples.profile_id(3), samples.profile_id(12)]


async def test_a_refused_omneo_token_fails_the_stream_and_is_never_printed(
        workspace: Workspace, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "omneo-wrong-token-51d2"
    monkeypatch.setenv("OMNEO_TOKEN", wrong)
    async with running_standin(omneo_data()) as omneo, emulator(rate=50) as emu:
        write_job(workspace, omneo)
        result = await run(workspace, emu)
        stats = emu.stats()
    assert result.code == 1
    assert "Omneo refused the token (HTTP 401)" in result.stdout + result.stderr
    assert wrong not in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert stats["records_accepted"] == 0
    # the preflight's one request stops the run before any stream starts
    assert len(omneo.requests("profiles")) == 1 and len(omneo.requests("transactions")) == 0
