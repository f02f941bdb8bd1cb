"""The batcher: validates records, dead-letters the bad ones, cuts batches of at most 100.

A batch is cut when it is full, at the end of the stream, and when no record arrived for
``linger`` seconds (a slow source never holds a half-full batch forever). Every batch carries
the position after the last item the batcher *consumed* for it, including items it dead-lettered,
so once the batch settles everything before that position is settled too. Items dead-lettered
after the last full batch are covered by a final, possibly empty, batch.

One stream is one record type, so a batch never mixes ``@type``s, and a batch never holds
two versions of one id: a repeated id starts the next batch, which is sent only once the earlier
one settled (see ``versions.py``), so Ometria applies the versions in the source's order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.schemas import record_size_problem
from ometria_sync.schemas.envelope import envelope_problems
from ometria_sync.schemas.problems import Problem, Verdict
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.state.change_index import hash64, identity
from ometria_sync.state.deadletter import DeadLetterWriter
from ometria_sync.state.store import Pending, StateStore

Validator = Callable[[str, Any], Verdict]

#: source items taken at a time (validated, looked up in the change index, batched) ...
_SLICE = 128
#: ... and the longest the batcher holds the event loop before it lets others run (seconds)
_MAX_HOLD = 0.005


class BatchRecord(msgspec.Struct, gc=False):
    """A valid record ready to send: its encoding, what names it in a dead letter, its
    ``order_key`` (the id within this process: keeps versions of one id in order) and, with
    change detection, the stable hashes of its id and content (0 without).

    Only bytes and numbers: the decoded record is dropped once encoded, so the thousands of
    records queued and in flight are nothing for the garbage collector to walk (holding the
    dicts made full collections take tens of milliseconds, and the pacer missed slots)."""

    encoded: bytes
    line: int | None
    position: Position
    order_key: int = 0
    id_hash: int = 0
    content_hash: int = 0


#: content hash of a version whose outcome at Ometria is unknown: equal to no record's hash
UNKNOWN: None = None


class ChangeFilter:
    """Skips records whose content equals what Ometria holds for their id, as far as this run
    knows: the latest version this run sent, else the hash stored at the last acknowledgement.

    With ``refresh`` nothing is skipped, but hashes are still computed (and later stored).
    Lookups (``StateStore.lookup``: inline on the loop's own connection for SQLite, one round
    trip per slice for PostgreSQL) see only committed hashes; so the versions this run decided
    to send are kept here until their hashes are committed (:meth:`written`). A later
    occurrence of an id is therefore judged against the run's own earlier one, never against
    an older stored hash; a version whose outcome is unknown (:meth:`forget`) matches nothing,
    so it is sent again."""

    def __init__(self, state: StateStore, stream_id: int, *, refresh: bool = False) -> None:
        self.state = state
        self.stream_id = stream_id
        self.refresh = refresh
        #: id hash -> content hash of the latest version this run sent, not yet committed
        self._sent: dict[int, int | None] = {}
        #: hash writes submitted, oldest first, with the pairs they write
        self._writes: deque[tuple[Pending, list[tuple[int, int]]]] = deque()

    async def unchanged(self, records: list[BatchRecord]) -> set[int]:
        """Indexes into ``records`` (their ``id_hash`` set) of those that are unchanged since
        last sent; every other one counts, from now on, as the version Ometria is getting."""
        for r in records:
            r.content_hash = hash64(r.encoded)
        if not records:
            return set()
        self._prune()
        known: dict[int, int] = {}
        if not self.refresh:
            id_hashes = [r.id_hash for r in records if r.id_hash not in self._sent]
            if id_hashes:
                known = await self.state.lookup(self.stream_id, id_hashes)
        skip: set[int] = set()
        sent = self._sent
        for i, r in enumerate(records):
            reference = sent[r.id_hash] if r.id_hash in sent else known.get(r.id_hash)
            if reference == r.content_hash and not self.refresh:
                skip.add(i)
            else:
                sent[r.id_hash] = r.content_hash
        return skip

    def forget(self, id_hashes: list[int]) -> None:
        """These ids' outcome at Ometria is unknown: no later version in this run is judged
        unchanged against them (the stored hashes are deleted by the caller)."""
        for h in id_hashes:
            self._sent[h] = UNKNOWN

    def written(self, future: Pending, pairs: list[tuple[int, int]]) -> None:
        """``pairs`` (id hash, content hash) are being stored by ``future``: once it is done,
        lookups see them and the run's own copy can go."""
        self._writes.append((future, pairs))

    def _prune(self) -> None:
        sent = self._sent
        while self._writes and self._writes[0][0].done():
            future, pairs = self._writes.popleft()
            if future.cancelled() or future.exception() is not None:
                continue  # not stored: keep the run's own copy (the failure stops the run)
            for id_hash, content_hash in pairs:
                if sent.get(id_hash, UNKNOWN) == content_hash:
                    del sent[id_hash]

    @property
    def remembered(self) -> int:
        """Versions kept by this run and not yet committed (bounded by what is in flight)."""
        return len(self._sent)


