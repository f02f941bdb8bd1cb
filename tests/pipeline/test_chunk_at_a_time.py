"""The loop's chunk-at-a-time ways give exactly what its record-at-a-time ways give.

Each fast way (the change filter's "nothing can be skipped", its pruning, the batcher's batches
cut in slices, the acknowledged hashes' buffer; the version order's bookkeeping, pinned to its
one-id-at-a-time form for whoever makes it faster) is run
side by side with the slow way it stands for (the slow way forced, or the code it replaced kept
here as the reference) on the same random inputs: repeated ids within and across slices,
refusals, stored hashes, forgotten ids, writes that fail or are not done, a full refresh."""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ometria_sync.pipeline.batch import Batch, BatchRecord, PartScope, VersionOrder
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.change_filter import ChangeFilter, hash64
from ometria_sync.pipeline.settle import AckedHashes
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.sources.base import SourceItem
from ometria_sync.state.deadletter import DeadLetterWriter
from tests.fakes import minimal_validator

# --- the change filter -------------------------------------------------------------------------


class _Store:
    """A change index: the committed hashes, looked up."""

    def __init__(self, stored: dict[int, int]) -> None:
        self.committed = dict(stored)

    async def lookup(self, stream: int, id_hashes: list[int]) -> dict[int, int]:
        return {h: self.committed[h] for h in id_hashes if h in self.committed}


class _SlowFilter(ChangeFilter):
    """The record-at-a-time filter: its loop always, and the pruning written another way (the
    committed pairs found by one set intersection, as it was for a while)."""

    def _all_sent(self, *args: Any) -> bool:
        return False

    def _prune(self) -> None:
        sent = self._sent
        while self._writes and self._writes[0][0].done():
            future, pairs = self._writes.popleft()
            if future.cancelled() or future.exception() is not None:
                continue
            for id_hash, _ in sent.items() & pairs:
                del sent[id_hash]


_record = st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, 1))
_op = st.one_of(
    st.tuples(st.just("slice"), st.lists(_record, max_size=8)),
    st.tuples(st.just("write"), st.sampled_from(["ok", "failed", "later"])),
    st.tuples(st.just("finish"), st.booleans()),
    st.tuples(st.just("forget"), st.lists(st.integers(0, 5), max_size=3)),
)


class _Side:
    """One filter and what it was told: its store, the versions it sent, its writes."""

    def __init__(self, changes: ChangeFilter, store: _Store) -> None:
        self.changes = changes
        self.store = store
        self.to_write: list[BatchRecord] = []
        self.later: list[tuple[Future[object], list[tuple[int, int]]]] = []

    async def apply(self, op: tuple[Any, Any]) -> object:
        kind, arg = op
        if kind == "slice":
            records = [BatchRecord(b'{"v":%d}' % c, 1, 1, 0, i, ledger_tick=t)
                       for i, c, t in arg]
            skip = await self.changes.unchanged(records)
            self.to_write += [r for n, r in enumerate(records) if n not in skip]
            known = [(r.id_hash, r.encoded) for r in self.changes.known_unchanged]
            self.changes.known_unchanged = []
            return (skip, [(r.replaces, r.content_hash) for r in records], known)
        if kind == "write":
            pairs = list({r.id_hash: r.content_hash for r in self.to_write}.items())
            self.to_write = []
            future: Future[object] = Future()
            self.changes.written(future, pairs)
            if arg == "later":
                self.later.append((future, pairs))
            else:
                self._finish(future, pairs, ok=arg == "ok")
        elif kind == "finish" and self.later:
            self._finish(*self.later.pop(0), ok=arg)
        elif kind == "forget":
            self.changes.forget(arg)
            for h in arg:
                self.store.committed.pop(h, None)
        return (dict(self.changes._sent), sorted(self.changes.in_flight()))

    def _finish(self, future: Future[object], pairs: list[tuple[int, int]], *,
                ok: bool) -> None:
        if ok:
            self.store.committed.update(pairs)
            future.set_result(None)
        else:
            future.set_exception(OSError("disk full"))


def _side(cls: type[ChangeFilter], stored: dict[int, int], refresh: bool) -> _Side:
    store = _Store(stored)
    return _Side(cls(store, 1, refresh=refresh), store)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(0, 5), st.integers(-2, 2)), st.booleans(),
       st.lists(_op, max_size=25))
# a newer version sent while the write of an older one was under way: the copy is kept
@example({}, False, [("slice", [(0, 1, 0)]), ("write", "later"), ("slice", [(0, 2, 0)]),
                     ("finish", True), ("slice", [(0, 2, 0)])])
def test_the_change_filter_skips_and_keeps_what_its_loop_would(
    stored: dict[int, int], refresh: bool, ops: list[tuple[Any, Any]]
) -> None:
    """Same skips, same ``replaces`` and content hashes, same watched records found unchanged,
    same versions kept, after any mix of slices, writes (done, failed, not yet) and forgotten
    ids; stored hashes are the content hashes of a few bodies or other values."""
    bodies = {k: hash64(b'{"v":%d}' % v) if v >= 0 else v for k, v in stored.items()}

    async def run() -> None:
        fast, slow = _side(ChangeFilter, bodies, refresh), _side(_SlowFilter, bodies, refresh)
        for op in ops:
            assert await fast.apply(op) == await slow.apply(op), op
        assert fast.changes.remembered == slow.changes.remembered

    asyncio.run(run())


