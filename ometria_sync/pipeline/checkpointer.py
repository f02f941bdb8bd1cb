"""Moving one part's checkpoint as its batches settle.

The checkpoint is the contiguous low watermark (``watermark.py``), saved each time it moves,
and only after the dead letter was made durable: a checkpoint never passes a refused record
that is not written down. The change hashes it relies on go first too, in the same ordered
queue: any waiting hash that replaces a stored one is written before the save, so a durable
checkpoint never sits over an older stored hash of a version it passed (``acked_hashes.py``).
A batch acknowledged beyond the checkpoint has its change hashes written at once: a resume
re-reads those records, and only their stored hashes keep them from being sent again.
"""

from __future__ import annotations

import structlog

from ometria_sync.pipeline.acked_hashes import AckedHashes
from ometria_sync.pipeline.batch import Batch, PartScope
from ometria_sync.pipeline.watermark import Watermark
from ometria_sync.state.store import StateStore

log = structlog.get_logger("ometria_sync.stream")


class Checkpointer:
    """Turns one part's settled batches into checkpoints (saved only with ``save``)."""

    def __init__(
        self,
        scope: PartScope,
        state: StateStore,
        *,
        part_key: str,
        fingerprint: str | None,
        save: bool,
        hashes: AckedHashes | None,
    ) -> None:
        self._scope = scope
        self._state = state
        self._key = part_key
        self._fingerprint = fingerprint
        self._save = save
        self._hashes = hashes
        self._watermark = Watermark()
        self._saved_records = 0

    def settle(self, batch: Batch, delivered: int) -> None:
        """``batch`` settled with ``delivered`` records acknowledged."""
        watermark = self._watermark
        moved = watermark.settle(batch.seq, batch.end_position, delivered)
        if watermark.pending and self._hashes is not None:
            self._hashes.write()  # acknowledged beyond the checkpoint: see the module docstring
        if not moved:
            return
        self._scope.stats.position = watermark.position
        if not self._save:
            return
        newly = watermark.records - self._saved_records
        self._scope.dead_letter.sync()
        if self._hashes is not None:
            self._hashes.before_checkpoint()
        self._state.save(self._scope.stream, self._key, watermark.position, self._fingerprint,
                         newly)
        self._saved_records = watermark.records
        log.debug("checkpoint", stream=self._scope.stream, batch=batch.seq,
                  position=watermark.position)
