"""The batches' queue waits for the state store: records wait in the source, not in memory."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from ometria_sync.pipeline.batch import Batch
from ometria_sync.pipeline.batch_queue import BatchQueue
from ometria_sync.state.sqlite_store import SqliteState
from ometria_sync.state.store import MAX_QUEUED_HASHES


async def test_a_batch_joins_the_queue_only_once_the_state_caught_up(tmp_path: Path) -> None:
    state = await SqliteState.open(f"sqlite:///{tmp_path / 'cp.db'}")
    disk = threading.Event()  # a slow change index: nothing is written until it is set
    try:
        state.thread.submit(lambda store: disk.wait(5), hashes=MAX_QUEUED_HASHES + 1)
        queue = BatchQueue(4, state)
        put = asyncio.create_task(queue.put(Batch(0, [], None)))
        await asyncio.sleep(0.05)
        assert not put.done() and queue.empty()
        await asyncio.wait_for(queue.put(None), 1)  # the end of the stream never waits
        disk.set()
        await asyncio.wait_for(put, 5)
        assert queue.qsize() == 2
    finally:
        disk.set()
        await state.aclose()


async def test_a_failed_write_is_left_to_the_dispatchers(tmp_path: Path) -> None:
    state = await SqliteState.open(f"sqlite:///{tmp_path / 'cp.db'}")

    def broken(store: object) -> None:
        raise OSError("disk full")

    try:
        state.thread.submit(broken, hashes=MAX_QUEUED_HASHES + 1)
        queue = BatchQueue(4, state)
        await asyncio.wait_for(queue.put(Batch(0, [], None)), 5)  # catch_up raises nothing
        assert queue.qsize() == 1
        with pytest.raises(OSError, match="disk full"):
            await state.keep_up()  # raised once, to whoever keeps up next
    finally:
        await state.aclose()
