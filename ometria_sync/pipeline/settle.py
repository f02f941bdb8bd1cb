"""What a settled batch writes: its change hashes, the watermark, the dead letter, the checkpoint.

A batch is *settled* when ``Delivery.deliver`` (``dispatch.py``) returned its ``Outcome``
(``batch.py``) without a failure: every record in it was either acknowledged by Ometria or
written to the dead letter. :meth:`Settlement.settle` is the one
place that outcome is written down, the way a Singer target emits its state only after draining.

**The checkpoint** is the contiguous low watermark (:class:`Watermark`): batches finish out of
order, and only the end position of the highest-numbered batch before which every batch is
settled may be checkpointed, so a crash never skips a record that was not delivered. A failed
batch never settles, so the checkpoint never passes it. It is saved when it moved and
``SAVE_INTERVAL`` seconds passed since the last save (a save per batch was a fifth of a first
run's CPU at thousands of batches a second, and PostgreSQL's round trips), and always when the
part ends (done, failed, interrupted: :meth:`Settlement.finish`) and when a batch fails. A kill -9
resends what was in flight and what settled since the last save: the batches that settled
within ``SAVE_INTERVAL`` seconds after it (at-least-once: Ometria merges by id).

**The change hashes** of cleanly acknowledged records become the reference the next run compares
against. Writing one transaction per batch was the biggest cost on the event loop at 200
requests/s (2.6 times the time per hash), so they wait in :class:`AckedHashes` and are written
``HASHES_PER_WRITE`` at a time, or once ``HASHES_MAX_AGE``
seconds passed since the last write, in one transaction (inserted in id order). Records
Ometria refused or may have refused (``rejected``/``skipped``, a failed batch, one cut off at
the grace period) have their stored hashes deleted at once, before any later write: Ometria
may hold this version or the one before.

**The ordering rule**, kept by :meth:`Settlement.settle` alone (every write goes through the state
store's one ordered queue, and a failed write stops the ones behind it):

1. the dead letter and the ledger's refusals (``ledger.py``) are synced before the checkpoint
   is saved: a checkpoint never passes a refused record that is not written down;
2. a waiting hash that *replaces* a stored one (``BatchRecord.replaces``) is written before the
   checkpoint that passes it (:meth:`AckedHashes.before_checkpoint`). Otherwise a kill -9
   between the two would leave the older stored hash under a checkpoint past the newer version,
   and a later revert to the older value (A -> B -> A) would be judged unchanged and never sent.
   So whenever a checkpoint is durable past an acknowledged version, the stored hash of that id
   is the acknowledged one or absent, never an older one. A hash may wait past a checkpoint only
   while no hash can be stored for its id (a new id, the bulk of a first export): if the process
   dies, the id stays without a reference, so the next read of it counts as changed and is sent;
3. a batch acknowledged beyond the checkpoint (an earlier batch still in flight) has its hashes
   written at once: a resume re-reads those records, and only their stored hashes keep them
   from being sent again;
4. a record leaves the ledger of refused records only once Ometria acknowledged it cleanly: its
   row is dropped when its batch settles, never before.
"""

from __future__ import annotations

import math
import time

import structlog

from ometria_sync.clock import Clock
from ometria_sync.pipeline.batch import Batch, BatchRecord, Outcome, PartScope
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.ledger import RecordLedger
from ometria_sync.pipeline.line_groups import LineGroups
from ometria_sync.sources import Position
from ometria_sync.state import StateStore

log = structlog.get_logger("ometria_sync.stream")

#: acknowledged records' change hashes written per transaction (a write of random ids
#: rewrites about every page of the index, so larger writes cost less per hash: 1.6 us a hash
#: 5,000 at a time against 1.0 at 20,000 for 200,000 new SQLite ids; but at 20,000 a first
#: run of ten million ids passed 150 MB, ``BENCHMARKS.md``) ...
HASHES_PER_WRITE = 5_000
#: ... or after this many seconds, whichever comes first
HASHES_MAX_AGE = 2.0
#: seconds between checkpoint saves while a part runs (it always saves at its end): a kill -9
#: resends, beyond the batches in flight, those settled within this long after the last save
SAVE_INTERVAL = 0.1


