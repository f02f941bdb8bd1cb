"""The ledger, run side (``pipeline/ledger.py``): which refusals are new and which known, what
leaves the ledger on an acknowledgement, and in which order, against a real SQLite state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.ledger import (
    RecordLedger,
    content_hash,
    leaves_when_verified,
    record_key,
    verify_finding,
)
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.transform import Transform
from ometria_sync.schemas import Problem
from ometria_sync.sources import SourceItem
from ometria_sync.state import StateStore, open_state

BAD = [Problem("email", "must be an email address")]


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    store = await open_state(f"sqlite:///{tmp_path / 'cp.db'}", job="j")
    yield store
    await store.aclose()


async def night(state: StateStore, run_id: str) -> tuple[RecordLedger, StreamStats]:
    stats = StreamStats(stream="contacts")
    ledger = await RecordLedger.open(state, "contacts", run_id, stats,
                                     now=lambda: f"time-of-{run_id}")
    # the batcher looks a slice's keys up before it notes refusals and watches records
    await ledger.look_up(["shop/c1", "shop/c2", "shop/c9"])
    return ledger, stats


def sent(record: dict[str, Any], tick: int = 0) -> BatchRecord:
    return BatchRecord(msgspec.json.encode(record), None, [0, 0],
                       hash((record.get("@collection"), record.get("id"))), ledger_tick=tick)


def contact(rid: str, email: str = "bad") -> dict[str, Any]:
    return {"@collection": "shop", "id": rid, "email": email}


async def test_the_same_content_refused_again_is_known_new_content_is_new(
        state: StateStore) -> None:
    ledger, stats = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.refused(BAD, contact("c2"), None, [20, 2])
    ledger.sync()
    assert (stats.refused_new, stats.refused_known) == (2, 0)
    ledger, stats = await night(state, "r2")
    assert ledger.refused(BAD, contact("c1"), None, [10, 1]) == "time-of-r1"
    assert ledger.refused(BAD, contact("c2", "still bad"), None, [20, 2]) is None
    ledger.sync()
    assert (stats.refused_new, stats.refused_known) == (1, 1)
    assert stats.refused_known_since == "time-of-r1"
    rows = {r.key: r for r in await state.ledger()}
    assert (rows["shop/c1"].first_run, rows["shop/c1"].last_run, rows["shop/c1"].attempts) == (
        "r1", "r2", 2)
    assert (rows["shop/c2"].first_run, rows["shop/c2"].attempts) == ("r2", 1)


async def test_a_repeat_within_one_run_is_not_known_and_counts_one_attempt(
        state: StateStore) -> None:
    ledger, stats = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.refused(BAD, contact("c1"), None, [30, 3])
    ledger.sync()
    assert (stats.refused_new, stats.refused_known) == (2, 0)
    (row,) = await state.ledger()
    assert row.attempts == 1


async def test_an_acknowledged_record_leaves_the_ledger(state: StateStore) -> None:
    ledger, _ = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.refused(BAD, contact("c2"), None, [20, 2])
    ledger.sync()
    ledger, stats = await night(state, "r2")
    assert ledger.watch(contact("c9", "ok@example.com")) == 0  # not in the ledger
    tick = ledger.watch(contact("c1", "ok@example.com"))
    assert tick
    ledger.acknowledged([sent(contact("c1", "ok@example.com"), tick)])
    assert [r.key for r in await state.ledger()] == ["shop/c2"]
    assert stats.ledger_left == 1


async def test_a_later_version_refused_after_the_acknowledged_one_was_read_stays(
        state: StateStore) -> None:
    """v1 of c1 (fixed) is read and sent; v2 (bad again) is read and refused while v1 is in
    flight; v1's acknowledgement must not drop v2's refusal (version order)."""
    ledger, _ = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.sync()
    ledger, _ = await night(state, "r2")
    tick = ledger.watch(contact("c1", "ok@example.com"))
    ledger.refused(BAD, contact("c1", "bad again"), None, [40, 4])
    ledger.acknowledged([sent(contact("c1", "ok@example.com"), tick)])
    ledger.sync()
    (row,) = await state.ledger()
    assert (row.key, row.first_run) == ("shop/c1", "r2")


async def test_a_refusal_read_before_the_acknowledged_version_is_dropped(
        state: StateStore) -> None:
    ledger, _ = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])  # a new key: now watched
    tick = ledger.watch(contact("c1", "ok@example.com"))
    ledger.acknowledged([sent(contact("c1", "ok@example.com"), tick)])
    ledger.sync()
    assert await state.ledger() == []


def test_keys_and_hashes() -> None:
    assert record_key({"id": "o1"}, [5, 1]) == "o1"
    assert record_key({"id": "c1", "@collection": "shop"}, None) == "shop/c1"
    assert record_key({"id": "has space"}, [5, 1]) == "position [5,1]"
    assert record_key(None, ("2024-01-01", 7)) == 'position ["2024-01-01",7]'
    # a row the source refused but whose id it read (SourceItem.id): keyed by that id
    assert record_key(None, [5, 1], "o1") == "o1"
    assert record_key(None, [5, 1], "has space") == "position [5,1]"
    assert content_hash({"a": 1, "b": 2}, None) == content_hash({"b": 2, "a": 1}, None)
    assert content_hash(None, b"{not json") == content_hash(None, "{not json")
    assert content_hash(None, b"{not json") != content_hash(None, b"{not json!")


async def test_undelivered_records_are_resent_until_acknowledged_then_parked(
        state: StateStore) -> None:
    for n, run in enumerate(["r1", "r2", "r3"], 1):
        stats = StreamStats(stream="contacts")
        ledger = await RecordLedger.open(state, "contacts", run, stats,
                                         now=lambda run=run: f"time-of-{run}", max_attempts=3)
        part = ledger.resend_part([])
        resent = [i.record async for chunk in part.read(None) for i in chunk] if part else []
        assert resent == ([] if n == 1 else [contact("c1", "v1")])
        ledger.undelivered([sent(contact("c1", "v1"))], "retries ran out")
        ledger.sync()
        (row,) = await state.ledger()
        assert (row.kind, row.attempts, row.first_run) == (
            "parked" if n == 3 else "undelivered", n, "r1")
        assert stats.parked == (1 if n == 3 else 0)
    ledger, stats = await night(state, "r4")
    assert ledger.resend_part([]) is None  # parked: no longer resent


async def test_a_later_version_acknowledged_after_an_undelivered_one_drops_its_row(
        state: StateStore) -> None:
    """v1 not confirmed, v2 (read later, sent after v1 settled) acknowledged: nothing is left
    to resend, and above all not v1's stale payload."""
    ledger, _ = await night(state, "r1")
    ledger.undelivered([sent(contact("c1", "v1"))], "skipped")
    ledger.acknowledged([sent(contact("c1", "v2"))])  # not watched: by its order key
    ledger.sync()
    assert await state.ledger() == []


