"""Live progress: rich bars on a terminal, a JSON ``progress`` log line every N seconds off one.

Per stream: records read and sent, the request rate against the limit, and an ETA from the
records left (the total estimated from the share of the file read so far) and the rate limit.
The bar fills with *settled* records (sent, unchanged or dead-lettered), not records read
ahead. Progress is read from the streams' live counters; it never slows the pipeline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Literal

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from ometria_sync.clock import Clock, Sleep
from ometria_sync.pacing import BudgetStats
from ometria_sync.pipeline import ProgressMode, RunView, StreamStats

log = structlog.get_logger("ometria_sync.progress")


def resolve_mode(mode: ProgressMode) -> Literal["bars", "log", "off"]:
    if mode == "auto":
        return "bars" if sys.stderr.isatty() else "log"
    return mode


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Estimate:
    """What can be said of one stream right now."""

    def __init__(self, stats: StreamStats, records_per_second_cap: float, elapsed: float) -> None:
        self.read = stats.read
        self.sent = stats.sent
        #: records whose fate is known: sent, skipped as unchanged or by the transform, or
        #: dead-lettered
        self.settled = stats.sent + stats.unchanged + stats.filtered + stats.dead_lettered
        self.rate = stats.requests_per_second or 0.0
        self.total = stats.estimated_total()
        left = max(0, self.total - self.settled) if self.total is not None else None
        observed = self.settled / elapsed if elapsed > 0 else 0.0
        throughput = min(records_per_second_cap, observed)
        self.eta = left / throughput if left is not None and throughput > 0 else None


class ProgressReporter:
    """Renders the live counters of ``streams`` until cancelled. Time (each stream's elapsed
    time, the pause between renderings) comes from ``clock`` and ``sleep``."""

    def __init__(
        self,
        streams: dict[str, StreamStats],
        *,
        rate_limit: float,
        batch_size: int,
        mode: Literal["bars", "log", "off"],
        interval: float = 10.0,
        budget: BudgetStats | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._streams = streams
        self._limit = rate_limit
        self._cap = rate_limit * batch_size
        self._mode = mode
        self._interval = interval
        self._started: dict[str, float] = {}
        self._budget = budget
        self._clock = clock
        self._sleep = sleep

    def _shared(self) -> dict[str, Any]:
        """With a budget shared through Redis: how many processes share it, what this one
        gets (requests/s)."""
        budget = self._budget
        if budget is None:
            return {}
        rps = budget.requests_per_second
        return {"shared_by_processes": budget.processes,
                "this_process_requests_per_second": round(rps, 2) if rps is not None else None}

    def _estimate(self, name: str, stats: StreamStats) -> Estimate:
        started = self._started.setdefault(name, self._clock())
        return Estimate(stats, self._cap, self._clock() - started)

    async def run(self) -> None:
        if self._mode == "bars":
            await self._bars()
        elif self._mode == "log":
            await self._log_lines()

    async def _log_lines(self) -> None:
        while True:
            await self._sleep(self._interval)
            for name, stats in list(self._streams.items()):
                if stats.outcome != "pending":
                    continue
                est = self._estimate(name, stats)
                log.info("progress", stream=name, read=est.read, sent=est.sent,
                         unchanged=stats.unchanged, dead_lettered=stats.dead_lettered,
                         requests_per_second=round(est.rate, 2), rate_limit=self._limit,
                         estimated_total=est.total,
                         eta_seconds=round(est.eta) if est.eta is not None else None,
                         **self._shared())

    async def _bars(self) -> None:
        progress = Progress(
            TextColumn("[bold]{task.fields[stream]:<12}"),
            BarColumn(),
            TextColumn("{task.fields[read]:>9} read {task.fields[sent]:>9} sent"),
            TextColumn("{task.fields[rate]:>6.2f}/{task.fields[limit]:g} req/s"
                       "{task.fields[shared]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=Console(stderr=True),
            transient=False,
        )
        tasks: dict[str, TaskID] = {}
        with progress:
            try:
                while True:
                    self._refresh(progress, tasks)
                    await self._sleep(0.25)
            finally:
                self._refresh(progress, tasks)

    def _refresh(self, progress: Progress, tasks: dict[str, TaskID]) -> None:
        for name, stats in list(self._streams.items()):
            est = self._estimate(name, stats)
            fields: dict[str, Any] = {"stream": name, "read": est.read, "sent": est.sent,
                                      "rate": est.rate, "limit": self._limit,
                                      "eta": _clock(est.eta), "shared": self._shared_text()}
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=est.total, **fields)
            done = stats.outcome != "pending"
            total = est.settled if done else est.total
            progress.update(tasks[name], completed=est.settled, total=total, **fields)

    def _shared_text(self) -> str:
        if self._budget is None:
            return ""
        return f" (shared by {self._budget.processes} processes)"


async def show_progress(view: RunView) -> None:
    """A ``RunObserver``: the progress display the run's options (or the job's
    ``report.progress``) ask for, until cancelled."""
    settings = view.settings
    reporter = ProgressReporter(
        view.live,
        rate_limit=settings.ometria.rate_limit_per_second,
        batch_size=settings.ometria.batch_size,
        mode=resolve_mode(view.progress),
        interval=settings.report.progress_interval,
        budget=view.budget,
    )
    await reporter.run()
