"""Running a job: its streams in the job's order, one shared pacer, one exit code.

Streams run one after another in the order the job lists them (Ometria links orders to products
and contacts that already exist), except that a stream with ``parallel = true`` runs alongside
the one before it. Every stream shares the pacer, so the account's rate limit holds for the job
as a whole. SIGINT/SIGTERM stop the run gracefully, from the preflight to the final error-list
fetch; a second signal stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from ometria_sync.config import (
    Job,
    JobSettings,
    StreamSettings,
    read_api_key,
    read_rate_limit_url,
)
from ometria_sync.errors import ExitCode, OmetriaSyncError, StateError
from ometria_sync.ometria import DryRunPusher, NullPusher, OmetriaClient
from ometria_sync.pacing import Pacer, PermittedPacer, RatePacer, SharedBudget
from ometria_sync.pipeline.job_io import (
    JobResult,
    RunObserver,
    RunOptions,
    RunView,
    Shutdown,
    SignalWatch,
    exit_code_for,
    new_run_id,
    sending_mode,
)
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.stream_run import (
    PusherFactory,
    RunContext,
    SharedRun,
    ValidatorFactory,
    run_stream,
)
from ometria_sync.pipeline.transform import load_transforms
from ometria_sync.state import (
    AccountIdentity,
    DatabaseDeadLetter,
    DeadLetterWriter,
    StateStore,
    WarningLog,
    open_state,
)

log = structlog.get_logger("ometria_sync.job")

__all__ = ["JobResult", "RunOptions", "account_pacer", "run_job", "shared_budget"]


def stream_groups(streams: list[StreamSettings]) -> Iterator[list[StreamSettings]]:
    """Consecutive streams joined by ``parallel = true`` form one group; groups run in order."""
    group: list[StreamSettings] = []
    for stream in streams:
        if group and not stream.parallel:
            yield group
            group = []
        group.append(stream)
    if group:
        yield group


async def run_job(
    job: Job,
    options: RunOptions | None = None,
    *,
    pusher_factory: PusherFactory | None = None,
    validator_factory: ValidatorFactory | None = None,
    handle_signals: bool = True,
    signals: SignalWatch | None = None,
    observer: RunObserver | None = None,
    pacer: RatePacer | None = None,
) -> JobResult:
    """Sync the job's streams. Raises ConfigError/StateError before anything is sent when the
    key, the run lock or the state cannot be had; every later failure is in the result.

    SIGINT/SIGTERM are handled from the first line (``signals``: a watch the caller installed
    earlier and keeps until its report is written; else one installed here when
    ``handle_signals``): one during the preflight stops before anything is sent, one during the
    final ``GET /v2/push/_errors`` cuts that short; either way the result says interrupted.
    ``observer`` (e.g. the CLI's progress display) runs beside the streams. ``pacer``: the
    caller's own (``verify --repair``: the one its reads go through, so that one command keeps
    one budget); by default the job's shared budget or a pacer of its own."""
    async with contextlib.AsyncExitStack() as stack:
        if signals is None and handle_signals:
            signals = stack.enter_context(SignalWatch(job.settings.run.grace_period))
        shutdown = Shutdown()
        if signals is not None:
            signals.grace_period = job.settings.run.grace_period
            stack.enter_context(signals.attach(shutdown))
        return await _run_job(job, options or RunOptions(), shutdown,
                              pusher_factory, validator_factory, observer, pacer)


