"""Omneo read again by id (``OmneoPart.read_ids``), for the ledger's resends: a profile or a
transaction as Omneo holds it now, converted as a page's rows are; an id Omneo no longer has,
or one that is not this collection's, gives nothing (the payload kept goes instead)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.pipeline.ledger import RecordLedger
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.sources.base import SourceConfig
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.state import LedgerEntry, open_state
from tests.sources.omneo import samples
from tests.sources.omneo.standin import OmneoData
from tests.sources.omneo.test_sources import FAST, transactions_data

Omneo = Callable[..., Any]


async def read_ids(config: SourceConfig, ids: list[str]) -> list[dict[str, Any]] | None:
    source = config.open()
    try:
        (part,) = await source.parts()
        items = await part.read_ids(ids)  # type: ignore[attr-defined]
        return None if items is None else [i.record for i in items]
    finally:
        await source.aclose()


def profiles() -> OmneoData:
    data = OmneoData()
    for n in (1, 2):
        data.profiles[samples.profile_id(n)] = samples.profile(n)
        data.aggregations[samples.profile_id(n)] = samples.aggregations(n)
    return data


async def test_a_profile_is_read_again_by_its_id_with_its_aggregations(omneo: Omneo) -> None:
    data = profiles()
    data.profiles[samples.profile_id(2)]["first_name"] = "Changed"
    async with omneo(data) as standin:
        config = OmneoProfilesConfig(base_url=standin.url, **FAST)
        found = await read_ids(config, [samples.profile_id(2), f"omneo/{samples.profile_id(2)}",
                                        "gone-profile"])
        paths = sorted(s.path for s in standin.seen)
    assert found is not None and [r["id"] for r in found] == [samples.profile_id(2)]
    assert found[0]["firstname"] == "Changed" and "omneo_tier" in found[0]["properties"]
    # one look-up per profile id (the collection/id key is not asked for) and its aggregations
    assert paths == sorted([f"/api/v3/profiles/{samples.profile_id(2)}",
                            f"/api/v3/profiles/{samples.profile_id(2)}/aggregations",
                            "/api/v3/profiles/gone-profile"])


async def test_a_transaction_is_read_again_by_the_number_after_the_prefix(
        omneo: Omneo) -> None:
    async with omneo(transactions_data()) as standin:
        config = OmneoTransactionsConfig(base_url=standin.url, **FAST)
        found = await read_ids(config, ["omneo-3", "omneo-77", "other-3", "omneo-x"])
        asked = [s.path for s in standin.requests("transaction")]
    assert found is not None and [r["id"] for r in found] == ["omneo-3"]
    assert found[0]["customer"]["email"] == "ann1@example.com"
    assert sorted(asked) == ["/api/v3/transactions/3", "/api/v3/transactions/77"]


async def test_the_ledger_resends_omneo_records_as_omneo_holds_them_now(
        omneo: Omneo, tmp_path: Path) -> None:
    """Kept payloads of c1 and c2: the ledger's part reads them again from Omneo; one that
    Omneo no longer has goes as kept."""
    state = await open_state(f"sqlite:///{tmp_path / 'cp.db'}", job="j")
    kept = {"@type": "contact", "@collection": "omneo", "id": samples.profile_id(1),
            "firstname": "Old"}
    gone = {**kept, "id": "gone-profile"}
    state.put_ledger([LedgerEntry("contacts", f"omneo/{r['id']}", "retries ran out", 1, "r1",
                                  "t1", "r1", "t1", 1, "undelivered",
                                  msgspec.json.encode(r).decode()) for r in (kept, gone)])
    data = profiles()
    try:
        async with omneo(data) as standin:
            source = OmneoProfilesConfig(base_url=standin.url, **FAST).open()
            stats = StreamStats(stream="contacts")
            ledger = await RecordLedger.open(state, "contacts", "r2", stats)
            part = ledger.resend_part(await source.parts())
            assert part is not None
            resent = [i.record async for chunk in part.read(None) for i in chunk]
            await source.aclose()
    finally:
        await state.aclose()
    by_id = {r["id"]: r for r in resent}
    assert by_id[samples.profile_id(1)]["firstname"] == data.profiles[
        samples.profile_id(1)]["first_name"]
    assert by_id["gone-profile"] == gone
    assert (stats.resent, stats.reread) == (2, 1)
