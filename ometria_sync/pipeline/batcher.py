"""The batcher: validates records, dead-letters the bad ones, cuts batches of at most 100.

A batch is cut when it is full, at the end of the stream, and when no record arrived for
``linger`` seconds (a slow source never holds a half-full batch forever). Every batch carries
the position after the last item the batcher *consumed* for it, including items it dead-lettered,
so once the batch settles everything before that position is settled too. Items dead-lettered
after the last full batch are covered by a final, possibly empty, batch.

One stream is one record type, so a batch never mixes ``@type``s.
"""

from __future__ import annotations

import asyncio
import time
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
from ometria_sync.state.state_thread import StateThread

Validator = Callable[[str, Any], Verdict]

#: source items taken at a time (validated, looked up in the change index, batched) ...
_SLICE = 128
#: ... and the longest the batcher holds the event loop before it lets others run (seconds)
_MAX_HOLD = 0.005


class BatchRecord(msgspec.Struct, gc=False):
    """A valid record ready to send: its encoding, what names it in a dead letter, and its
    hashes for change detection (0 when change detection is off).

    Only bytes and numbers: the decoded record is dropped once encoded, so the thousands of
    records queued and in flight are nothing for the garbage collector to walk (holding the
    dicts made full collections take tens of milliseconds, and the pacer missed slots)."""

    encoded: bytes
    line: int | None
    position: Position
    id_hash: int = 0
    content_hash: int = 0


class ChangeFilter:
    """Skips records whose content hash equals the one stored for their id at acknowledgement.
    With ``refresh`` nothing is skipped, but hashes are still computed (and later stored).
    Lookups are short reads on the event loop's own connection (``StateThread.read``): they see
    the hashes committed so far, from earlier runs and from this one (``stream_id`` from
    ``ChangeIndex.stream_id``)."""

    def __init__(self, state: StateThread, stream_id: int, *, refresh: bool = False) -> None:
        self.state = state
        self.stream_id = stream_id
        self.refresh = refresh

    def unchanged(self, records: list[BatchRecord]) -> set[int]:
        """Indexes into ``records`` (their ``id_hash`` set) of those that are unchanged since
        last acknowledged."""
        for r in records:
            r.content_hash = hash64(r.encoded)
        if self.refresh or not records:
            return set()
        id_hashes = [r.id_hash for r in records]
        known = self.state.read(lambda store: store.changes.lookup(self.stream_id, id_hashes))
        return {i for i, r in enumerate(records) if known.get(r.id_hash) == r.content_hash}


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
            unchanged = self._changes.unchanged(ready)
            self._stats.unchanged += len(unchanged)
            skip = {id(ready[i]) for i in unchanged}
        else:
            skip = set()
        before = self._stats.read - len(items)
        for index, (item, record) in enumerate(zip(items, taken, strict=True)):
            if record is not None and id(record) not in skip:
                self._pending.append(record)
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
        # the id's hash is taken here, while the decoded record is at hand (it is not kept)
        id_hash = hash64(identity(record)) if self._changes is not None else 0
        return BatchRecord(encoded, item.line, item.position, id_hash)

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
