"""The change hashes of acknowledged records, buffered and written to the state store in bulk.

Once Ometria acknowledged a record cleanly, its content hash becomes the reference the next run
compares against. Writing one transaction per batch was the biggest cost on the event loop at
200 requests/s (2.6 times the time per hash), so hashes wait here and are written
``HASHES_PER_WRITE`` at a time, or once ``HASHES_MAX_AGE`` seconds passed since the last write,
sorted, in one transaction.

Guarantees (with the checkpointer, which calls :meth:`AckedHashes.write` whenever a batch is
acknowledged beyond the checkpoint): the hashes still waiting belong to records before the
checkpoint, which a resume does not re-read, so if the process dies those records only count as
changed in the next export, and a change is never missed. :meth:`AckedHashes.forget` deletes
stored hashes at once, before any later write.
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
        self._since = clock()

    def remember(self, records: list[BatchRecord]) -> None:
        """Ometria acknowledged these: their hashes become the reference for the next run
        (written now when the buffer is full or old enough)."""
        self._acked.update((r.id_hash, r.content_hash) for r in records)  # the last one wins
        if (len(self._acked) >= HASHES_PER_WRITE
                or self._clock() - self._since >= HASHES_MAX_AGE):
            self.write()

    def write(self) -> None:
        """Submit every waiting hash to the state store now, in one sorted write."""
        self._since = self._clock()
        if not self._acked:
            return
        pairs, self._acked = sorted(self._acked.items()), {}
        written = self._state.remember(self._changes.stream_id, pairs)
        self._changes.written(written, pairs)

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
