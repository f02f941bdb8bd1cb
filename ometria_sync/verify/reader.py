"""Reading Ometria back: every request through the account's pacer (the budget a run uses),
429s answered as the dispatcher answers them, other transient failures retried with backoff.
A 404 is an answer (the record is not there), not an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ometria_sync.clock import Sleep
from ometria_sync.errors import (
    FatalApiError,
    RetriesExhaustedError,
    ThrottledError,
    TransientError,
)
from ometria_sync.net.backoff import Backoff
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.protocol import RatePacer

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
