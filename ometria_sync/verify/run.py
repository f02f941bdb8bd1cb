"""``verify``: read the job's records again from their sources, look them up in Ometria, sort
them, and (``repair``) resend what is missing or different through the normal pipeline.

Order of work: read every stream into the ledger (a temporary file: the latest version of
each id across the job's streams of its type; nothing is requested yet), announce the plan
(requests and time at the account's rate), fetch ``/push/_errors`` once (only when something is
to be looked up), check the ids stream by stream a chunk at a time. ``repair`` then pushes the
ids that are not verified, each in its latest version, with
:func:`~ometria_sync.pipeline.job_run.run_job` in ``repair`` mode (validation, dead letter; no
checkpoint moves, no change detection) through the same pacer as the reads, waits ``settle``
seconds for Ometria's asynchronous import, and checks them again, for up to
``repair_rounds`` rounds: an exit 0 after a repair means every checked id was found holding
its latest version after it.

Memory stays flat with the sources' size: the report counts outcomes and lists at most
``LISTED`` of the ids that are not verified. An exit 0 is never given when nothing was
verified (custom events only, an empty selection): that is exit 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings, read_api_key
from ometria_sync.errors import OmetriaSyncError
from ometria_sync.exit_codes import ExitCode
from ometria_sync.net.backoff import Backoff
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.protocol import RatePacer
from ometria_sync.pipeline.job_run import account_pacer, shared_budget
from ometria_sync.verify.check import Method, Plan, errors_by_record, plan
from ometria_sync.verify.collect import Collected, collect
from ometria_sync.verify.guard import ReadGuard
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.reader import Reader
from ometria_sync.verify.repair import resend
from ometria_sync.verify.stream_check import check_stream
from ometria_sync.verify.verify_report import (
    LISTED,
    NOT_VERIFIED,
    StreamSummary,
    VerifyOptions,
    VerifyReport,
)

log = structlog.get_logger("ometria_sync.verify")


def _client(job: Job) -> OmetriaClient:
    ometria = job.settings.ometria
    return OmetriaClient(ometria.base_url, read_api_key(ometria),
                         timeout=ometria.request_timeout,
                         retry_after_cap=ometria.retry_after_cap,
                         ca_bundle=ometria.ca_bundle, connections=ometria.dispatchers + 2)


class _Counts(msgspec.Struct):
    """Per stream: requests sent, ids resent."""

    requests: dict[str, int] = msgspec.field(default_factory=dict)
    repaired: dict[str, int] = msgspec.field(default_factory=dict)


class _Checking(msgspec.Struct):
    """What one verify command works with."""

    job: Job
    options: VerifyOptions
    ledger: Ledger
    collected: Collected
    plans: dict[str, Plan]
    reader: Reader
    pacer: RatePacer
    guard: ReadGuard
    counts: _Counts


async def verify_job(
    job: Job,
    options: VerifyOptions,
    *,
    announce: Callable[[list[Plan], float, int | None], None] | None = None,
) -> VerifyReport:
    """Verify the job's streams; fatal errors end up in ``report.error`` (exit 1)."""
    settings = job.settings
    selected = job.select(options.streams)
    seed = options.seed
    if options.sample is not None and seed is None:
        seed = random.SystemRandom().randrange(2**31)
    report = VerifyReport(
        job=str(job.path), started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        selection="sample" if options.sample is not None else
        "last_run" if options.last_run else "all",
        seed=seed, rate_limit=settings.ometria.rate_limit_per_second, streams=[], records=[])
    ledger = Ledger()
    try:
        collected = await collect(job, selected, ledger, sample=options.sample, seed=seed or 0,
                                  last_run=options.last_run)
        plans = _plans(selected, ledger, collected, options.method)
        for name, how in plans.items():
            if how.method == "none":
                ledger.not_verifiable(name)
        if announce is not None:
            announce(list(plans.values()), settings.ometria.rate_limit_per_second, seed)
        counts = _Counts()
        await _check(job, options, ledger, collected, plans, report, counts)
        _summarise(ledger, collected, plans, counts, report)
    finally:
        ledger.close()
    report.exit_code = int(_exit_code(report))
    return report


