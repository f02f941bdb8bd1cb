"""The in-memory filter of a stream's ledger keys (``pipeline/ledger_keys.py``): never a wrong
"not there", so the run queries the store only for keys that may be in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ometria_sync.pipeline import ledger_keys
from ometria_sync.pipeline.ledger import RecordLedger
from ometria_sync.pipeline.ledger_keys import KeyFilter
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.state import LedgerEntry, open_state


def test_every_key_added_is_held_and_others_are_not(monkeypatch: Any) -> None:
    monkeypatch.setattr(ledger_keys, "_MERGE_AT", 8)  # many merges of the new keys
    keys = KeyFilter()
    assert not keys and not keys.may_hold("c1")
    added = [f"shop/c{n}" for n in range(0, 300, 3)]
    keys.add_all(added)
    keys.add("shop/c0")  # again: held once
    assert len(keys) == len(added)
    assert all(keys.may_hold(k) for k in added)
    assert not any(keys.may_hold(f"shop/c{n}") for n in range(1, 300, 3))


async def test_a_run_queries_the_store_only_for_keys_its_ledger_may_hold(
        tmp_path: Path) -> None:
    """Keys read a page at a time at start, and those the run writes since, are looked up;
    a slice of keys the ledger cannot hold costs no query."""
    state = await open_state(f"sqlite:///{tmp_path / 'cp.db'}", job="j")
    try:
        state.put_ledger([LedgerEntry("contacts", f"c{n:04}", "bad", n, "r0", "t0", "r0", "t0")
                          for n in range(2500)])  # three pages of keys
        queried: list[list[str]] = []
        lookup = state.ledger_lookup

        async def counted(stream: str, keys: list[str]) -> list[LedgerEntry]:
            queried.append(keys)
            return await lookup(stream, keys)

        state.ledger_lookup = counted  # type: ignore[method-assign]
        ledger = await RecordLedger.open(state, "contacts", "r1", StreamStats(stream="contacts"))
        await ledger.look_up(["new1", "new2"])
        assert queried == []
        await ledger.look_up(["new1", "c2499", "c0000"])
        assert queried == [["c2499", "c0000"]]
        assert ledger.watch({"id": "c2499"}) != 0
        ledger.refused([], {"id": "new1"}, None, None)
        ledger.sync()
        await state.flush()
        await ledger.look_up(["new1"])  # committed: the store answers for it now
        assert queried[-1] == ["new1"]
    finally:
        await state.aclose()
