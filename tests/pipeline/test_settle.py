"""Settling a batch: the contiguous low watermark over batches that finish out of order, the
acknowledged change hashes (buffered, written in bulk by count or age, forgotten at once), and the
settlement: checkpoints follow the watermark, the dead letter is durable first, and hashes
acknowledged beyond the checkpoint are written at once."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from ometria_sync.errors import RetriesExhaustedError
from ometria_sync.pipeline.batch import Batch, BatchRecord, Outcome, PartScope
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.settle import (
    HASHES_MAX_AGE,
    HASHES_PER_WRITE,
    SAVE_INTERVAL,
    AckedHashes,
    Settlement,
    Watermark,
)
from ometria_sync.pipeline.stats import StreamStats
from tests.clock import FakeClock

# the watermark

def test_moves_only_over_a_contiguous_prefix() -> None:
    """Batch 2 and 1 settle before 0: nothing moves until 0 settles, then it jumps to 2."""
    mark = Watermark()
    assert not mark.settle(2, 300, 100)
    assert not mark.settle(1, 200, 100)
    assert mark.position is None and mark.pending == 2
    assert mark.settle(0, 100, 100)
    assert mark.position == 300 and mark.records == 300 and mark.pending == 0


def test_a_gap_holds_the_watermark() -> None:
    mark = Watermark()
    mark.settle(0, 100, 100)
    mark.settle(2, 300, 100)
    assert mark.position == 100


def test_settling_twice_is_a_bug() -> None:
    mark = Watermark()
    mark.settle(0, 100, 1)
    with pytest.raises(ValueError, match="settled twice"):
        mark.settle(0, 100, 1)


# the acknowledged change hashes

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


def test_hashes_wait_until_the_buffer_is_old_enough_then_go_in_one_write() -> None:
    """Nothing is written before HASHES_MAX_AGE seconds passed since the last write; then every
    waiting hash goes at once, the last acknowledged version of each id (the store inserts
    them in id order)."""
    clock = FakeClock()
    hashes, store = _hashes(clock)
    hashes.remember([_record(3, 30), _record(1, 10)])
    clock.now += HASHES_MAX_AGE - 0.001
    hashes.remember([_record(3, 31)])
    assert store.calls == [] and hashes.waiting == 2
    clock.now += 0.001
    hashes.remember([_record(2, 20)])
    assert [(call, stream, sorted(pairs)) for call, stream, pairs in store.calls] == [
        ("remember", 7, [(1, 10), (2, 20), (3, 31)])]
    assert hashes.waiting == 0


def test_the_age_counts_from_the_last_write() -> None:
    """A write (here one the settlement asks for) restarts the age."""
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


# the settlement

class _Log:
    """Stands in for the state store, the dead letter and the hash buffer: records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def save(self, stream: str, part: str, position: Any, fingerprint: str | None,
             delivered: int) -> None:
        self.calls.append(("save", stream, part, position, fingerprint, delivered))

    def sync(self) -> None:
        self.calls.append(("sync",))

    def write(self) -> None:
        self.calls.append(("hashes",))

    def before_checkpoint(self) -> None:
        self.calls.append(("hashes before the checkpoint",))

    def forget(self, records: list[BatchRecord]) -> None:
        self.calls.append(("forget",))


def _settlement(*, save: bool = True,
                clock: FakeClock | None = None) -> tuple[Settlement, StreamStats, _Log]:
    log = _Log()
    stats = StreamStats(stream="contacts")
    scope = PartScope("contacts", "in.jsonl", stats, log)  # type: ignore[arg-type]
    settlement = Settlement(scope, log, part_key="k", fingerprint="f",  # type: ignore[arg-type]
                            save=save, hashes=log,  # type: ignore[arg-type]
                            clock=(clock or FakeClock()).time)
    return settlement, stats, log


def _batch(seq: int) -> Batch:
    return Batch(seq=seq, records=[], end_position=(seq + 1) * 10)


def test_batches_settled_out_of_order_write_their_hashes_and_wait_for_the_watermark() -> None:
    """Batch 1 settles first: its hashes are written at once (a resume re-reads it), and no
    checkpoint passes batch 0; once batch 0 settles, the checkpoint covers both, saved after
    the dead letter was synced and the hashes it relies on were written."""
    settlement, stats, log = _settlement()
    settlement.settle(_batch(1), Outcome(delivered=4))
    assert log.calls == [("hashes",)] and stats.position is None
    settlement.settle(_batch(0), Outcome(delivered=3))
    assert log.calls[1:] == [("sync",), ("hashes before the checkpoint",),
                             ("save", "contacts", "k", 20, "f", 7)]
    assert stats.position == 20


def test_each_save_counts_only_the_records_newly_covered() -> None:
    clock = FakeClock()
    settlement, _, log = _settlement(clock=clock)
    settlement.settle(_batch(0), Outcome(delivered=3))
    clock.now += SAVE_INTERVAL
    settlement.settle(_batch(1), Outcome(delivered=5))
    settlement.settle(_batch(2), Outcome(delivered=2))  # within the interval: saved at the end
    settlement.settle(_batch(3), Outcome(delivered=1))
    settlement.finish()
    assert [c[-1] for c in log.calls if c[0] == "save"] == [3, 5, 3]