async def _run_job(
    job: Job,
    options: RunOptions,
    shutdown: Shutdown,
    pusher_factory: PusherFactory | None,
    validator_factory: ValidatorFactory | None,
    observer: RunObserver | None,
    pacer: RatePacer | None = None,
) -> JobResult:
    settings = job.settings
    streams = job.select(options.streams)
    started = dt.datetime.now(dt.UTC)
    run_id = new_run_id(started)
    started_at = started.isoformat(timespec="seconds")
    dry_dir = Path(settings.state.dry_run_dir) / run_id if options.dry_run else None
    sending = sending_mode(options)
    transforms = load_transforms(job, streams)  # ConfigError before anything is sent
    await shutdown.unless_requested(_preflight(job, streams))
    if shutdown.requested:  # a signal before anything was sent
        return JobResult(
            run_id=run_id, started_at=started_at, exit_code=ExitCode.INTERRUPTED,
            streams=[StreamStats(stream=s.name, outcome="interrupted") for s in streams],
            dead_letter_path=settings.state.dead_letter_path,
            error="interrupted before anything was sent",
        )
    async with contextlib.AsyncExitStack() as stack:
        state = await open_state(settings.state.checkpoint_url, settings.state.schema,
                                 job=job.name, streams=job.stream_names)
        stack.push_async_callback(state.aclose)
        permit = await stack.enter_async_context(state.run_lock()) if sending else None
        stack.push_async_callback(state.flush)  # everything written before the lock goes
        dead_letter = _dead_letter(stack, settings, options, dry_dir, state, run_id)
        stack.callback(dead_letter.close)
        client: OmetriaClient | None = None
        if pusher_factory is None:
            pusher_factory, client = _pushers(job, options, dry_dir)
            if client is not None:
                stack.push_async_callback(client.aclose)
                await _claim_account(state, job)
        budget = await shared_budget(job) if sending and pacer is None else None
        if budget is not None:
            stack.push_async_callback(budget.aclose)
        paced: RatePacer = pacer or budget or account_pacer(settings, sending=sending)
        warning_log = _warning_log(stack, settings, options, dry_dir, run_id)
        ctx = RunContext.for_options(
            options, settings=settings, state=state, dead_letter=dead_letter,
            pacer=paced if permit is None else PermittedPacer(paced, permit),
            pusher_for=pusher_factory, validator_for=validator_factory, shutdown=shutdown,
            transforms=transforms, warning_log=warning_log, run_id=run_id)
        shared = SharedRun()
        if observer is not None:
            view = RunView(shared.live, settings, options.progress or settings.report.progress,
                           budget.stats if budget else None)
            watching = asyncio.create_task(observer(view), name="observer")
            stack.push_async_callback(_cancel, watching)
        results: list[StreamStats] = []
        for group in stream_groups(streams):
            if ctx.shutdown.requested:
                break
            results += await asyncio.gather(*(run_stream(ctx, shared, s) for s in group))
        ometria_errors: Any = None
        if client and any(s.rejected for s in results) and not ctx.shutdown.immediate:
            # a signal that arrives during the fetch cuts it short (one before it: only a
            # second, immediate one)
            ometria_errors = await ctx.shutdown.unless_requested(
                _fetch_errors(client, ctx.pacer), immediate=ctx.shutdown.requested)
        try:
            dead_letter.close()
            await state.flush()  # the last refusals, hashes and checkpoints are committed
        except StateError as exc:  # the last refusals could not be made durable
            shared.fail(exc)
    return JobResult(
        run_id=run_id,
        started_at=started_at,
        streams=results,
        exit_code=exit_code_for(results, ctx.shutdown, shared.failed, settings.run.exit_on),
        dead_letter_path=dead_letter.describe(),
        dry_run_dir=str(dry_dir) if dry_dir else None,
        warnings_path=str(warning_log.path) if warning_log is not None else None,
        error=shared.error,
        ometria_errors=ometria_errors,
        shared_budget=budget.stats if budget else None,
    )


def account_pacer(settings: JobSettings, *, sending: bool = True) -> Pacer:
    """The pacer for the job's Ometria account: every request, push or read, counts against
    its budget (unbounded when nothing is sent)."""
    return Pacer(settings.ometria.rate_limit_per_second if sending else 1e9)


