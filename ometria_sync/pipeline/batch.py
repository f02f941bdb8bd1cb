"""What flows from the batcher to the dispatchers and back: records ready to send, the batches of
them, what became of a batch (its :class:`Outcome`), the part they all work for, and the order
batches holding one id must keep (:class:`VersionOrder`).

A batch's ``end_position`` is the source position after the last item consumed for it (its
dead-lettered and unchanged items included), so once the batch settles every item before that
position is settled too: the watermark checkpoints it.

One part of one stream (a file, a query) is read, batched and delivered by several objects; what
they share is named once, in :class:`PartScope`: the stream, the source part's label (both name
each dead-letter entry), the stream's live counters and the dead letter they write to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar

import msgspec

from ometria_sync.errors import OmetriaSyncError
from ometria_sync.pipeline.ledger import RecordLedger
from ometria_sync.pipeline.stats import StreamStats, WarningSample
from ometria_sync.schemas import Problem
from ometria_sync.sources import Position
from ometria_sync.state import DeadLetterWriter, WarningLog


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
    #: a change hash may be stored for its id (found by the lookup, an earlier version sent by
    #: this run, or a full refresh, which looks nothing up): once acknowledged, its hash is
    #: written before a checkpoint passes it (``settle.py``)
    replaces: bool = False
    #: the ledger's tick for a record whose key it holds (0: none): acknowledged, it leaves
    #: the ledger (``ledger.py``)
    ledger_tick: int = 0
    #: the group of lines it was read in, kept once acknowledged (``line_groups.py``; 0: none)
    group: int = 0
    #: as a source item's: a record made from one line stands for no skipped line (the typed
    #: lane hands its records to ``Batcher._batch`` as the items they were read as)
    unchanged: ClassVar[int] = 0


class Batch(msgspec.Struct):
    """Up to ``batch_size`` records of one type, numbered in the order they were cut."""

    seq: int
    records: list[BatchRecord]
    #: after the last source item consumed for it (None: none consumed yet)
    end_position: Position | None


class Outcome(msgspec.Struct):
    """What delivering one batch came to (``settle.py`` writes it down). Without ``failure`` the
    batch is settled: each record was acknowledged or dead-lettered."""

    #: records Ometria answered for with a 2xx, less those it said it ``skipped``
    delivered: int = 0
    #: records Ometria acknowledged cleanly (``rejected: 0``, ``skipped: 0``): their change
    #: hashes become the reference for the next run
    acknowledged: list[BatchRecord] = msgspec.field(default_factory=list)
    #: records Ometria refused or may have refused: their stored change hashes are forgotten
    unconfirmed: list[BatchRecord] = msgspec.field(default_factory=list)
    #: records Ometria refused one by one (400/413/422), now in the dead letter
    refused: int = 0
    #: the batch did not settle: Ometria refused the key, or the retries ran out (stops the run)
    failure: OmetriaSyncError | None = None


def encode_body(records: list[BatchRecord]) -> bytes:
    """The JSON array Ometria's push endpoint takes, joined from already-encoded records."""
    return b"[" + b",".join([r.encoded for r in records]) + b"]"


