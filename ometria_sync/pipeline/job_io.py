"""What a run is asked (``RunOptions``), what it shows while it runs (``RunView``, given to a
``RunObserver`` such as the progress display), and what it answers (``JobResult``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ometria_sync.config import JobSettings
from ometria_sync.errors import ExitCode
from ometria_sync.pacing.budget_stats import BudgetStats
from ometria_sync.pipeline.shutdown import Shutdown
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


def sending_mode(options: RunOptions) -> bool:
    """True when the run really sends (and so moves checkpoints and needs the run lock)."""
    return not (options.dry_run or options.validate_only or options.plan_only)


def exit_code_for(stats: list[StreamStats], shutdown: Shutdown, fatal: bool) -> ExitCode:
    if fatal or any(s.error for s in stats):
        return ExitCode.FATAL
    if shutdown.reason == "interrupted":
        return ExitCode.INTERRUPTED
    if any(s.dead_lettered or s.rejected or s.unconfirmed for s in stats):
        return ExitCode.PARTIAL
    return ExitCode.OK


@dataclass(frozen=True)
class RunView:
    """A running job as an observer sees it: the streams' live counters (updated in place)."""

    live: dict[str, StreamStats]
    settings: JobSettings
    progress: ProgressMode
    budget: BudgetStats | None


#: started when the streams start, cancelled when they are over (e.g. the progress display)
RunObserver = Callable[[RunView], Coroutine[Any, Any, None]]
