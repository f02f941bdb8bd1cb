"""Verify's reads never pace themselves apart from a sending run of the same job.

With ``ometria.rate_limit_url`` every request of verify and of any run takes its slot in the
shared Redis budget, so verify may read beside a run. Without it each process paces itself
alone, and two of them together would put twice the account's limit on it; so verify refuses
to read while a run of the job holds its run lock (exit 1, saying so), and holds that lock
itself while it reads, so a run that starts meanwhile refuses as it would beside another run.
``--repair`` lets the lock go while its resend (a run that takes the lock itself) goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ometria_sync.config import Job
from ometria_sync.errors import OmetriaSyncError, StateError
from ometria_sync.state import open_state
from ometria_sync.state.store import StateStore


class RunInProgress(OmetriaSyncError):
    """A run of the job is sending and there is no shared budget: verify later (exit 1)."""


class ReadGuard:
    """Hold with ``reading()`` around every read of Ometria."""

    def __init__(self, state: StateStore | None, rate: float) -> None:
        self._state = state
        self._rate = rate

    @classmethod
    async def open(cls, job: Job, *, shared_budget: bool) -> ReadGuard:
        settings = job.settings
        if shared_budget:
            return cls(None, settings.ometria.rate_limit_per_second)
        state = await open_state(settings.state.checkpoint_url, settings.state.schema,
                                 job=job.name, streams=job.stream_names)
        return cls(state, settings.ometria.rate_limit_per_second)

    def _refusal(self) -> RunInProgress:
        return RunInProgress(
            "a run of this job is in progress (it holds the job's run lock): verify would read "
            f"beside it, each pacing itself alone under the account's {self._rate:g} "
            "requests/s; wait for the run to finish, or set ometria.rate_limit_url so that "
            "both share one budget")

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        if self._state is None:
            yield
            return
        if await self._state.run_in_progress():
            raise self._refusal()
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._state.run_lock())
            except StateError as exc:
                raise self._refusal() from exc
            yield

    async def aclose(self) -> None:
        if self._state is not None:
            await self._state.aclose()
