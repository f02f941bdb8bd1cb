"""The contiguous low watermark: how far a stream is *safely* done when batches finish out of order.

Batches are numbered in the order they were cut. A batch is *settled* when Ometria acknowledged
it or its records were dead-lettered. The watermark is the end position of the highest-numbered
batch before which every batch is settled; only that position may be checkpointed, so a crash
never skips a record that was not delivered.
"""

from __future__ import annotations

from ometria_sync.sources.base import Position


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
