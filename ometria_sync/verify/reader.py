"""Reading Ometria back: every request through the account's pacer (the budget a run uses),
429s answered as the dispatcher answers them, other transient failures retried with backoff.
A 404 is an answer (the record is not there), not an error.

The read guard: verify's reads never pace themselves apart from a sending run of the same job.

With ``ometria.rate_limit_url`` every request of verify and of any run takes its slot in the
shared Redis budget, so verify may read beside a run. Without it each process paces itself
alone, and two of them together would put twice the account's limit on it; so verify refuses
to read while a run of the job holds its run lock (exit 1, saying so), and holds that lock
itself while it reads, so a run that starts meanwhile refuses as it would beside another run.
``--repair`` lets the lock go while its resend (a run that takes the lock itself) goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ometria_sync.clock import Sleep
from ometria_sync.config import Job
from ometria_sync.errors import (
    FatalApiError,
    OmetriaSyncError,
    RetriesExhaustedError,
    StateError,
    ThrottledError,
    TransientError,
)
from ometria_sync.net import Backoff
from ometria_sync.ometria import OmetriaClient
from ometria_sync.pacing import RatePacer
from ometria_sync.state import StateStore, open_state

#: the most records a list endpoint gives per request (seed documents)
PAGE = 250


class Reader:
    """Paced GETs against one account; ``requests`` counts what was sent."""

    def __init__(
        self,
        client: OmetriaClient,
        pacer: RatePacer,
        backoff: Backoff,
        *,
        max_retries: int = 8,
        max_throttle_wait: float = 900.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._backoff = backoff
        self._max_retries = max_retries
        self._max_throttle_wait = max_throttle_wait
        self._sleep = sleep
        self.requests = 0

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The decoded answer, or None for a 404. Raises FatalApiError (incl. a refused key)
        and RetriesExhaustedError."""
        failures = 0
        throttled = 0.0
        while True:
            await self._pacer.acquire()
            self.requests += 1
            try:
                answer = await self._client.get_json(path, params)
            except ThrottledError as exc:
                throttled += self._pacer.throttled(self._backoff, exc.retry_after,
                                                   exc.queue_remaining)
                if throttled > self._max_throttle_wait:
                    raise RetriesExhaustedError(
                        f"GET {path}: still throttled (429) after {throttled:.0f} s") from exc
                continue
            except TransientError as exc:
                if failures >= self._max_retries:
                    raise RetriesExhaustedError(
                        f"GET {path}: failed {failures + 1} times, last: {exc}") from exc
                await self._sleep(self._backoff.delay(failures, exc.retry_after))
                failures += 1
                continue
            except FatalApiError as exc:
                if exc.status == 404:
                    return None
                raise
            self._pacer.on_success()
            return answer

    async def pages(self, path: str, params: dict[str, str] | None = None
                    ) -> AsyncIterator[list[Any]]:
        """Every page of a list endpoint, ``PAGE`` items at a time, until a short page."""
        offset = 0
        while True:
            query = dict(params or {}, limit=str(PAGE), offset=str(offset))
            page = await self.get(path, query)
            if page is None:
                return
            if not isinstance(page, list):
                raise FatalApiError(f"GET {path}: expected a JSON array, got "
                                    f"{type(page).__name__}")
            yield page
            if len(page) < PAGE:
                return
            offset += len(page)


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