async def test_a_first_runs_slice_is_all_sent_without_the_loop() -> None:
    """The common case of a first run takes the fast way (so the test above compares it):
    nothing known, nothing sent before, no id twice."""

    class Counted(ChangeFilter):
        fast = 0

        def _all_sent(self, *args: Any) -> bool:
            done = super()._all_sent(*args)
            Counted.fast += done
            return done

    changes = Counted(_Store({}), 1)  # type: ignore[arg-type]
    records = [BatchRecord(b'{"v":%d}' % i, 1, 1, 0, i) for i in range(5)]
    assert await changes.unchanged(records) == set()
    assert Counted.fast == 1 and changes.remembered == 5
    assert not any(r.replaces for r in records)
    assert await changes.unchanged([BatchRecord(b'{"v":0}', 1, 1, 0, 0)]) == {0}
    assert Counted.fast == 1  # a repeated id: the loop


# --- the batcher ---------------------------------------------------------------------------------

class _Watched(Batcher):
    """A batcher noting, at each cut, the progress the display would read."""

    progress: list[tuple[int, int]]

    async def _cut(self, out: asyncio.Queue[Batch | None]) -> None:
        self.progress.append((self._stats.bytes_read, self._stats.records_at_bytes_read))
        await super()._cut(out)


class _SlowBatcher(_Watched):
    async def _cut_runs(self, *args: Any) -> bool:
        return False


_entry = st.one_of(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]), st.none())


def _chunks(spec: list[list[str | None]]) -> list[list[SourceItem]]:
    chunks, line = [], 0
    for ids in spec:
        chunk = []
        for rid in ids:
            line += 1
            record = {"id": rid, "n": line} if rid is not None else {"id": "bad id"}
            chunk.append(SourceItem(record=record, position=(line * 10, line), line=line))
        chunks.append(chunk)
    return chunks


async def _batches(cls: type[_Watched], spec: list[list[str | None]], size: int,
                   folder: Path) -> list[Any]:
    stats = StreamStats(stream="contacts")
    stats.bytes_total = 10**9
    writer = DeadLetterWriter(folder / f"{cls.__name__}.jsonl")
    batcher = cls(PartScope("contacts", "in.jsonl", stats, writer), record_type="contact",
                  validator=minimal_validator(None), batch_size=size)
    batcher.progress = []
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    for chunk in _chunks(spec):
        inq.put_nowait(chunk)
    inq.put_nowait(None)
    await batcher.run(inq, out)  # type: ignore[arg-type]
    writer.close()
    batches = []
    while (batch := out.get_nowait()) is not None:
        batches.append((batch.seq, batch.end_position,
                        [(r.encoded, r.line, r.position, r.order_key) for r in batch.records]))
    return [batches, batcher.progress, stats.read, stats.valid, stats.bytes_read,
            stats.records_at_bytes_read, stats.dead_lettered]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_entry, max_size=12), max_size=6), st.integers(1, 5))
def test_the_batcher_cuts_the_batches_its_loop_would(
    spec: list[list[str | None]], size: int
) -> None:
    """Same batches (records, order, sequence numbers, end positions) and the same progress
    at each cut, whatever repeats an id (in a chunk or across one) or is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        fast = asyncio.run(_batches(_Watched, spec, size, Path(tmp)))
        slow = asyncio.run(_batches(_SlowBatcher, spec, size, Path(tmp)))
    assert fast == slow


# --- the version order ---------------------------------------------------------------------------

class _OldOrder:
    """The version order's bookkeeping as it was, one id at a time (claims as numbers)."""

    def __init__(self) -> None:
        self.holder: dict[int, int] = {}

    def claim(self, number: int, ids: list[int]) -> list[int]:
        after = {c: c for c in (self.holder.get(i) for i in ids) if c is not None}
        for i in ids:
            self.holder[i] = number
        return list(after.values())

    def release(self, number: int, ids: list[int]) -> None:
        for i in ids:
            if self.holder.get(i) is not None and self.holder[i] == number:
                del self.holder[i]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.lists(st.integers(0, 6), max_size=6),
                          st.integers(0, 20)), max_size=30))
def test_the_version_order_holds_and_waits_as_it_did(ops: list[list[int] | int]) -> None:
    """Claims (lists of ids, repeats allowed) and releases (a claim's number, twice maybe):
    the same claim holds each id, and each claim waits for the same earlier ones, in order."""
    order, old = VersionOrder(), _OldOrder()
    claims: list[Any] = []
    for op in ops:
        if isinstance(op, list):
            claim = order.claim(iter(op))
            number = {id(c): n for n, c in enumerate(claims)}
            assert [number[id(c)] for c in claim._after] == old.claim(len(claims), op)
            claims.append(claim)
        elif op < len(claims):
            claims[op].release()
            old.release(op, claims[op]._ids)
        number = {id(c): n for n, c in enumerate(claims)}
        assert {i: number[id(c)] for i, c in order._holder.items()} == old.holder


# --- the acknowledged hashes ---------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.booleans()),
                         max_size=6), max_size=6))
def test_acknowledged_hashes_keep_the_last_of_each_id(
    acks: list[list[tuple[int, int, bool]]]
) -> None:
    """The buffer holds the last acknowledged content hash of each id, and says a hash may
    replace a stored one once any acknowledged record did, until written."""
    changes = ChangeFilter(_Store({}), 1)  # type: ignore[arg-type]
    hashes = AckedHashes(None, changes, clock=lambda: 0.0)  # type: ignore[arg-type]
    want: dict[int, int] = {}
    replacing = False
    for ack in acks:
        records = [BatchRecord(b"{}", 1, 1, 0, i, c, replaces=r) for i, c, r in ack]
        hashes.remember(records)
        for r in records:
            want[r.id_hash] = r.content_hash
        replacing = replacing or any(r.replaces for r in records)
        assert hashes._acked == want and list(hashes._acked) == list(want)
        assert hashes._replacing == replacing
