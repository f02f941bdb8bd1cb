"""A checkpoint is never durable ahead of the change hashes it relies on (review item 1).

With the real SQLite state: a record whose id has a stored hash (night 1 left ``A``) is sent as
``B`` and acknowledged; the checkpoint that passes it is saved; then the process dies (kill -9:
the waiting hashes are never written). Whatever committed must not pair the checkpoint with the
older stored ``A``: a resumed read of a later ``A`` would be judged unchanged and Ometria would
keep ``B``.
"""

from __future__ import annotations

from pathlib import Path

from ometria_sync.pipeline.batch import Batch, BatchRecord, Outcome, PartScope
from ometria_sync.pipeline.change_filter import ChangeFilter, hash64
from ometria_sync.pipeline.settle import AckedHashes, Settlement
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.state.sqlite_store import SqliteState
from tests.clock import FakeClock

A, B = b'{"id":"p0","title":"A"}', b'{"id":"p0","title":"B"}'


class _DeadLetter:
    def sync(self) -> None:
        pass


class _Counting:
    """The state store, counting the hash writes submitted."""

    def __init__(self, state: SqliteState) -> None:
        self.state = state
        self.hash_writes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.state, name)

    def remember(self, stream_id: int, pairs: list[tuple[int, int]]) -> object:
        self.hash_writes += 1
        return self.state.remember(stream_id, pairs)


async def _night(state: SqliteState, records: list[BatchRecord], *,
                 refresh: bool = False) -> _Counting:
    """Batch 0 of ``records`` is judged, acknowledged and settled (its checkpoint saved); then
    the process dies: nothing waiting in the hash buffer is written."""
    counting = _Counting(state)
    stream = await state.stream_id("products")
    changes = ChangeFilter(counting, stream, refresh=refresh)  # type: ignore[arg-type]
    assert await changes.unchanged(records) == set()
    hashes = AckedHashes(counting, changes, clock=FakeClock().time)  # type: ignore[arg-type]
    scope = PartScope("products", "p.jsonl", StreamStats(stream="products"),
                      _DeadLetter())  # type: ignore[arg-type]
    settlement = Settlement(scope, counting, part_key="", fingerprint="fp",  # type: ignore[arg-type]
                            save=True, hashes=hashes)
    # Ometria acknowledged the batch
    settlement.settle(Batch(seq=0, records=records, end_position=[100, 1]),
                      Outcome(delivered=len(records), acknowledged=records))
    await state.flush()  # what was submitted commits; the buffer dies with the process
    return counting


def _record(encoded: bytes, id_hash: int = 1) -> BatchRecord:
    return BatchRecord(encoded, 1, [0, 0], id_hash=id_hash)


async def test_a_checkpoint_past_a_new_version_never_leaves_the_older_stored_hash(
        tmp_path: Path) -> None:
    state = await SqliteState.open(f"sqlite:///{tmp_path / 'cp.db'}")
    try:
        stream = await state.stream_id("products")
        state.remember(stream, [(1, hash64(A))])  # night 1 left A
        await state.flush()
        await _night(state, [_record(B)])
        saved = await state.load("products", "")
        stored = await state.lookup(stream, [1])
    finally:
        await state.aclose()
    assert saved is not None and saved.position == [100, 1]
    assert stored.get(1) in (hash64(B), None), "the checkpoint passed B over a stored A"


async def test_a_full_refresh_also_writes_before_the_checkpoint(tmp_path: Path) -> None:
    """``--full-refresh`` looks nothing up, so any id may have a stored hash."""
    state = await SqliteState.open(f"sqlite:///{tmp_path / 'cp.db'}")
    try:
        stream = await state.stream_id("products")
        state.remember(stream, [(1, hash64(A))])
        await state.flush()
        await _night(state, [_record(B)], refresh=True)
        stored = await state.lookup(stream, [1])
    finally:
        await state.aclose()
    assert stored.get(1) in (hash64(B), None)


async def test_new_ids_keep_waiting_in_the_buffer_past_the_checkpoint(tmp_path: Path) -> None:
    """The cost side: ids with no stored hash (a first export, the bulk of the writes) need
    none before the checkpoint (absent is never older), so no hash write is added per
    checkpoint for them; the buffer still writes them in bulk by count or age."""
    state = await SqliteState.open(f"sqlite:///{tmp_path / 'cp.db'}")
    try:
        counting = await _night(state, [_record(A, i) for i in range(1, 101)])
        saved = await state.load("products", "")
    finally:
        await state.aclose()
    assert saved is not None and counting.hash_writes == 0
