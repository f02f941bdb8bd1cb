"""What a run is asked (``RunOptions``), what it shows while it runs (``RunView``, given to a
``RunObserver`` such as the progress display), what it answers (``JobResult``), and the stop
signal it obeys (``Shutdown``, fed by ``SignalWatch``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, TypeVar

import msgspec
import structlog

from ometria_sync.config import JobSettings
from ometria_sync.errors import ExitCode
from ometria_sync.pacing import BudgetStats
from ometria_sync.pipeline.stats import StreamStats


def new_run_id(started: dt.datetime) -> str:
    """The id of a run that started at ``started`` (UTC): the start to the millisecond, then a
    random suffix. Ids, and the report files named by them, sort in the order the runs
    started, even two runs in one second: ``verify --last-run`` finds the last run that way."""
    stamp = started.astimezone(dt.UTC)
    return (stamp.strftime("%Y%m%dT%H%M%S.") + f"{stamp.microsecond // 1000:03d}Z-"
            + uuid.uuid4().hex[:6])


#: how progress is shown: bars on a terminal, JSON lines off one (``auto``), or as named
ProgressMode = Literal["auto", "bars", "log", "off"]


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """``dry_run``: everything but the send, payloads written to a folder, no checkpoint moves.
    ``validate_only``: read every stream from the top, validate, dead-letter, send nothing.
    ``full_refresh``: read every stream from the top and send every record, changed or not."""

    dry_run: bool = False
    validate_only: bool = False
    #: like a run from the checkpoints, with change detection, but nothing sent or written
    plan_only: bool = False
    #: ``verify --repair``: send every record the sources give (no change detection), from the
    #: top, and move no checkpoint (the sources are the records to resend)
    repair: bool = False
    full_refresh: bool = False
    #: deactivate missing ids even past the mass-deletion guards (``--allow-mass-delete``)
    allow_mass_delete: bool = False
    streams: list[str] | None = None
    #: None: the job's ``report.progress`` setting
    progress: ProgressMode | None = None


class JobResult(msgspec.Struct):
    """What a run did, per stream, and the process exit code it implies."""

    run_id: str
    started_at: str
    streams: list[StreamStats]
    exit_code: ExitCode
    dead_letter_path: str
    dry_run_dir: str | None = None
    error: str | None = None
    #: ``GET /v2/push/_errors`` as fetched after a run in which Ometria rejected records
    ometria_errors: Any = None
    report_path: str | None = None
    #: the rate budget shared through Redis, when ``ometria.rate_limit_url`` is set
    shared_budget: BudgetStats | None = None
    #: ``warnings.jsonl``: the records warnings were given for (None: not written)
    warnings_path: str | None = None


def sending_mode(options: RunOptions) -> bool:
    """True when the run really sends (and so moves checkpoints and needs the run lock)."""
    return not (options.dry_run or options.validate_only or options.plan_only)


def exit_code_for(stats: list[StreamStats], shutdown: Shutdown, fatal: bool,
                  exit_on: str = "new_refusals") -> ExitCode:
    """The run's exit code. Records not delivered give PARTIAL (3): with ``exit_on =
    "new_refusals"`` only when this run found something new to look at (a refusal the ledger
    did not know, a rejection, an unconfirmed answer, a record parked after its last
    attempt); with ``"any_refusal"`` for every refusal, known ones too."""
    if fatal or any(s.error for s in stats):
        return ExitCode.FATAL
    if shutdown.reason == "interrupted":
        return ExitCode.INTERRUPTED
    if exit_on == "any_refusal":
        partial = any(s.dead_lettered or s.rejected or s.unconfirmed or s.parked for s in stats)
    else:
        partial = any(s.refused_new or s.rejected or s.unconfirmed or s.parked for s in stats)
    return ExitCode.PARTIAL if partial else ExitCode.OK


@dataclass(frozen=True)
class RunView:
    """A running job as an observer sees it: the streams' live counters (updated in place)."""

    live: dict[str, StreamStats]
    settings: JobSettings
    progress: ProgressMode
    budget: BudgetStats | None


#: started when the streams start, cancelled when they are over (e.g. the progress display)
RunObserver = Callable[[RunView], Coroutine[Any, Any, None]]


# -------------------------------------------------------------------------------------------------
# One shared stop signal for a run: SIGINT/SIGTERM, or a fatal error in any stream.
#
# A first request stops reading and lets in-flight batches settle within the grace period; an
# ``immediate`` request (a refused API key, or a second Ctrl-C) does not wait for them.
# -------------------------------------------------------------------------------------------------

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