def _saves(log: _Log) -> list[Any]:
    return [c[3] for c in log.calls if c[0] == "save"]


def test_a_save_waits_for_the_interval_then_covers_everything_settled_meanwhile() -> None:
    """Saves within SAVE_INTERVAL of the last one wait; the first settle after it saves the
    whole watermark, after the dead letter sync and the hashes it relies on (rules 1, 2)."""
    clock = FakeClock()
    settlement, stats, log = _settlement(clock=clock)
    settlement.settle(_batch(0), Outcome(delivered=1))
    clock.now += SAVE_INTERVAL - 0.001
    settlement.settle(_batch(1), Outcome(delivered=1))
    settlement.settle(_batch(2), Outcome(delivered=1))
    assert _saves(log) == [10] and stats.position == 30
    clock.now += 0.001
    del log.calls[:]
    settlement.settle(_batch(3), Outcome(delivered=1))
    assert log.calls == [("sync",), ("hashes before the checkpoint",),
                         ("save", "contacts", "k", 40, "f", 3)]


def test_the_end_of_a_part_saves_what_waited_before_the_last_hashes() -> None:
    """finish (the part done, failed or interrupted) saves a watermark that moved since the
    last save, synced first, then writes every waiting hash; nothing when it did not move."""
    clock = FakeClock()
    settlement, _, log = _settlement(clock=clock)
    settlement.settle(_batch(0), Outcome(delivered=1))
    settlement.settle(_batch(1), Outcome(delivered=1))
    del log.calls[:]
    settlement.finish()
    assert log.calls == [("sync",), ("hashes before the checkpoint",),
                         ("save", "contacts", "k", 20, "f", 1), ("hashes",)]
    del log.calls[:]
    settlement.finish()
    assert ("save", "contacts", "k", 20, "f", 0) not in log.calls


def test_a_failed_batch_saves_what_settled_before_it_at_once() -> None:
    """Retries ran out: the run stops, so the watermark waiting for the interval is saved
    now (never past the failed batch)."""
    clock = FakeClock()
    settlement, _, log = _settlement(clock=clock)
    settlement.settle(_batch(0), Outcome(delivered=1))
    settlement.settle(_batch(1), Outcome(delivered=1))
    del log.calls[:]
    settlement.settle(_batch(2), Outcome(failure=RetriesExhaustedError("gave up")))
    assert log.calls == [("forget",), ("sync",), ("hashes before the checkpoint",),
                         ("save", "contacts", "k", 20, "f", 1)]


def test_without_saving_only_the_live_position_moves() -> None:
    """A dry run or ``validate``: the stats show how far it got, nothing is saved or synced."""
    settlement, stats, log = _settlement(save=False)
    settlement.settle(_batch(0), Outcome(delivered=3))
    assert log.calls == [] and stats.position == 10


def test_an_outcome_remembers_the_acknowledged_and_forgets_the_unconfirmed() -> None:
    """What Ometria acknowledged cleanly becomes the reference; what it refused or may have
    refused is forgotten; the batch settles with the delivered count either way."""
    store = _Store()
    hashes = AckedHashes(store, ChangeFilter(store, 7), clock=FakeClock().time)  # type: ignore[arg-type]
    stats = StreamStats(stream="contacts")
    scope = PartScope("contacts", "in.jsonl", stats, _Log())  # type: ignore[arg-type]
    settlement = Settlement(scope, store, part_key="k", fingerprint="f",  # type: ignore[arg-type]
                            save=False, hashes=hashes)
    ok, refused = _record(1, 11), _record(2, 22)
    settlement.settle(Batch(seq=0, records=[ok, refused], end_position=10),
                      Outcome(delivered=1, acknowledged=[ok], unconfirmed=[refused], refused=1))
    assert store.calls == [("forget", 7, [2])] and hashes.waiting == 1
    assert stats.position == 10


def test_a_failed_outcome_forgets_the_whole_batch_and_never_settles_it() -> None:
    """Retries ran out: whatever Ometria holds of the batch is unknown, so every id's stored
    hash is forgotten, nothing is remembered, and the checkpoint stays before the batch."""
    store = _Store()
    hashes = AckedHashes(store, ChangeFilter(store, 7), clock=FakeClock().time)  # type: ignore[arg-type]
    stats = StreamStats(stream="contacts")
    scope = PartScope("contacts", "in.jsonl", stats, _Log())  # type: ignore[arg-type]
    settlement = Settlement(scope, store, part_key="k", fingerprint="f",  # type: ignore[arg-type]
                            save=True, hashes=hashes)
    first, second = _record(1, 11), _record(2, 22)
    settlement.settle(Batch(seq=0, records=[first, second], end_position=10),
                      Outcome(delivered=1, acknowledged=[first],
                              failure=RetriesExhaustedError("gave up")))
    assert store.calls == [("forget", 7, [1, 2])] and hashes.waiting == 0
    assert stats.position is None
