"""A part's tasks (the reader, the batcher, the dispatchers) are each checked when they end:
a bug in any of them is raised from the run, never swallowed nor left to hang it, and a run
with many dispatchers ends once they all have."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.config import Job
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.dispatch import Delivery
from ometria_sync.pipeline.job_run import RunOptions, run_job
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl


class _Bug(Exception):
    """Not an ``OmetriaSyncError``: a bug, to be raised loudly."""


async def _run(job: Job, fake: FakeOmetria) -> Any:
    return await asyncio.wait_for(
        run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: fake,
                validator_factory=minimal_validator, handle_signals=False), 20)


@pytest.mark.parametrize("where", ["batcher", "dispatcher"])
async def test_a_bug_in_a_task_is_raised_from_the_run(
        make_job: Callable[..., Job], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    write_jsonl(tmp_path / "data" / "contacts.jsonl", contacts(500))
    calls = 0

    async def broken(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first chunk or batch (the other dispatchers go on)
            raise _Bug(where)
        return await original(*args, **kwargs)

    if where == "batcher":
        original: Any = Batcher._batch

        async def batch(self: Batcher, *args: Any) -> None:
            await broken(self, *args)
        monkeypatch.setattr(Batcher, "_batch", batch)
    else:
        original = Delivery.deliver

        async def deliver(self: Delivery, *args: Any) -> Any:
            return await broken(self, *args)
        monkeypatch.setattr(Delivery, "deliver", deliver)
    with pytest.raises(_Bug, match=where):
        await _run(make_job(batch_size=10, concurrency=8), FakeOmetria())


async def test_a_run_with_many_dispatchers_ends_once_they_all_have(
        make_job: Callable[..., Job], tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data" / "contacts.jsonl", contacts(300))
    fake = FakeOmetria()
    result = await _run(make_job(batch_size=5, concurrency=256), fake)
    assert result.exit_code == 0
    assert result.streams[0].sent == 300
    assert sum(len(records) for _, records in fake.calls) == 300
