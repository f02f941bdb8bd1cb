"""The change hashes of acknowledged records, buffered and written to the state store in bulk.

Once Ometria acknowledged a record cleanly, its content hash becomes the reference the next run
compares against. Writing one transaction per batch was the biggest cost on the event loop at
200 requests/s (2.6 times the time per hash), so hashes wait here and are written
``HASHES_PER_WRITE`` at a time, or once ``HASHES_MAX_AGE`` seconds passed since the last write,
sorted, in one transaction.

Guarantee (with the checkpointer): whenever a checkpoint is durable past an acknowledged
version, the stored hash of that id is the acknowledged one or absent, never an older one.
A hash may wait past a checkpoint only while no hash can be stored for its id (a new id, the
bulk of a first export): if the process dies, the id stays without a reference, so the next
read of it counts as changed and is sent. A hash that *replaces* a stored one
(``BatchRecord.replaces``) is written before the checkpoint that passes it
(:meth:`AckedHashes.before_checkpoint`, in the state's ordered queue; a failed write stops the
save behind it). Otherwise a kill -9 between the two would leave the older stored hash under a
checkpoint past the newer version, and a later revert to the older value (A -> B -> A) would be
judged unchanged and never sent. Hashes acknowledged beyond the checkpoint are written at once
(the checkpointer asks), since a resume re-reads those records. :meth:`AckedHashes.forget`
deletes stored hashes at once, before any later write.
"""

from __future__ import annotations

import time

from ometria_sync.clock import Clock
from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.state.store import StateStore

#: acknowledged records' change hashes written per transaction ...
HASHES_PER_WRITE = 5000
#: ... or after this many seconds, whichever comes first
HASHES_MAX_AGE = 2.0


class AckedHashes:
    """One part's acknowledged hashes not yet written: one per id, the last acknowledged."""

    def __init__(
        self, state: StateStore, changes: ChangeFilter, *, clock: Clock = time.monotonic
    ) -> None:
        self._state = state
        self._changes = changes
        self._clock = clock
        self._acked: dict[int, int] = {}
        self._replacing = False  # a waiting hash may replace a stored one
        self._since = clock()

    def remember(self, records: list[BatchRecord]) -> None:
        """Ometria acknowledged these: their hashes become the reference for the next run
        (written now when the buffer is full or old enough)."""
        self._acked.update((r.id_hash, r.content_hash) for r in records)  # the last one wins
        self._replacing = self._replacing or any(r.replaces for r in records)
        if (len(self._acked) >= HASHES_PER_WRITE
                or self._clock() - self._since >= HASHES_MAX_AGE):
            self.write()

    def write(self) -> None:
        """Submit every waiting hash to the state store now, in one sorted write."""
        self._since = self._clock()
        self._replacing = False
        if not self._acked:
            return
        pairs, self._acked = sorted(self._acked.items()), {}
        written = self._state.remember(self._changes.stream_id, pairs)
        self._changes.written(written, pairs)

    def before_checkpoint(self) -> None:
        """A checkpoint is about to be saved past every waiting hash: write them first if one
        replaces a stored hash (see the module docstring); new ids' hashes may go on waiting."""
        if self._replacing:
            self.write()

    def forget(self, records: list[BatchRecord]) -> None:
        """These records' outcome is not a clean acknowledgement: Ometria may hold this version
        or the one before. Their stored hashes are deleted now (before any later write), so
        neither this run nor a later one skips them as unchanged."""
        ids = [r.id_hash for r in records]
        for id_hash in ids:
            self._acked.pop(id_hash, None)
        self._changes.forget(ids)
        self._state.forget_ids(self._changes.stream_id, ids)

    @property
    def waiting(self) -> int:
        """Hashes acknowledged and not yet written."""
        return len(self._acked)
