"""The two Omneo sources as the engine sees them (parts, chunks, positions), against the
stand-in: messy data dead-lettered with the object's id, aggregations fetched concurrently
within Omneo's own limits, transient answers retried, a refused token fatal for the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ometria_sync.errors import SourceError
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.sources.base import SourceConfig, SourceItem
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.client import OmneoAuthError
from tests.clock import max_in_window
from tests.sources.omneo import samples
from tests.sources.omneo.standin import OmneoData, StandIn

Omneo = Callable[..., Any]
FAST = {"rate_limit_per_second": 1000.0, "backoff_base": 0.01, "backoff_cap": 0.05}


async def read(config: SourceConfig, start: Any = None) -> list[SourceItem]:
    source = config.open()
    try:
        (part,) = await source.parts()
        items: list[SourceItem] = []
        async for chunk in part.read(start):
            assert chunk, "no empty chunks"
            items += chunk
        return items
    finally:
        await source.aclose()


def profiles_config(standin: StandIn, **settings: Any) -> OmneoProfilesConfig:
    return OmneoProfilesConfig(**({"base_url": standin.url, "page_size": 5} | FAST | settings))


def messy_profiles() -> OmneoData:
    data = OmneoData()
    for n in range(1, 13):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
        data.aggregations[samples.profile_id(n)] = samples.aggregations(n)
    data.aggregations[samples.profile_id(3)] = samples.aggregations(3, spend_12m="abc")
    del data.aggregations[samples.profile_id(4)]  # 404: never transacted
    data.aggregations[samples.profile_id(5)] = []  # PHP's empty array
    data.profiles[samples.profile_id(6)]["profile_type"] = "deleted"
    data.profiles[samples.profile_id(7)]["gender"] = ["male"]
    return data


async def test_profiles_become_contacts_and_the_mess_is_dead_lettered(omneo: Omneo) -> None:
    async with omneo(messy_profiles()) as standin:
        items = await read(profiles_config(standin))
    by_id = {(i.record or {}).get("id"): i for i in items}
    errors = {i.error for i in items if i.error}
    assert errors == {
        f'omneo profile {samples.profile_id(3)}: aggregations.spend_12m: not a number: "abc"',
        f'omneo profile {samples.profile_id(7)}: gender: expected text, got a list',
    }
    assert len(items) == 11  # profile 6 is deleted: not sent
    assert by_id[samples.profile_id(1)].record["properties"]["omneo_spend_12m"] == 2000.5
    assert set(by_id[samples.profile_id(4)].record["properties"]) == {
        "omneo_tier", "omneo_points", "omneo_rewards"}
    assert set(by_id[samples.profile_id(5)].record["properties"]) == {
        "omneo_tier", "omneo_points", "omneo_rewards"}
    dead = next(i for i in items if i.error and "spend_12m" in i.error)
    assert dead.record is None and b'"spend_12m":"2000.50"' not in (dead.raw or b"")
    assert b'"id":"' + samples.profile_id(3).encode() in (dead.raw or b"")
    positions = [i.position for i in items]
    assert positions == sorted(positions) and positions[-1][1] == samples.profile_id(12)
    assert not any(s.path.endswith(samples.profile_id(6) + "/aggregations")
                   for s in standin.seen)


async def test_aggregations_are_fetched_concurrently_within_the_limit(omneo: Omneo) -> None:
    data = OmneoData()
    for n in range(1, 41):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
        data.aggregations[samples.profile_id(n)] = samples.aggregations(n)
    async with omneo(data, latency=0.05) as standin:
        items = await read(profiles_config(standin, concurrency=6, page_size=10))
    assert len(items) == 40 and not any(i.error for i in items)
    assert 4 <= standin.max_in_flight <= 6


async def test_omneo_requests_keep_to_omneo_s_own_rate(
        omneo: Omneo, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20 requests/s no second holds more than 20 departures (the pacer's promise; arrival
    times also carry connection set-up), and the whole read takes as long as the rate says."""
    departures: list[float] = []
    acquire = Pacer.acquire

    async def recorded(self: Pacer) -> None:
        await acquire(self)
        departures.append(asyncio.get_running_loop().time())

    monkeypatch.setattr(Pacer, "acquire", recorded)
    data = OmneoData()
    for n in range(1, 26):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
    async with omneo(data) as standin:
        items = await read(profiles_config(standin, rate_limit_per_second=20.0, page_size=4))
    arrivals = [s.at for s in standin.seen]
    assert len(items) == 25 and len(departures) == len(arrivals) >= 30
    assert max_in_window(departures) <= 20
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / 20 * 0.95