class Watermark:
    """Tracks settled batch numbers and yields the position that may be checkpointed."""

    def __init__(self) -> None:
        self._next = 0  # lowest batch number not yet settled
        self._settled: dict[int, tuple[Position | None, int]] = {}
        self.position: Position | None = None
        self.records = 0  # records covered by the watermark

    def settle(self, seq: int, end_position: Position | None, records: int) -> bool:
        """Mark batch ``seq`` settled. Returns True when the watermark moved."""
        if seq < self._next or seq in self._settled:
            raise ValueError(f"batch {seq} settled twice")
        self._settled[seq] = (end_position, records)
        moved = False
        while self._next in self._settled:
            self.position, count = self._settled.pop(self._next)
            self.records += count
            self._next += 1
            moved = True
        return moved

    @property
    def pending(self) -> int:
        """Batches settled out of order, waiting for an earlier one."""
        return len(self._settled)


class AckedHashes:
    """One part's acknowledged hashes not yet written: one per id, the last acknowledged."""

    def __init__(
        self, state: StateStore, changes: ChangeFilter, *, clock: Clock = time.monotonic,
        groups: LineGroups | None = None,
    ) -> None:
        self._state = state
        self._changes = changes
        #: the part's groups of lines (``line_groups.py``): kept once acknowledged
        self._groups = groups
        self._clock = clock
        self._acked: dict[int, int] = {}
        self._replacing = False  # a waiting hash may replace a stored one
        self._since = clock()

    def remember(self, records: list[BatchRecord]) -> None:
        """Ometria acknowledged these: their hashes become the reference for the next run
        (written now when the buffer is full or old enough)."""
        # one loop, the last one wins (a dict made and merged, then a list for ``any``, cost
        # 2.5 times as much)
        acked, replacing = self._acked, False
        for r in records:
            acked[r.id_hash] = r.content_hash
            if r.replaces:
                replacing = True
        self._replacing = self._replacing or replacing
        if self._groups is not None:
            self._groups.acknowledged(records)
        if (len(self._acked) >= HASHES_PER_WRITE
                or self._clock() - self._since >= HASHES_MAX_AGE):
            self.write()

    def write(self) -> None:
        """Submit every waiting hash to the state store now, in one write (the store inserts
        them in id order)."""
        self._since = self._clock()
        self._replacing = False
        points, pointed = (self._groups.pointers(self._acked) if self._groups is not None
                           else ({}, []))
        if self._acked:
            pairs, self._acked = list(self._acked.items()), {}
            stream = self._changes.stream_id
            written = (self._state.remember(stream, pairs, [points.get(i, 0) for i, _ in pairs])
                       if points else self._state.remember(stream, pairs))
            self._changes.written(written, pairs)
        if self._groups is not None:
            self._groups.flush(pointed)

    def before_checkpoint(self) -> None:
        """A checkpoint is about to be saved past every waiting hash: write them first if one
        replaces a stored hash (rule 2 of the module docstring); new ids' may go on waiting."""
        if self._replacing:
            self.write()

    def forget(self, records: list[BatchRecord]) -> None:
        """These records' outcome is not a clean acknowledgement: Ometria may hold this version
        or the one before. Their stored hashes are deleted now (before any later write), so
        neither this run nor a later one skips them as unchanged."""
        ids = [r.id_hash for r in records]
        for id_hash in ids:
            self._acked.pop(id_hash, None)
        if self._groups is not None:
            self._groups.spoil(records)
        self._changes.forget(ids)
        self._state.forget_ids(self._changes.stream_id, ids)

    @property
    def waiting(self) -> int:
        """Hashes acknowledged and not yet written."""
        return len(self._acked)


