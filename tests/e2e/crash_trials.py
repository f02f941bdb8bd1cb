"""kill -9 trials, one shape for every kind of source and state: start the real CLI, wait, SIGKILL
it (no cleanup at all), rerun; then check that nothing was lost and that each crash resent no
more than what can be in flight, and what settled since the last checkpoint save.

A trial whose run ended before the kill proves nothing, so it fails the test at once, with the
run's stderr.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.pipeline.settle import SAVE_INTERVAL
from tests.e2e.conftest import CliResult, Workspace

Process = asyncio.subprocess.Process
#: decides when to kill a started run (it returns early when the run ends on its own)
Wait = Callable[[Process], Awaitable[None]]
#: the stream's checkpointed position as a comparable number (None: none saved yet)
Position = Callable[[], Awaitable[int | None]]
#: records a kill may resend beyond those in flight: the trials run at 40 requests/s of 100
#: records, and a batch settled within ``SAVE_INTERVAL`` of the last save waits for the next
SETTLED_UNSAVED = math.ceil(40 * SAVE_INTERVAL) * 100


def after_random(rnd: random.Random, low: float, high: float) -> Wait:
    """Kill after ``low``..``high`` seconds, drawn from ``rnd`` (seeded: the trials repeat)."""

    async def wait(proc: Process) -> None:
        await asyncio.sleep(rnd.uniform(low, high))

    return wait


def once(condition: Callable[[], bool], seconds: float = 30.0) -> Wait:
    """Kill once ``condition()`` holds (looked at every 50 ms); the test fails when it does not
    within ``seconds``."""

    async def wait(proc: Process) -> None:
        for _ in range(round(seconds / 0.05)):
            if condition() or proc.returncode is not None:
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"the run did not reach the moment to kill it in {seconds} s")

    return wait


async def kill_mid_run(workspace: Workspace, url: str, wait: Wait) -> None:
    """Start ``run job.toml`` in ``workspace``, ``wait``, SIGKILL it and reap it."""
    proc = await workspace.start("run", "job.toml", url=url)
    await wait(proc)
    if proc.returncode is not None:
        _, err = await proc.communicate()
        pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed: "
                    f"{err.decode()[-3000:]}")
    proc.kill()
    await proc.communicate()


async def crash_trials(folders: Sequence[Workspace], url: str, trials: int, wait: Wait,
                       position: Position | None = None) -> CliResult:
    """``trials`` runs killed mid-way (trial ``i`` in ``folders[i % len(folders)]``), then one
    run to the end in the next folder; its result. With ``position``, every kill is checked not
    to have moved the checkpoint backwards."""
    for trial in range(trials):
        before = (await position() or 0) if position else 0
        await kill_mid_run(folders[trial % len(folders)], url, wait)
        if position:
            assert (await position() or 0) >= before  # a checkpoint never moves backwards
    return await folders[trials % len(folders)].run("run", "job.toml", url=url)


def assert_crash_trials_lost_nothing(label: str, result: CliResult, stats: dict[str, Any],
                                     total: int, trials: int, in_flight: int) -> None:
    """After ``trials`` SIGKILLs and a last clean run: every record arrived, and each crash
    resent at most ``in_flight`` records (the batches that were in flight) and those settled
    since the last checkpoint save (``SETTLED_UNSAVED``)."""
    assert result.code == 0, result.stderr
    assert stats["distinct_ids"] == total
    resent = stats["records_accepted"] - total
    most = in_flight + SETTLED_UNSAVED
    print(f"\n{label}: {trials} SIGKILLs, {total} records, all delivered; resent "
          f"{resent} ({resent / trials:.0f} per crash, at most {most})")
    assert resent <= trials * most


async def table_crash_trials(label: str, workspace: Workspace, emulator: Any, total: int,
                             trials: int, in_flight: int) -> None:
    """A SQL table of ``total`` rows (the job written at 40 requests/s) killed ``trials``
    times at random, then run to the end: nothing lost, resends bounded by ``in_flight``."""
    async with emulator(rate=40, latency=(0.02, 0.2)) as emu:
        result = await crash_trials([workspace], emu.url, trials,
                                    after_random(random.Random(11), 0.8, 1.5))
        stats = emu.stats()
    assert_crash_trials_lost_nothing(label, result, stats, total, trials, in_flight=in_flight)


def sqlite_position(root: Path, stream: str = "contacts") -> list[Any] | None:
    """The checkpointed position of ``stream`` in the job folder's SQLite state (None: none
    yet, or no table yet: a kill can land before the store is created)."""
    path = root / "state" / "checkpoints.db"
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT position FROM checkpoints WHERE stream = ?",
                         (stream,)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return list(json.loads(row[0])) if row else None