async def test_an_ometria_refusal_is_not_also_noted_undelivered(state: StateStore) -> None:
    ledger, _ = await night(state, "r1")
    record = {**contact("c1"), "@type": "contact"}
    ledger.refused([Problem("", "refused by Ometria (HTTP 400)")], record, None, [5, 1],
                   by_ometria=True)
    ledger.undelivered([sent(record)], "skipped")
    ledger.sync()
    (row,) = await state.ledger()
    assert (row.kind, row.payload) == ("refused", None)


class _Rereads:
    """A source part that reads c1 again (changed since), and nothing else."""

    async def read_ids(self, ids: list[str]) -> list[SourceItem] | None:
        return [SourceItem(contact("c1", "v2"), {"after": None})]


async def test_the_transform_applies_to_rows_read_again_never_to_a_kept_payload(
        state: StateStore) -> None:
    """A kept payload is what was sent: already the transform's result (the batcher applies
    none to this part); a row read again from the source is raw, so the part applies it."""
    ledger, _ = await night(state, "r1")
    marked = {"@collection": "shop", "id": "c2", "email": "v1", "by": "transform"}
    ledger.undelivered([sent(contact("c1", "v1")), sent(marked)], "retries ran out")
    ledger.sync()
    ledger, stats = await night(state, "r2")

    def mark(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "by": "transform"}

    part = ledger.resend_part([_Rereads()], Transform("t:mark", mark))
    assert part is not None
    resent = [i.record async for chunk in part.read(None) for i in chunk]
    assert sorted(resent, key=lambda r: r["id"]) == [{**contact("c1", "v2"), "by": "transform"},
                                                     marked]
    assert (stats.resent, stats.reread) == (2, 1)