class Settlement:
    """Writes down one part's batch outcomes: hashes, watermark, dead letter, checkpoint, in the
    order of the module docstring. Checkpoints are saved only with ``save``; ``hashes`` is
    None without change detection (or when nothing is saved)."""

    def __init__(
        self,
        scope: PartScope,
        state: StateStore,
        *,
        part_key: str,
        fingerprint: str | None,
        save: bool,
        hashes: AckedHashes | None,
        positions: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self._scope = scope
        self._state = state
        self._key = part_key
        self._fingerprint = fingerprint
        self._save = save
        self._hashes = hashes
        #: False: the part's positions are not the source's (the ledger's resends), so the
        #: stream's reported position is left alone
        self._positions = positions
        self._watermark = Watermark()
        self._saved_records = 0
        self._clock = clock
        self._saved_at = -math.inf
        self._unsaved = False  # the watermark moved since the last save

    def settle(self, batch: Batch, outcome: Outcome) -> None:
        """``batch`` was delivered with ``outcome``: its hashes are remembered or forgotten,
        and, unless it failed, it settles and the checkpoint follows the watermark."""
        hashes = self._hashes
        if outcome.failure is not None:  # not settled: whatever was sent may or may not hold
            self.abandon(batch.records, f"not delivered: {outcome.failure}")
            self.checkpoint()  # the run stops: what settled before it is saved now
            return
        if self._scope.ledger is not None:
            self._to_ledger(self._scope.ledger, outcome)
        if hashes is not None:
            if outcome.unconfirmed:
                hashes.forget(outcome.unconfirmed)
            if outcome.acknowledged:
                hashes.remember(outcome.acknowledged)
        watermark = self._watermark
        moved = watermark.settle(batch.seq, batch.end_position, outcome.delivered)
        if watermark.pending and hashes is not None:
            hashes.write()  # acknowledged beyond the checkpoint: rule 3
        if not moved:
            return
        if self._positions:
            self._scope.stats.position = watermark.position
        if not self._save:
            return
        self._unsaved = True
        if self._clock() - self._saved_at >= SAVE_INTERVAL:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Save the watermark now if it moved since the last save: after the dead letter and
        the ledger are synced (rule 1) and the waiting hashes that replace stored ones are
        written (rule 2)."""
        if not self._unsaved:
            return
        watermark = self._watermark
        self._scope.dead_letter.sync()  # rule 1
        if self._scope.ledger is not None:
            self._scope.ledger.sync()  # rule 1, for the ledger's refusals
        if self._hashes is not None:
            self._hashes.before_checkpoint()  # rule 2
        self._state.save(self._scope.stream, self._key, watermark.position, self._fingerprint,
                         watermark.records - self._saved_records)
        self._saved_records = watermark.records
        self._unsaved = False
        self._saved_at = self._clock()
        log.debug("checkpoint", stream=self._scope.stream, position=watermark.position)

    @staticmethod
    def _to_ledger(ledger: RecordLedger, outcome: Outcome) -> None:
        """Records not confirmed are noted, to be resent by the next run (a refusal is noted
        already); records acknowledged leave the ledger (after the acknowledgement: rule 4)."""
        if outcome.unconfirmed:
            ledger.undelivered(outcome.unconfirmed, "not confirmed by Ometria (answered "
                               "rejected or skipped)")
        if ledger.active:
            ledger.acknowledged(outcome.acknowledged)

    def abandon(self, records: list[BatchRecord], reason: str) -> None:
        """These records' batch never settles (it failed, or was cut off at the grace period):
        their stored hashes are forgotten; the checkpoint stays before them; the ledger keeps
        them, to be resent by the next run."""
        if self._hashes is not None:
            self._hashes.forget(records)
        if self._scope.ledger is not None and records:
            self._scope.ledger.undelivered(records, reason)

    def finish(self) -> None:
        """The part is over (done, failed or interrupted): the checkpoint is saved if it moved
        since the last save, then every waiting hash and refusal is written."""
        self.checkpoint()
        if self._scope.ledger is not None:
            self._scope.ledger.sync()
        if self._hashes is not None:
            self._hashes.write()