def _dead_letter(
    stack: contextlib.AsyncExitStack, settings: JobSettings, options: RunOptions,
    dry_dir: Path | None, state: StateStore, run_id: str,
) -> DeadLetterWriter:
    """``plan`` writes refusals to a scratch folder, a dry run into its own folder,
    ``validate`` to a file of its own beside the dead letter (the last validation's findings
    only: it never writes into the runs' dead letter); else the file ``state.dead_letter_path``,
    or the state store with ``state.dead_letter = "database"``. Every entry names the run."""
    if options.plan_only:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="ometria-sync-plan-"))
        return DeadLetterWriter(Path(scratch) / "dead-letter.jsonl", run_id)
    if dry_dir is not None:
        return DeadLetterWriter(dry_dir / "dead-letter.jsonl", run_id)
    if options.validate_only:
        return DeadLetterWriter(validation_file(settings), run_id, fresh=True)
    if settings.state.dead_letter == "database":
        return DatabaseDeadLetter(state, run_id)
    return DeadLetterWriter(settings.state.dead_letter_path, run_id)


def validation_file(settings: JobSettings) -> Path:
    """Where ``validate`` writes the records it would refuse: beside the dead letter."""
    return Path(settings.state.dead_letter_path).with_name("validate-dead-letter.jsonl")


def _warning_log(
    stack: contextlib.ExitStack[Any] | contextlib.AsyncExitStack, settings: JobSettings,
    options: RunOptions, dry_dir: Path | None, run_id: str,
) -> WarningLog | None:
    """``warnings.jsonl`` beside the dead letter (a dry run: in its own folder); none for
    ``plan``."""
    if options.plan_only:
        return None
    folder = dry_dir if dry_dir is not None else Path(settings.state.dead_letter_path).parent
    log = WarningLog(folder / "warnings.jsonl", run_id, settings.state.warnings_per_stream)
    stack.callback(log.close)
    return log


def _pushers(
    job: Job, options: RunOptions, dry_dir: Path | None
) -> tuple[PusherFactory, OmetriaClient | None]:
    if options.validate_only or options.plan_only:
        return (lambda stream: NullPusher()), None
    if dry_dir is not None:
        return (lambda stream: DryRunPusher(dry_dir, stream.name)), None
    client = _client(job)
    return (lambda stream: client), client


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def shared_budget(job: Job) -> SharedBudget | None:
    """The Redis budget the job names, if any (RateBudgetError, nothing sent, if unreachable);
    every request to the account, push or read, takes its slot there. Close it with ``aclose``."""
    ometria = job.settings.ometria
    url = read_rate_limit_url(ometria)
    if url is None:
        return None
    return await SharedBudget.connect(
        url, base_url=ometria.base_url, api_key=read_api_key(ometria),
        limit=ometria.rate_limit_per_second, retry_for=ometria.rate_limit_retry_for)


async def _claim_account(state: StateStore, job: Job) -> None:
    """The state must describe the account this run sends to (AccountMismatch otherwise);
    a store without an account recorded adopts this one."""
    ometria = job.settings.ometria
    current = AccountIdentity.of(ometria.base_url, read_api_key(ometria))
    if await state.claim_account(current):
        log.info("state_account_recorded", account=current.describe())


async def _preflight(job: Job, streams: list[StreamSettings]) -> None:
    """Source secrets present, databases reachable, queries with their cursor columns, Omneo
    tokens accepted."""
    job.check_credentials(streams)
    log.info("preflight", streams=[s.name for s in streams])
    for stream in streams:
        await stream.source.preflight(f"streams[{job.index_of(stream.name)}].source")


async def _fetch_errors(client: OmetriaClient, pacer: RatePacer) -> Any:
    """Ometria's own list of push validation errors (one paced request; failures logged)."""
    log.info("fetching_push_errors")
    try:
        await pacer.acquire()
        return await client.get_json("/push/_errors")
    except OmetriaSyncError as exc:
        log.warning("push_errors_unavailable", error=str(exc))
        return None


def _client(job: Job) -> OmetriaClient:
    ometria = job.settings.ometria
    return OmetriaClient(
        ometria.base_url,
        read_api_key(ometria),
        timeout=ometria.request_timeout,
        retry_after_cap=ometria.retry_after_cap,
        ca_bundle=ometria.ca_bundle,
        connections=ometria.dispatchers + 2,
    )
