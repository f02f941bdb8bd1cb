"""The queue of batches between the batcher and the dispatchers, paced by the state store.

Each dispatcher waits for the state (``StateStore.keep_up``) after a batch settles, so that a
change index slower than the network (random ids dirty about one page each once it holds
millions) slows the run down instead of growing its memory. That alone would leave this queue
full: a batch per dispatcher, ``batch_size`` records each, waiting in memory behind the disk.
So a batch joins the queue only once the state caught up: while it is behind, records wait in
the source, unread. Guarantee: beyond the state's bounds, at most the batches already queued
and one per dispatcher are in memory; the end of the stream (``None``) never waits.
"""

from __future__ import annotations

import asyncio

from ometria_sync.pipeline.batch import Batch
from ometria_sync.state import StateStore


class BatchQueue(asyncio.Queue[Batch | None]):
    """An ``asyncio.Queue`` of ``size`` batches whose ``put`` first waits for the state."""

    def __init__(self, size: int, state: StateStore) -> None:
        super().__init__(size)
        self._state = state

    async def put(self, item: Batch | None) -> None:
        if item is not None:
            await self._state.catch_up()  # a failed write is raised to the dispatchers
        await super().put(item)
