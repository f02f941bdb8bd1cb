"""The batcher: validates records, dead-letters the bad ones, cuts batches of at most 100.

A batch is cut when it is full, at the end of the stream, and when no record arrived for
``linger`` seconds (a slow source never holds a half-full batch forever). Every batch carries
the position after the last item the batcher *consumed* for it, including items it dead-lettered,
so once the batch settles everything before that position is settled too. Items dead-lettered
after the last full batch are covered by a final, possibly empty, batch.

One stream is one record type, so a batch never mixes ``@type``s, and a batch never holds
two versions of one id: a repeated id starts the next batch, which is sent only once the earlier
one settled (see ``VersionOrder`` in ``batch.py``), so Ometria applies the versions in the
source's order.

The batcher always applies the envelope checks (an object, a string id without spaces, the
stream's ``@type``); the stream's validator (:func:`schema_validator`) adds the per-type schema
rules of :mod:`ometria_sync.schemas`, with the stream's mode and strictness.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any, TypeGuard, cast

import msgspec

from ometria_sync.clock import Sleep
from ometria_sync.pipeline.batch import Batch, BatchRecord, PartScope
from ometria_sync.pipeline.change_filter import ChangeFilter, hash64, identity
from ometria_sync.pipeline.ledger import record_key
from ometria_sync.pipeline.line_groups import LineGroups
from ometria_sync.pipeline.missing import SeenMarks
from ometria_sync.pipeline.prepare import (
    SchemaValidator,
    Validator,
    canonical_encode,
    prepare_record,
)
from ometria_sync.pipeline.transform import Transform
from ometria_sync.pipeline.typed_chunks import typed_records
from ometria_sync.schemas import MAX_RECORD_BYTES, Problem, typed_lane
from ometria_sync.sources import LineGroup, Position, RawLines, SourceItem

#: what the reader hands the batcher: items, or groups of lines or whole lines not decoded yet
Chunk = list[SourceItem] | list[LineGroup] | RawLines


def _grouped(chunk: list[SourceItem] | list[LineGroup]) -> TypeGuard[list[LineGroup]]:
    return bool(chunk) and isinstance(chunk[0], LineGroup)

#: no problems (never appended to: ``_take`` makes a new list to add a source's warnings)
_NONE: list[Problem] = []

#: source items taken at a time (validated, looked up in the change index, batched) ...
_SLICE = 128
#: ... and the longest the batcher holds the event loop before it lets others run (seconds)
_MAX_HOLD = 0.005
#: whole lines taken through the typed lane at a time (a few milliseconds of work)
_LANE_SLICE = 256


class Batcher:
    """Turns a stream's chunks of source items into batches. Owns no I/O but the dead letter."""

    def __init__(
        self,
        scope: PartScope,
        *,
        record_type: str,
        validator: Validator,
        batch_size: int = 100,
        linger: float = 0.5,
        first_seq: int = 0,
        changes: ChangeFilter | None = None,
        transform: Transform | None = None,
        lines: LineGroups | None = None,
        sleep: Sleep = asyncio.sleep,
        seen: SeenMarks | None = None,
    ) -> None:
        self._scope = scope
        self._stats = scope.stats
        self._type = record_type
        self._validate = validator
        #: the stream type's clean check, when the validator is the schemas' (``_prepare``)
        self._clean = (validator.clean.get(record_type)
                       if isinstance(validator, SchemaValidator) else None)
        self._size = batch_size
        self._linger = linger
        self._sleep = sleep
        self._changes = changes
        self._transform = transform
        #: ``on_missing = "deactivate"``: the ids this read sees (valid or not)
        self._seen = seen
        self._lines = lines
        self._seq = first_seq
        self._pending: list[BatchRecord] = []
        self._pending_ids: set[int] = set()  # a batch never holds two versions of one id
        self._consumed: Position | None = None  # position after the last item consumed
        self._cut_position: Position | None = None  # end position of the last batch cut
        #: the chunk's refusals and watched records (with the record) for the ledger, in order
        self._noted: list[tuple[BatchRecord | Refusal, Any]] = []
        self._ledger_active = False  # the ledger holds a key (judged once per slice)
        #: the typed lane, for chunks of whole lines (``RawLines``): only where nothing but
        #: the schemas looks at each record (``OMETRIA_SYNC_TYPED_LANE=off``: never, for tests)
        self.lane = (typed_lane(record_type, validator.mode)
                     if isinstance(validator, SchemaValidator) and transform is None
                     and seen is None and os.environ.get("OMETRIA_SYNC_TYPED_LANE") != "off"
                     else None)

    async def run(
        self, chunks: asyncio.Queue[Chunk | None], out: asyncio.Queue[Batch | None]
    ) -> None:
        """Consume ``chunks`` until the ``None`` that ends the stream, then put ``None`` on out."""
        while True:
            if self._pending and chunks.empty():
                try:
                    chunk = await self._get_within_linger(chunks)
                except TimeoutError:
                    await self._cut(out)
                    continue
            else:
                chunk = await chunks.get()
            if chunk is None:
                break
            if isinstance(chunk, RawLines):
                await self._take_raw(chunk, out)
                continue
            if _grouped(chunk):
                assert self._lines is not None, "groups of lines without change detection"
                items = await self._lines.items(chunk)  # in read order: after earlier lines
            else:
                items = cast(list[SourceItem], chunk)
            await self._take_chunk(items, out)
        if self._pending or self._consumed != self._cut_position:
            await self._cut(out)
        await out.put(None)

    async def _get_within_linger(
        self, chunks: asyncio.Queue[Chunk | None]
    ) -> Chunk | None:
        """The next chunk, or TimeoutError once ``linger`` seconds (of the injected ``sleep``)
        passed without one. A chunk that arrives as the time runs out is taken, never lost."""
        getting = asyncio.ensure_future(chunks.get())
        lingering = asyncio.ensure_future(self._sleep(self._linger))
        try:
            await asyncio.wait((getting, lingering), return_when=asyncio.FIRST_COMPLETED)
        finally:
            getting.cancel()
            lingering.cancel()
            await asyncio.gather(getting, lingering, return_exceptions=True)
        if getting.cancelled():
            raise TimeoutError
        return getting.result()

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
        """Take a source chunk (256 KiB of JSON Lines: thousands of records): validated a slice
        at a time, letting the event loop run in between (validating a whole chunk in one go
        holds the loop for tens of milliseconds, and the pacer misses its departure slots
        meanwhile), then looked up in the change index at once (one round trip per chunk: per
        slice, PostgreSQL state spent its time waiting on them) and batched."""
        before = self._stats.read
        held_since = time.perf_counter()
        taken: list[BatchRecord | None] = []
        ledger = self._scope.ledger
        for start in range(0, len(chunk), _SLICE):
            # whether the ledger holds anything changes only between slices (settling)
            self._ledger_active = ledger is not None and ledger.active
            taken.extend([self._take(item) for item in chunk[start : start + _SLICE]])
            if time.perf_counter() - held_since >= _MAX_HOLD:
                await asyncio.sleep(0)
                held_since = time.perf_counter()
        await self._batch(chunk, taken, before, out)

    async def _take_raw(self, chunk: RawLines, out: asyncio.Queue[Batch | None]) -> None:
        """Whole lines, ``_LANE_SLICE`` at a time (the loop runs in between, as in
        :meth:`_take_chunk`): a slice the typed lane takes whole becomes batch records at
        once, unless something is to be noted for the ledger (it holds a key, or a refusal of
        this chunk waits); any other slice is decoded and taken as usual. Then all are
        batched together, in read order."""
        before = self._stats.read
        held_since = time.perf_counter()
        items: list[SourceItem | BatchRecord] = []
        taken: list[BatchRecord | None] = []
        ledger, lane = self._scope.ledger, self.lane
        for start in range(0, len(chunk.bodies), _LANE_SLICE):
            stop = start + _LANE_SLICE
            self._ledger_active = ledger is not None and ledger.active
            keyed = (lane.accept_keyed(chunk.bodies[start:stop])
                     if lane is not None and not self._ledger_active and not self._noted
                     else None)
            if keyed is None:
                decoded = chunk.decode(start, stop)
                items.extend(decoded)
                taken.extend([self._take(item) for item in decoded])
            else:
                records = typed_records(keyed[0], chunk.ends[start:stop], *keyed[1:],
                                        id_hashes=self._changes is not None)
                self._stats.read += len(records)
                self._stats.valid += len(records)
                items.extend(records)
                taken.extend(records)
            if time.perf_counter() - held_since >= _MAX_HOLD:
                await asyncio.sleep(0)
                held_since = time.perf_counter()
        await self._batch(items, taken, before, out)

    async def _batch(self, items: Sequence[SourceItem | BatchRecord],
                     taken: list[BatchRecord | None],
                     before: int, out: asyncio.Queue[Batch | None]) -> None:
        """Drop unchanged records, and cut batches as they fill (``before``: records read
        before ``items``). Positions of refused and unchanged records are covered by the next
        batch cut."""
        if self._noted:  # the chunk's refusals and watched records, after the ledger's look-up
            await self._to_ledger()
        if self._seen is not None:
            await self._seen.flush([r for r in taken if r is not None])
        if self._changes is not None:
            ready = [r for r in taken if r is not None]
            unchanged = await self._changes.unchanged(ready)
            self._stats.unchanged += len(unchanged)
            if self._changes.known_unchanged and self._scope.ledger is not None:
                self._scope.ledger.acknowledged(self._changes.known_unchanged)
                self._changes.known_unchanged = []
            skip = {id(ready[i]) for i in unchanged}
        else:
            skip = set()
        if (not skip and self._lines is None and all(taken)
                and await self._cut_runs(items, cast(list[BatchRecord], taken), before, out)):
            return
        lines = self._lines
        for item, record in zip(items, taken, strict=True):
            if lines is not None and item.group:
                lines.took(item, record, record is not None and id(record) not in skip)
            if record is not None and id(record) not in skip:
                if record.order_key in self._pending_ids:  # a second version: next batch
                    self._stats.consumed(self._consumed, before)
                    await self._cut(out)
                self._pending.append(record)
                self._pending_ids.add(record.order_key)
            self._consumed = item.position
            before += item.unchanged or 1
            if len(self._pending) >= self._size:
                self._stats.consumed(item.position, before)
                await self._cut(out)
        self._stats.consumed(self._consumed, self._stats.read)

    async def _cut_runs(self, items: Sequence[SourceItem | BatchRecord],
                        records: list[BatchRecord], before: int,
                        out: asyncio.Queue[Batch | None]) -> bool:
        """What the loop of :meth:`_batch` does when every item became a record to send (no
        refusal, nothing unchanged, no groups of lines), done a batch at a time: unless an
        id repeats (in the chunk, or with the batch being filled), which the loop handles
        (False: nothing done). The same batches, cut at the same items."""
        keys = [r.order_key for r in records]
        pending_ids = self._pending_ids
        if len(set(keys)) != len(keys) or not pending_ids.isdisjoint(keys):
            return False
        start, size = 0, self._size
        while start < len(records):
            stop = start + max(1, size - len(self._pending))
            self._pending.extend(records[start:stop])
            self._pending_ids.update(keys[start:stop])
            stop = min(stop, len(records))
            self._consumed = items[stop - 1].position
            before += stop - start
            if len(self._pending) >= size:
                self._stats.consumed(self._consumed, before)
                await self._cut(out)
            start = stop
        self._stats.consumed(self._consumed, self._stats.read)
        return True

    def _take(self, item: SourceItem) -> BatchRecord | None:
        """A valid, encoded record, or None when it was dead-lettered (or stands for lines
        skipped undecoded)."""
        if item.unchanged:  # lines Ometria holds as they are (``line_groups.py``)
            stats = self._stats
            stats.read += item.unchanged
            stats.valid += item.unchanged
            stats.unchanged += item.unchanged
            return None
        self._stats.read += 1
        if item.error is not None:
            if self._seen is not None and item.id is not None:  # refused, yet still there
                self._seen.note(hash64(identity({"id": item.id})), {"id": item.id})
            self._refuse(item, [Problem("", item.error)], stage="source")
            return None
        record = item.record
        if self._transform is not None and record.__class__ is dict:
            record, failed = self._transform.apply(record)
            if record is None:
                if failed is None:
                    self._stats.filtered += 1  # skipped: neither sent nor dead-lettered
                else:
                    self._refuse(item, [Problem("", failed)], stage="transform")
                return None
        if self._seen is not None and record.__class__ is dict and record.get("id") is not None:
            self._seen.note(hash64(identity(record)), record)
        encoded, problems, warnings = self._prepare(record)
        if item.warnings:
            warnings = [*item.warnings, *warnings]
        for warning in warnings:
            self._scope.warn(warning, line=item.line, position=item.position, record=record)
        if encoded is None:
            self._refuse(item, problems, record=record)
            return None
        self._stats.valid += 1
        # the id's keys are taken here, while the decoded record is at hand (it is not kept):
        # Python's own hash orders versions in this process (60 ns); the stable 64-bit hash
        # the change index stores across runs costs 700 ns, so only change detection pays it
        order_key = hash((record.get("@collection"), record.get("id")))
        id_hash = hash64(identity(record)) if self._changes is not None else 0
        taken = BatchRecord(encoded, item.line, item.position, order_key, id_hash)
        ledger = self._scope.ledger
        # a record whose key the ledger cannot hold is not watched, unless a refusal earlier
        # in the chunk may have written it (an empty ledger: one attribute test)
        if ledger is not None and (self._noted or (
                self._ledger_active and ledger.may_hold(record_key(record, None)))):
            self._noted.append((taken, record))
        return taken

    def _prepare(self, record: Any) -> tuple[bytes | None, list[Problem], list[Problem]]:
        """:func:`prepare_record`; a record the schema validator's clean check passes (so its
        envelope and ``@type`` too: no problem, no warning) is only typed and encoded."""
        clean = self._clean
        if clean is not None and record.__class__ is dict and clean(record):
            if "@type" not in record:
                record["@type"] = self._type
            try:
                encoded = canonical_encode(record)
            except (TypeError, ValueError, OverflowError):
                pass  # prepare_record says why
            else:
                if len(encoded) <= MAX_RECORD_BYTES:
                    return encoded, _NONE, _NONE
        return prepare_record(self._type, record, self._validate)

    async def _to_ledger(self) -> None:
        """The chunk's refusals and watched records, in the order they were read, judged by
        the ledger once it looked their keys up: each refusal noted (new or known) and
        dead-lettered, each valid record whose key the ledger holds watched (its tick)."""
        noted, self._noted = self._noted, []
        ledger = self._scope.ledger
        assert ledger is not None
        refusals = any(not isinstance(n[0], BatchRecord) for n in noted)
        if not refusals and not ledger.active:
            return
        await ledger.look_up(
            record_key(n[1], None) if isinstance(n[0], BatchRecord) else n[0].key()
            for n in noted)
        for first, record in noted:
            if isinstance(first, BatchRecord):
                first.ledger_tick = ledger.watch(record)
            else:
                first.write(self._scope)

    def _refuse(self, item: SourceItem, reasons: list[Problem], stage: str = "validate",
                record: Any = None) -> None:
        """Dead-letter ``item`` with ``reasons``; ``record``: what was validated (the
        transform's result), else the record as read."""
        self._stats.refuse(reasons, _where(item))
        if item.error is not None:  # it never decoded: its raw input is what there is
            record = None
        elif record is None:
            record = item.record
        if self._lines is not None:
            self._lines.refused(record)
        refusal = Refusal(reasons, stage, item, record)
        if self._scope.ledger is None:
            refusal.write(self._scope)
        else:  # after the ledger looked its key up
            self._noted.append((refusal, None))


class Refusal(msgspec.Struct):
    """A refused item waiting for the ledger's look-up (``Batcher._to_ledger``)."""

    reasons: list[Problem]
    stage: str
    item: SourceItem
    record: Any

    def key(self) -> str:
        return record_key(self.record, self.item.position, self.item.id)

    def write(self, scope: PartScope) -> None:
        item = self.item
        scope.dead_letter_record(self.reasons, stage=self.stage, line=item.line,
                                 position=item.position, record=self.record, raw=item.raw,
                                 record_id=item.id)


def _where(item: SourceItem) -> str | None:
    """``line 12, id c5``: the refused record as a person finds it (line, id; None: neither)."""
    parts = [f"line {item.line}"] if item.line is not None else []
    record_id = item.record.get("id") if isinstance(item.record, dict) else None
    if record_id is not None:
        parts.append(f"id {record_id}")
    return ", ".join(parts) or None