async def test_429_and_500_answers_are_retried_and_nothing_is_lost(omneo: Omneo) -> None:
    async with omneo(messy_profiles()) as standin:
        standin.fail("profiles", 429, 500)
        standin.fail("aggregations", 503, 429, 500, 429)
        items = await read(profiles_config(standin))
    assert len(items) == 11
    statuses = [s.route for s in standin.seen]
    assert statuses.count("profiles") >= 5  # 2 refused + the walk


async def test_transient_answers_that_never_end_fail_the_stream(omneo: Omneo) -> None:
    async with omneo(messy_profiles()) as standin:
        standin.fail("aggregations", *[500] * 200)
        with pytest.raises(SourceError, match=r"still failing after 3 attempts: HTTP 500"):
            await read(profiles_config(standin, max_retries=2))


async def test_a_refused_token_fails_the_stream_at_once(omneo: Omneo) -> None:
    async with omneo(messy_profiles(), token="another-token") as standin:
        with pytest.raises(OmneoAuthError, match=r"refused the token \(HTTP 401\)"):
            await read(profiles_config(standin))
        assert len(standin.seen) == 1


async def test_aggregations_can_be_left_out(omneo: Omneo) -> None:
    async with omneo(messy_profiles()) as standin:
        items = await read(profiles_config(standin, aggregations=False))
    assert len(items) == 11 and not any(s.route == "aggregations" for s in standin.seen)
    assert sum(1 for i in items if i.error) == 1  # profile 7's gender; 3's aggregations unread


async def test_the_fingerprint_names_the_tenant_and_collection_not_the_token(omneo: Omneo
                                                                            ) -> None:
    async with omneo() as standin:
        config = profiles_config(standin)
        (part,) = await config.open().parts()
        (other,) = await profiles_config(standin, base_url=standin.url + "x").open().parts()
        (orders,) = await OmneoTransactionsConfig(base_url=standin.url).open().parts()
        assert part.label == f"omneo {standin.url}/profiles" and part.key == ""
        prints = {await p.fingerprint() for p in (part, other, orders)}
        assert len(prints) == 3 and all(p and p.startswith("omneo:") for p in prints)
        (again,) = await profiles_config(standin, token_env="ANOTHER").open().parts()
        assert await again.fingerprint() == await part.fingerprint()


# --- transactions ------------------------------------------------------------------------

def transactions_data() -> OmneoData:
    data = OmneoData()
    for n in (1, 2):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
    for n in range(1, 11):
        data.transactions[n] = samples.transaction(n, 1 if n % 2 else 2)
    data.transactions[4] = samples.transaction(4, None)  # a guest
    data.transactions[6] = samples.transaction(6, 9)  # profile gone: 404
    data.transactions[8] = samples.transaction(8, 2, total="-25.00")  # a return
    data.transactions[10] = samples.transaction(10, 3, profile={"email": "c@example.com"})
    return data


async def test_transactions_become_orders_with_their_customer(omneo: Omneo) -> None:
    async with omneo(transactions_data()) as standin:
        items = await read(OmneoTransactionsConfig(base_url=standin.url, page_size=3, **FAST))
    orders = {i.record["id"]: i.record for i in items if i.record}
    assert sorted(orders) == sorted(f"omneo-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10))
    assert orders["omneo-1"]["customer"] == {"id": samples.profile_id(1),
                                             "email": "ann1@example.com"}
    assert orders["omneo-2"]["customer"] == {"id": samples.profile_id(2),
                                             "email": "ann2@example.com"}
    assert "customer" not in orders["omneo-4"]
    assert orders["omneo-6"]["customer"] == {"id": samples.profile_id(9)}
    assert orders["omneo-10"]["customer"] == {"id": samples.profile_id(3),
                                              "email": "c@example.com"}
    (dead,) = [i for i in items if i.error]
    assert dead.error == ("omneo transaction 8: total: omneo_return_not_mapped: a negative "
                          "total (-25.0) is a return, which Ometria records on the original "
                          "order")
    assert [i.position[1] for i in items] == list(range(1, 11))
    # each profile looked up once, across pages; none for the guest or the embedded email
    looked_up = sorted(s.path.rsplit("/", 1)[1] for s in standin.requests("profile"))
    assert looked_up == [samples.profile_id(n) for n in (1, 2, 9)]


async def test_transactions_resume_and_send_the_include_parameter(omneo: Omneo) -> None:
    async with omneo(transactions_data()) as standin:
        config = OmneoTransactionsConfig(base_url=standin.url, page_size=3, include="profile",
                                         lookup_profiles=False, **FAST)
        first = await read(config)
        standin.seen.clear()
        rest = await read(config, first[6].position)
    assert [i.position[1] for i in rest] == [8, 9, 10]
    asked = standin.requests("transactions")
    assert all(s.query["include"] == "profile" for s in asked)
    assert asked[0].query["filter[updated_at]"] == "2024-05-01 08:00:07"
    assert standin.requests("profile") == []
