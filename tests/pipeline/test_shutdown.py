"""Signals for the whole run: remembered before the run starts, routed to it while it runs,
and the process's own handlers put back afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

from ometria_sync.config import Job
from ometria_sync.pipeline.job_io import Shutdown, SignalWatch
from ometria_sync.pipeline.job_run import RunOptions, run_job
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl


async def test_a_signal_before_the_run_starts_stops_it_before_anything_is_sent(
        make_job: Callable[..., Job], tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data" / "contacts.jsonl", contacts(10))
    job = make_job()
    fake = FakeOmetria()
    before = signal.getsignal(signal.SIGTERM)
    with SignalWatch() as watch:
        os.kill(os.getpid(), signal.SIGTERM)  # while the job loads, say
        result = await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: fake,
                               validator_factory=minimal_validator, signals=watch)
    assert signal.getsignal(signal.SIGTERM) == before
    assert watch.received == ["SIGTERM"]
    assert result.exit_code == 130 and fake.calls == []
    assert [s.outcome for s in result.streams] == ["interrupted"]
    assert not (tmp_path / "state" / "checkpoints.db").exists()  # the state was not touched


async def test_work_is_cut_short_by_a_stop_requested_while_it_runs() -> None:
    shutdown = Shutdown()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "done"

    async def stop_soon() -> None:
        await started.wait()
        shutdown.request("interrupted")

    stopper = asyncio.create_task(stop_soon())
    assert await asyncio.wait_for(shutdown.unless_requested(slow()), 5) is None
    await stopper

    async def quick() -> str:
        return "done"

    # only an immediate stop cuts work that starts after a graceful one
    assert await shutdown.unless_requested(quick(), immediate=True) == "done"
