"""One shared stop signal for a run: SIGINT/SIGTERM, or a fatal error in any stream.

A first request stops reading and lets in-flight batches settle within the grace period; an
``immediate`` request (a refused API key, or a second Ctrl-C) does not wait for them.
"""

from __future__ import annotations

import asyncio


class Shutdown:
    def __init__(self) -> None:
        self._requested = asyncio.Event()
        self._immediate = asyncio.Event()
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def immediate(self) -> bool:
        return self._immediate.is_set()

    def request(self, reason: str, *, immediate: bool = False) -> None:
        """Ask every stream to stop. The first reason is kept; ``immediate`` only escalates."""
        if self.reason is None:
            self.reason = reason
        self._requested.set()
        if immediate:
            self._immediate.set()

    async def wait(self) -> None:
        await self._requested.wait()

    async def wait_immediate(self) -> None:
        await self._immediate.wait()