def _plans(selected: list[StreamSettings], ledger: Ledger, collected: Collected,
           method: Method, *, again: bool = False) -> dict[str, Plan]:
    """The streams with ids to check (and every selected one), in job order, each with how it
    will be checked and what that costs; ``again``: only the ids not verified yet."""
    owners = set(ledger.owners()) | {s.name for s in selected}
    plans = {}
    for name, record_type in collected.record_types.items():
        if name not in owners:
            continue
        same_type = [n for n, t in collected.record_types.items() if t == record_type]
        plans[name] = plan(name, record_type, ledger.count(name, not_verified=again),
                           ledger.held(same_type), method,
                           without_email=ledger.count(name, not_verified=again,
                                                      without_email=True),
                           update_since=_since(collected, name))
    return plans


def _since(collected: Collected, stream: str) -> str | None:
    window = collected.windows.get(stream)
    return window.started_at if window is not None else None


async def _check(job: Job, options: VerifyOptions, ledger: Ledger, collected: Collected,
                 plans: dict[str, Plan], report: VerifyReport, counts: _Counts) -> None:
    """Look the ids up (nothing when no plan asks for a request), then repair."""
    if not any(p.requests for p in plans.values()):
        return  # custom events, an empty selection: nothing is sent
    settings = job.settings
    async with contextlib.AsyncExitStack() as stack:
        client = _client(job)
        stack.push_async_callback(client.aclose)
        reader: Reader | None = None
        try:
            budget = await shared_budget(job)  # reads share the account's budget with any run
            if budget is not None:
                stack.push_async_callback(budget.aclose)
            pacer = budget or account_pacer(settings)  # one pacer: the reads and the repair
            guard = await ReadGuard.open(job, shared_budget=budget is not None)
            stack.push_async_callback(guard.aclose)
            reader = Reader(client, pacer,
                            Backoff(settings.ometria.backoff_base, settings.ometria.backoff_cap),
                            max_retries=settings.ometria.max_retries,
                            max_throttle_wait=settings.ometria.max_throttle_wait)
            work = _Checking(job, options, ledger, collected, plans, reader, pacer, guard,
                             counts)
            async with guard.reading():
                await _round(work, plans)
            if options.repair:
                await _repair(work)
        except OmetriaSyncError as exc:
            report.error = str(exc)
        finally:
            report.requests = reader.requests if reader is not None else 0


async def _round(work: _Checking, plans: dict[str, Plan], *, again: bool = False) -> None:
    errors = errors_by_record(await work.reader.get("/push/_errors"))
    for name, how in plans.items():
        if not how.records:
            continue
        before = work.reader.requests
        await check_stream(work.reader, work.ledger, how, errors,
                           workers=work.job.settings.ometria.dispatchers,
                           update_since=_since(work.collected, name), again=again)
        requests = work.counts.requests
        requests[name] = requests.get(name, 0) + work.reader.requests - before


async def _repair(work: _Checking) -> None:
    selected = work.job.select(work.options.streams)
    for round_no in range(1, work.options.repair_rounds + 1):
        bad = {name: n for name in work.plans
               if (n := work.ledger.count(name, not_verified=True))}
        if not bad:
            return
        log.info("repair", round=round_no, records=bad)
        await resend(work.job, work.ledger, sorted(bad, key=list(work.plans).index),
                     work.pacer)
        for name, n in bad.items():
            work.counts.repaired[name] = work.counts.repaired.get(name, 0) + n
        await asyncio.sleep(work.options.settle)
        plans = _plans(selected, work.ledger, work.collected, work.options.method, again=True)
        async with work.guard.reading():
            await _round(work, {k: v for k, v in plans.items() if k in bad}, again=True)


def _summarise(ledger: Ledger, collected: Collected, plans: dict[str, Plan], counts: _Counts,
               report: VerifyReport) -> None:
    statuses = ledger.statuses()
    for name, how in plans.items():
        summary = StreamSummary(name, how.record_type, how.method, how.records,
                                invalid=collected.invalid.get(name, 0),
                                repaired=counts.repaired.get(name, 0),
                                requests=counts.requests.get(name, 0))
        for status, n in statuses.get(name, {}).items():
            setattr(summary, status, n)
        report.streams.append(summary)
    report.records = ledger.problems(collected.record_types, LISTED)
    problems = sum(getattr(s, name) for s in report.streams for name in NOT_VERIFIED)
    report.records_not_listed = problems - len(report.records)


def _exit_code(report: VerifyReport) -> ExitCode:
    if report.error:
        return ExitCode.FATAL
    if any(getattr(s, name) for s in report.streams for name in NOT_VERIFIED):
        return ExitCode.PARTIAL
    if not any(s.verified for s in report.streams):
        return ExitCode.NOTHING_VERIFIED
    return ExitCode.OK
