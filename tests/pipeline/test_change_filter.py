"""The change filter: which records are unchanged since last sent, and what it keeps in memory."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.settle import AckedHashes
from ometria_sync.state import open_state


async def test_the_runs_own_versions_are_dropped_once_their_hashes_are_committed() -> None:
    """Memory stays bounded by what is in flight: a version is kept only until the write of its
    hash is done; one overtaken by a later version of its id stays until that one is written."""
    committed: dict[int, int] = {}

    class Store:
        async def lookup(self, stream: int, id_hashes: list[int]) -> dict[int, int]:
            return {h: committed[h] for h in id_hashes if h in committed}

    changes = ChangeFilter(Store(), 1)  # type: ignore[arg-type]
    first = [BatchRecord(f'{{"v":{i}}}'.encode(), i, i, 0, i) for i in range(3)]
    assert await changes.unchanged(first) == set()
    assert changes.remembered == 3
    write: Future[object] = Future()
    changes.written(write, [(r.id_hash, r.content_hash) for r in first])
    newer = BatchRecord(b'{"v":"new"}', 9, 9, 0, 0)  # a later version of id 0, not yet written
    await changes.unchanged([newer])
    committed.update((r.id_hash, r.content_hash) for r in first)
    write.set_result(None)
    await changes.unchanged([])
    assert changes.remembered == 3  # pruning waits for a lookup
    await changes.unchanged([BatchRecord(b'{"v":1}', 10, 10, 0, 1)])  # unchanged: skipped
    assert changes.remembered == 1  # only id 0's newer version, whose hash is not written yet


async def test_a_record_replaces_a_stored_hash_when_one_may_exist() -> None:
    """``replaces`` (acknowledged hash to write before a checkpoint passes it) is set when the
    lookup found a stored hash, when this run sent an earlier version (its hash may be written
    by now), and on a full refresh (nothing looked up); a new id's first version has none."""

    class Store:
        async def lookup(self, stream: int, id_hashes: list[int]) -> dict[int, int]:
            return {h: 1 for h in id_hashes if h == 7}

    def rec(id_hash: int, body: bytes) -> BatchRecord:
        return BatchRecord(body, 1, 1, 0, id_hash)

    changes = ChangeFilter(Store(), 1)  # type: ignore[arg-type]
    records = [rec(7, b'{"v":1}'), rec(8, b'{"v":1}'), rec(8, b'{"v":2}')]
    await changes.unchanged(records)
    assert [r.replaces for r in records] == [True, False, True]
    refresh = ChangeFilter(Store(), 1, refresh=True)  # type: ignore[arg-type]
    fresh = [rec(9, b'{"v":1}')]
    await refresh.unchanged(fresh)
    assert fresh[0].replaces


async def test_a_first_runs_repeated_ids_are_judged_against_what_it_wrote(tmp_path: Path) -> None:
    """On a stream whose change index was empty (lookups skipped for ids not written since:
    ``state/written_ids.py``), an id seen again after its hash was written is still judged
    against that hash: the same content skipped, a new one sent as replacing it, and a
    return to the first (A -> B -> A) sent."""
    state = await open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        stream = await state.stream_id("contacts")
        changes = ChangeFilter(state, stream)
        hashes = AckedHashes(state, changes)

        def rec(id_hash: int, body: bytes) -> BatchRecord:
            return BatchRecord(body, 1, 1, 0, id_hash)

        async def sent(records: list[BatchRecord]) -> list[BatchRecord]:
            skip = await changes.unchanged(records)
            out = [r for i, r in enumerate(records) if i not in skip]
            hashes.remember(out)
            hashes.write()
            await state.flush()
            return out

        first = [rec(1, b'{"v":"A"}'), rec(2, b'{"v":"A"}')]
        assert await sent(first) == first and not any(r.replaces for r in first)
        assert not changes.in_flight()  # judged by the stored hashes from now on
        again = [rec(1, b'{"v":"A"}'), rec(2, b'{"v":"B"}')]
        assert await sent(again) == again[1:] and again[1].replaces
        back = [rec(2, b'{"v":"A"}')]
        assert await sent(back) == back and back[0].replaces
    finally:
        await state.aclose()