class Batch(msgspec.Struct):
    """Up to ``batch_size`` records of one type, numbered in the order they were cut."""

    seq: int
    records: list[BatchRecord]
    end_position: Position


def encode_body(records: list[BatchRecord]) -> bytes:
    """The JSON array Ometria's push endpoint takes, joined from already-encoded records."""
    return b"[" + b",".join(r.encoded for r in records) + b"]"


class Batcher:
    """Turns a stream's chunks of source items into batches. Owns no I/O but the dead letter."""

    def __init__(
        self,
        *,
        stream: str,
        record_type: str,
        source_label: str,
        validator: Validator,
        dead_letter: DeadLetterWriter,
        stats: StreamStats,
        batch_size: int = 100,
        linger: float = 0.5,
        first_seq: int = 0,
        changes: ChangeFilter | None = None,
    ) -> None:
        self._stream = stream
        self._type = record_type
        self._label = source_label
        self._validate = validator
        self._dead = dead_letter
        self._stats = stats
        self._size = batch_size
        self._linger = linger
        # sorted keys: the canonical encoding, so that change hashes ignore key order
        self._encode = msgspec.json.Encoder(order="sorted").encode
        self._changes = changes
        self._seq = first_seq
        self._pending: list[BatchRecord] = []
        self._pending_ids: set[int] = set()  # a batch never holds two versions of one id
        self._consumed: Position | None = None  # position after the last item consumed
        self._cut_position: Position | None = None  # end position of the last batch cut

    @property
    def next_seq(self) -> int:
        return self._seq

    async def run(
        self, chunks: asyncio.Queue[list[SourceItem] | None], out: asyncio.Queue[Batch | None]
    ) -> None:
        """Consume ``chunks`` until the ``None`` that ends the stream, then put ``None`` on out."""
        while True:
            if self._pending and chunks.empty():
                try:
                    chunk = await asyncio.wait_for(chunks.get(), self._linger)
                except TimeoutError:
                    await self._cut(out)
                    continue
            else:
                chunk = await chunks.get()
            if chunk is None:
                break
            await self._take_chunk(chunk, out)
        if self._pending or self._consumed != self._cut_position:
            await self._cut(out)
        await out.put(None)

    async def _cut(self, out: asyncio.Queue[Batch | None]) -> None:
        batch = Batch(seq=self._seq, records=self._pending, end_position=self._consumed)
        self._seq += 1
        self._pending = []
        self._pending_ids = set()
        self._cut_position = self._consumed
        await out.put(batch)

    async def _take_chunk(
        self, chunk: list[SourceItem], out: asyncio.Queue[Batch | None]
    ) -> None:
        """Take a source chunk (256 KiB of JSON Lines: thousands of records) a slice at a time,
        letting the event loop run in between: validating a whole chunk in one go holds the
        loop for tens of milliseconds, and the pacer misses its departure slots meanwhile."""
        held_since = time.perf_counter()
        for start in range(0, len(chunk), _SLICE):
            await self._take_slice(chunk[start : start + _SLICE], out)
            if time.perf_counter() - held_since >= _MAX_HOLD:
                await asyncio.sleep(0)
                held_since = time.perf_counter()

    async def _take_slice(
        self, items: list[SourceItem], out: asyncio.Queue[Batch | None]
    ) -> None:
        """Validate items, drop unchanged records, and cut batches as they fill. Positions of
        refused and unchanged records are covered by the next batch cut."""
        taken = [self._take(item) for item in items]
        if self._changes is not None:
            ready = [r for r in taken if r is not None]
            unchanged = await self._changes.unchanged(ready)
            self._stats.unchanged += len(unchanged)
            skip = {id(ready[i]) for i in unchanged}
        else:
            skip = set()
        before = self._stats.read - len(items)
        for index, (item, record) in enumerate(zip(items, taken, strict=True)):
            if record is not None and id(record) not in skip:
                if record.order_key in self._pending_ids:  # a second version: next batch
                    self._stats.consumed(self._consumed, before + index)
                    await self._cut(out)
                self._pending.append(record)
                self._pending_ids.add(record.order_key)
            self._consumed = item.position
            if len(self._pending) >= self._size:
                self._stats.consumed(item.position, before + index + 1)
                await self._cut(out)
        self._stats.consumed(self._consumed, self._stats.read)

    def _take(self, item: SourceItem) -> BatchRecord | None:
        """A valid, encoded record, or None when it was dead-lettered."""
        self._stats.read += 1
        if item.error is not None:
            self._refuse(item, [Problem("", item.error)], stage="source")
            return None
        record = item.record
        problems = self._envelope_problems(record)
        if problems:
            self._refuse(item, problems)
            return None
        verdict = self._validate(self._type, record)
        for warning in verdict.warnings:
            self._stats.warn(warning)
        if verdict.errors:
            self._refuse(item, verdict.errors)
            return None
        try:
            encoded = self._encode(record)
        except (TypeError, ValueError, OverflowError) as exc:  # what validation let through
            self._refuse(item, [Problem("", f"cannot be encoded as JSON: {exc}")])
            return None
        too_large = record_size_problem(len(encoded))
        if too_large is not None:
            self._refuse(item, [too_large])
            return None
        self._stats.valid += 1
        # the id's keys are taken here, while the decoded record is at hand (it is not kept):
        # Python's own hash orders versions in this process (60 ns); the stable 64-bit hash
        # the change index stores across runs costs 700 ns, so only change detection pays it
        order_key = hash((record.get("@collection"), record.get("id")))
        id_hash = hash64(identity(record)) if self._changes is not None else 0
        return BatchRecord(encoded, item.line, item.position, order_key, id_hash)

    def _envelope_problems(self, record: Any) -> list[Problem]:
        """What the engine itself needs: an object with a usable id whose ``@type`` matches
        the stream (added when missing)."""
        problems = envelope_problems(record)
        if problems:
            return problems
        declared = record.get("@type")
        if declared is None:
            record["@type"] = self._type
        elif declared != self._type:
            return [Problem("@type", f"must be {self._type!r} (the stream's record_type), "
                                     f"got {declared!r}")]
        return []

    def _refuse(self, item: SourceItem, reasons: list[Problem], stage: str = "validate") -> None:
        self._stats.dead_lettered += 1
        for reason in reasons:
            self._stats.refuse(reason)
        self._dead.write(
            stream=self._stream,
            source=self._label,
            reasons=reasons,
            stage=stage,
            line=item.line,
            position=item.position,
            record=item.record if item.error is None else None,
            raw=item.raw,
        )
