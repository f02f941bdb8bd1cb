"""One shared stop signal for a run: SIGINT/SIGTERM, or a fatal error in any stream.

A first request stops reading and lets in-flight batches settle within the grace period; an
``immediate`` request (a refused API key, or a second Ctrl-C) does not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Iterator
from types import FrameType
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("ometria_sync.job")
T = TypeVar("T")


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

    async def unless_requested(self, work: Awaitable[T], *, immediate: bool = False) -> T | None:
        """Await ``work``, but cut it short (cancelled, None) when a stop is requested while it
        runs (``immediate``: only an immediate one). Its exceptions propagate."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.wait_immediate() if immediate else self.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, stop, return_exceptions=True)
        return None if task.cancelled() else task.result()


class SignalWatch:
    """SIGINT/SIGTERM for a whole command, from before the preflight until the report is
    written: outside that window the default action (exit 143, nothing written) would apply.

    Signals that arrive before a run :meth:`attach`-es its :class:`Shutdown` (while the job
    loads) are remembered and stop the run as soon as it starts; while attached, the first one
    asks it to stop gracefully and a second one at once; after it (the summary, the report)
    they are only remembered, so that the report is always written. Install it in the main
    thread; the handler defers to the event loop through ``call_soon_threadsafe``.
    """

    def __init__(self, grace_period: float = 0.0) -> None:
        self.received: list[str] = []
        self.grace_period = grace_period
        self._target: tuple[asyncio.AbstractEventLoop, Shutdown] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalWatch:
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @contextlib.contextmanager
    def attach(self, shutdown: Shutdown) -> Iterator[None]:
        """Route signals to ``shutdown`` (call inside the run's event loop)."""
        if self.received:
            log.warning("stopping", signal=self.received[0], before="start")
            shutdown.request("interrupted")
        self._target = (asyncio.get_running_loop(), shutdown)
        try:
            yield
        finally:
            self._target = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        target = self._target
        if target is not None:
            loop, shutdown = target
            loop.call_soon_threadsafe(self._deliver, shutdown, name)

    def _deliver(self, shutdown: Shutdown, name: str) -> None:
        if shutdown.requested:
            log.warning("stopping_now", signal=name)
            shutdown.request("interrupted", immediate=True)
        else:
            log.warning("stopping", signal=name, grace_period=self.grace_period,
                        hint="in-flight batches settle, then the checkpoint is saved")
            shutdown.request("interrupted")


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
