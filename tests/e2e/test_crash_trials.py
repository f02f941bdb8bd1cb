"""The kill -9 harness itself: a trial whose run was not killed mid-way is never counted."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace
from tests.e2e.crash_trials import kill_mid_run, once

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


async def test_a_run_that_ends_before_the_kill_fails_the_trial(
        workspace: Workspace, emulator: Emulator) -> None:
    """The job's data file is missing, so the run exits 1 at once: the harness says so, with
    the run's stderr, instead of counting a crash that never happened."""
    workspace.job(CONTACTS)
    async with emulator(rate=50) as emu:
        with pytest.raises(pytest.fail.Exception, match=r"ended \(exit 1\).*no such file"):
            await kill_mid_run(workspace, emu.url, once(lambda: False, seconds=20))


async def test_a_moment_never_reached_fails_the_trial() -> None:
    """Waiting for a condition that never holds fails the test rather than killing the run at
    a moment the trial did not ask for."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(9)")
    try:
        with pytest.raises(pytest.fail.Exception, match="did not reach the moment"):
            await once(lambda: False, seconds=0.2)(proc)
    finally:
        proc.kill()
        await proc.wait()
