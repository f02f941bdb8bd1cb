"""Acknowledged change hashes: buffered, written in bulk by count or age, forgotten at once."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ometria_sync.pipeline.acked_hashes import HASHES_MAX_AGE, HASHES_PER_WRITE, AckedHashes
from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from tests.clock import FakeClock


class _Store:
    """The change-hash half of a state store, recording every call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []

    def remember(self, stream_id: int, pairs: list[tuple[int, int]]) -> Future[None]:
        self.calls.append(("remember", stream_id, pairs))
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None:
        self.calls.append(("forget", stream_id, id_hashes))


def _record(id_hash: int, content_hash: int) -> BatchRecord:
    return BatchRecord(b"{}", None, None, 0, id_hash, content_hash)


def _hashes(clock: FakeClock) -> tuple[AckedHashes, _Store]:
    store = _Store()
    changes = ChangeFilter(store, 7)  # type: ignore[arg-type]
    return AckedHashes(store, changes, clock=clock.time), store  # type: ignore[arg-type]


def test_hashes_wait_until_the_buffer_is_old_enough_then_go_in_one_sorted_write() -> None:
    """Nothing is written before HASHES_MAX_AGE seconds passed since the last write; then every
    waiting hash goes at once, sorted by id, the last acknowledged version of each id."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    hashes.remember([_record(3, 30), _record(1, 10)])
    clock.now += HASHES_MAX_AGE - 0.001
    hashes.remember([_record(3, 31)])
    assert store.calls == [] and hashes.waiting == 2
    clock.now += 0.001
    hashes.remember([_record(2, 20)])
    assert store.calls == [("remember", 7, [(1, 10), (2, 20), (3, 31)])]
    assert hashes.waiting == 0


def test_the_age_counts_from_the_last_write() -> None:
    """A write (here one the checkpointer asks for) restarts the age."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    clock.now = 10.0
    hashes.write()  # nothing waiting: nothing written, but the age restarts
    clock.now = 10.0 + HASHES_MAX_AGE - 0.5
    hashes.remember([_record(1, 10)])
    assert store.calls == []
    clock.now = 10.0 + HASHES_MAX_AGE
    hashes.remember([_record(2, 20)])
    assert [call[0] for call in store.calls] == ["remember"]


def test_a_full_buffer_is_written_at_once() -> None:
    """HASHES_PER_WRITE waiting hashes are written without waiting for the age."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    hashes.remember([_record(i, i) for i in range(1, HASHES_PER_WRITE)])
    assert store.calls == []
    hashes.remember([_record(HASHES_PER_WRITE, 1)])
    assert len(store.calls) == 1 and len(store.calls[0][2]) == HASHES_PER_WRITE


def test_forget_drops_the_waiting_hash_and_deletes_the_stored_one_first() -> None:
    """An unclean outcome: the id's waiting hash is never written, and its stored hash is
    deleted at once (before the next write)."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    hashes.remember([_record(1, 10), _record(2, 20)])
    hashes.forget([_record(1, 11)])
    hashes.write()
    assert store.calls == [("forget", 7, [1]), ("remember", 7, [(2, 20)])]


def _replacing(id_hash: int, content_hash: int) -> BatchRecord:
    record = _record(id_hash, content_hash)
    record.replaces = True
    return record


def test_before_a_checkpoint_only_hashes_that_replace_stored_ones_force_a_write() -> None:
    """New ids may wait past a checkpoint (absent is never older); once one waiting hash
    replaces a stored one, everything waiting is written before the save, and the buffer
    starts over."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    hashes.remember([_record(1, 10)])
    hashes.before_checkpoint()
    assert store.calls == [] and hashes.waiting == 1
    hashes.remember([_replacing(2, 20)])
    hashes.before_checkpoint()
    assert store.calls == [("remember", 7, [(1, 10), (2, 20)])]
    hashes.remember([_record(3, 30)])
    hashes.before_checkpoint()
    assert len(store.calls) == 1 and hashes.waiting == 1