async def test_the_store_answers_for_rows_the_run_no_longer_holds(state: StateStore) -> None:
    """Once a refusal's row is committed the run lets go of it (memory stays flat however
    many records a night refuses) and reads it back by key: a repeat in the same run still
    counts one attempt, and the next run still knows the content."""
    ledger, stats = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.sync()
    await state.flush()
    await ledger.look_up(["shop/c1"])
    assert ledger._overlay == {}  # the run holds no row of the store
    ledger.refused(BAD, contact("c1"), None, [30, 3])
    ledger.sync()
    (row,) = await state.ledger()
    assert (row.first_run, row.attempts, stats.refused_new) == ("r1", 1, 2)
    ledger, stats = await night(state, "r2")
    assert ledger.refused(BAD, contact("c1"), None, [10, 1]) == "time-of-r1"
    assert ledger.watch(contact("c2", "ok@example.com")) == 0


async def test_a_dropped_row_is_not_dropped_twice_by_a_later_version(
        state: StateStore) -> None:
    """Two fixed versions of c1 in flight: the first acknowledgement takes it out of the
    ledger, the second finds nothing left to take (counted once)."""
    ledger, _ = await night(state, "r1")
    ledger.refused(BAD, contact("c1"), None, [10, 1])
    ledger.sync()
    ledger, stats = await night(state, "r2")
    first = ledger.watch(contact("c1", "ok@example.com"))
    second = ledger.watch(contact("c1", "ok2@example.com"))
    ledger.acknowledged([sent(contact("c1", "ok@example.com"), first)])
    await state.flush()
    await ledger.look_up([])
    ledger.acknowledged([sent(contact("c1", "ok2@example.com"), second)])
    assert (await state.ledger(), stats.ledger_left) == ([], 1)


async def test_a_record_verify_found_missing_is_resent_then_unverified_until_verified(
        state: StateStore) -> None:
    """Verify's row (kind missing) goes out first on the next run; its acknowledgement keeps
    the row, as unverified (sent, not yet seen in Ometria): only a verify drops it."""
    row = verify_finding(None, "contacts", contact("c1", "v1"), "verify v1: found missing",
                         "verify-1", "t1", 5)
    assert row is not None and (row.kind, row.attempts, row.first_run) == (
        "missing", 1, "verify-1")
    state.put_ledger([row])
    ledger, stats = await night(state, "r2")
    part = ledger.resend_part([])
    assert part is not None
    assert [i.record async for chunk in part.read(None) for i in chunk] == [contact("c1", "v1")]
    ledger.acknowledged([sent(contact("c1", "v1"), tick=ledger.watch(contact("c1", "v1")))])
    ledger.sync()
    (after,) = await state.ledger()
    assert (after.kind, after.last_run, after.first_run) == ("unverified", "r2", "verify-1")
    assert stats.ledger_left == 0
    ledger, _ = await night(state, "r3")
    assert ledger.resend_part([]) is None  # acknowledged: not resent again
    assert leaves_when_verified(after)


async def test_verify_finding_counts_an_attempt_per_resend_and_keeps_a_refusal(
        state: StateStore) -> None:
    """Found again after its resend was acknowledged: one attempt more, parked at
    max_attempts; a refused row is never replaced (its version was never sent)."""
    first = verify_finding(None, "contacts", contact("c1"), "missing", "verify-1", "t1", 3)
    assert first is not None
    unverified = msgspec.structs.replace(first, kind="unverified", last_run="r2")
    again = verify_finding(unverified, "contacts", contact("c1"), "missing", "verify-2", "t2",
                           3)
    assert again is not None and (again.attempts, again.kind, again.first_run) == (
        2, "missing", "verify-1")
    parked = verify_finding(msgspec.structs.replace(again, kind="unverified"), "contacts",
                            contact("c1"), "missing", "verify-3", "t3", 3)
    assert parked is not None and (parked.attempts, parked.kind) == (3, "parked")
    # still missing, not yet resent: no attempt more
    same = verify_finding(again, "contacts", contact("c1"), "missing", "verify-3", "t3", 3)
    assert same is not None and same.attempts == 2
    ledger, _ = await night(state, "r1")
    ledger.refused(BAD, contact("c2"), None, [1, 1])
    ledger.sync()
    (refused,) = await state.ledger()
    assert verify_finding(refused, "contacts", contact("c2"), "missing", "v", "t", 3) is None
    assert not leaves_when_verified(refused)


async def test_a_missing_record_whose_resend_fails_stays_missing(state: StateStore) -> None:
    row = verify_finding(None, "contacts", contact("c1"), "missing", "verify-1", "t1", 5)
    assert row is not None
    state.put_ledger([row])
    ledger, _ = await night(state, "r2")
    ledger.undelivered([sent(contact("c1"))], "retries ran out")
    ledger.sync()
    (after,) = await state.ledger()
    assert (after.kind, after.attempts, after.first_run) == ("missing", 2, "verify-1")