class PartScope(msgspec.Struct, frozen=True):
    """The stream and source part one batcher and one delivery serve."""

    stream: str
    #: the source part's label, as a dead-letter entry names it
    source: str
    stats: StreamStats
    dead_letter: DeadLetterWriter
    #: the stream's ledger of refused records (None: a run that writes no state)
    ledger: RecordLedger | None = None
    #: ``warnings.jsonl`` (None: no file, e.g. ``plan``)
    warning_log: WarningLog | None = None

    def warn(self, problem: Problem, *, line: int | None, position: Position,
             record: Any) -> None:
        """Count one warning, naming its record in the stats' sample and in the warnings
        file."""
        record_id = record.get("id") if record.__class__ is dict else None
        record_id = record_id if isinstance(record_id, str) else None
        sample = WarningSample(source=self.source, path=problem.path, reason=problem.message,
                               line=line, position=None if line is not None else position,
                               id=record_id)
        self.stats.warn(problem, sample)
        if self.warning_log is not None:
            self.warning_log.write(stream=self.stream, source=self.source, path=problem.path,
                                   reason=problem.message, line=line, position=position,
                                   id=record_id)

    def dead_letter_record(
        self,
        reasons: list[Problem],
        *,
        stage: str,
        line: int | None,
        position: Position,
        record: Any,
        raw: bytes | str | None = None,
        record_id: str | None = None,
    ) -> None:
        """Count one refused record, note it in the ledger (new or known), and write it to
        the dead letter, naming this part."""
        self.stats.dead_lettered += 1
        known_since = None
        if self.ledger is not None:
            known_since = self.ledger.refused(reasons, record, raw, position, record_id,
                                              by_ometria=stage == "ometria")
        else:  # no ledger to know it by
            self.stats.refused_new += 1
        self.dead_letter.write(stream=self.stream, source=self.source, reasons=reasons,
                               stage=stage, line=line, position=position, record=record, raw=raw,
                               record_id=record_id, known_since=known_since)


# -------------------------------------------------------------------------------------------------
# One version of a record in flight at a time: a later version waits for the earlier to settle.
#
# Ometria merges records by id and the last write wins. Batches are sent by several dispatchers
# and retried after failures, so without care a batch holding version 1 of ``c1`` can be retried
# after the batch holding version 2 succeeded, and Ometria ends on version 1.
#
# :class:`VersionOrder` prevents that. Each batch *claims* its ids when a dispatcher takes it
# (batches are taken in the order they were cut, so claims follow the source's order); the claim
# waits until every earlier batch still holding one of those ids has *settled* (acknowledged,
# dead-lettered, failed or cancelled), then the batch is sent. One order serves every stream of a
# record type in the run, so two streams of contacts never race on one id either.
#
# Guarantees: a batch never waits for a later one (claims point backwards only), so the earliest
# unsettled batch always makes progress; memory holds only the ids of unsettled batches.
# -------------------------------------------------------------------------------------------------

class Claim:
    """A batch's hold on its ids, from when it was taken until :meth:`release`."""

    __slots__ = ("_after", "_ids", "_order", "_settled")

    def __init__(self, order: VersionOrder, ids: list[int], after: list[Claim]) -> None:
        self._order = order
        self._ids = ids
        self._after = after
        self._settled = asyncio.Event()

    @property
    def waits_for(self) -> int:
        """How many earlier batches this one must let settle first."""
        return sum(1 for claim in self._after if not claim._settled.is_set())

    async def ready(self) -> None:
        """Return once every earlier batch holding one of these ids has settled."""
        for claim in self._after:
            await claim._settled.wait()
        self._after = []

    def release(self) -> None:
        """This batch settled (whatever the outcome): later versions may go. Idempotent."""
        if self._settled.is_set():
            return
        self._settled.set()
        self._order._release(self)


class VersionOrder:
    """Which unsettled batch holds the latest version of each id (by its ``order_key``)."""

    def __init__(self) -> None:
        self._holder: dict[int, Claim] = {}

    def claim(self, ids: Iterable[int]) -> Claim:
        """Claim ``ids`` for a batch. Call in the order the batches are to be sent, without
        awaiting in between; then ``await claim.ready()`` before sending it."""
        held = list(ids)
        after = {id(c): c for c in (self._holder.get(i) for i in held) if c is not None}
        claim = Claim(self, held, list(after.values()))
        for i in held:
            self._holder[i] = claim
        return claim

    def _release(self, claim: Claim) -> None:
        for i in claim._ids:
            if self._holder.get(i) is claim:
                del self._holder[i]

    @property
    def held(self) -> int:
        """Ids held by unsettled batches (for tests and diagnostics)."""
        return len(self._holder)
