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

The steps, in this order in the file:

* ``collect``: reading the job's sources into the ledger: which streams, in which order, which
  ids. Every selected stream is read, and after it every later enabled stream of the same
  record type: a later stream's version of an id supersedes the selected one's (the run applies
  the streams in job order), so the id is judged against it and only it is ever resent. With
  ``--last-run`` each stream contributes only what its last sending run covered; with
  ``--sample N`` each selected stream offers its ids to a reservoir of N.
* ``check_stream``: checking the ids one stream owns, a chunk at a time: look them up (one
  request each, or the list pages matched into the ledger page by page), judge them, record the
  outcomes. Nothing is held in memory beyond a chunk or a page. With ``--last-run`` a contacts
  listing asks only for profiles updated since that run began (``updateSince``); a contact it
  does not show may simply not have been sent (change detection found it unchanged), so it is
  looked up by email (or, without an email, in the full listing) before it can be called
  missing: a record is missing only when Ometria does not hold it.
* ``resend``: ``--repair``'s resend: the ids that are not verified, each in its latest version
  (the one the ledger holds: the last stream in job order that holds the id), pushed through
  the normal pipeline in ``repair`` mode (validation, dead letter, the run lock; no checkpoint
  moves, no change detection), paced by the same pacer as verify's reads: one command, one
  budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings, read_api_key
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.net import Backoff
from ometria_sync.ometria import OmetriaClient
from ometria_sync.pacing import RatePacer
from ometria_sync.pipeline import (
    RunOptions,
    account_pacer,
    load_transform,
    new_run_id,
    run_job,
    schema_validator,
    shared_budget,
)
from ometria_sync.sources import JsonlSourceConfig
from ometria_sync.state import open_state
from ometria_sync.verify.check import (
    Method,
    Plan,
    error_fingerprint,
    errors_by_record,
    judge,
    look_up,
    plan,
)
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.notes import VerifyLog, log_path, note_outcomes, refused_keys
from ometria_sync.verify.reader import Reader, ReadGuard
from ometria_sync.verify.report import (
    LISTED,
    NOT_VERIFIED,
    StreamSummary,
    VerifyOptions,
    VerifyReport,
)
from ometria_sync.verify.select import (
    Sampler,
    Tally,
    Window,
    deactivated_targets,
    last_run_window,
    read_targets,
)

log = structlog.get_logger("ometria_sync.verify")

# --- collect: the sources into the ledger -------------------------------------------------

#: ranks of one stream's records start at its index times this (a source holds fewer)
_STREAM_RANKS = 2**40


class Collected(msgspec.Struct):
    """Per stream read: its record type, refused records, and the window it was read in."""

    record_types: dict[str, str]
    invalid: dict[str, int]
    windows: dict[str, Window | None]
    #: refused ledger rows whose record the stream, read whole, no longer holds
    stale: dict[str, list[str]] = msgspec.field(default_factory=dict)


def streams_to_read(job: Job, selected: list[StreamSettings]) -> list[StreamSettings]:
    """The selected streams and the later enabled streams of their record types, in job
    order."""
    names = {s.name for s in selected}
    first: dict[str, int] = {}
    for index, stream in enumerate(job.settings.streams):
        if stream.name in names:
            first.setdefault(stream.record_type, index)
    return [s for i, s in enumerate(job.settings.streams)
            if s.name in names or (s.enabled and i > first.get(s.record_type, i))]


async def collect(job: Job, selected: list[StreamSettings], ledger: Ledger, *,
                  sample: int | None, seed: int, last_run: bool,
                  refused: dict[str, frozenset[str]] | None = None) -> Collected:
    """``refused``: the streams' refused ledger keys, looked out for in a whole read."""
    names = {s.name for s in selected}
    found = Collected({}, {}, {})
    for stream in streams_to_read(job, selected):
        window = None
        if last_run:
            window = last_run_window(job.settings.report.folder, stream.name)
            if window is None:
                log.warning("no_run_recorded", stream=stream.name,
                            detail="no sending run in the reports: verifying every record")
        whole = not last_run and sample is None
        tally = Tally(watch=(refused or {}).get(stream.name, frozenset()) if whole
                      else frozenset())
        sampler = Sampler(sample, seed) if sample is not None and stream.name in names else None
        rank = job.index_of(stream.name) * _STREAM_RANKS
        chunks = read_targets(stream, schema_validator(stream), tally, window=window,
                              transform=load_transform(job, stream))
        # deactivated products and orders read back by id; a contact's opt-out is not (the
        # profiles listing matches contacts by email, which a deactivation does not carry)
        deactivations = (stream.on_missing == "deactivate" and window is None
                         and stream.record_type in ("product", "order"))
        for source in (chunks, deactivated_targets(job, stream)) if deactivations else (chunks,):
            async for targets in source:
                ledger.add(rank, stream.name, targets,
                           selected=stream.name in names and sampler is None)
                rank += len(targets)
                if sampler is not None:
                    for target in targets:
                        sampler.offer(target.key)
        if sampler is not None:
            ledger.select(sampler.keys)
        found.record_types[stream.name] = stream.record_type
        found.invalid[stream.name] = tally.invalid
        found.windows[stream.name] = None if tally.whole else window
        if tally.watch - tally.seen:
            found.stale[stream.name] = sorted(tally.watch - tally.seen)
    return found


# --- check_stream: one stream's ids, a chunk at a time ------------------------------------

Errors = dict[tuple[str, str], dict[str, Any]]


async def check_stream(reader: Reader, ledger: Ledger, how: Plan, errors: Errors, *,
                       workers: int, update_since: str | None = None,
                       again: bool = False) -> None:
    """Judge the stream's selected ids (``again``: only those not verified yet)."""
    stream, record_type = how.stream, how.record_type
    if how.method == "single":
        for chunk in ledger.chunks(stream, not_verified=again):
            targets = [t for t, _ in chunk]
            found = await look_up(reader, record_type, targets, workers=workers)
            ledger.settle(targets, [judge(stream, record_type, t, found.get(t.key), errors)
                                    for t in targets])
        return
    if how.method == "list":
        if again:
            ledger.forget_lookups(stream)
        await _list(reader, ledger, stream, record_type, update_since)
        if record_type == "contact" and update_since is not None:
            await _not_listed(reader, ledger, stream, workers=workers, again=again)
    for chunk in ledger.chunks(stream, not_verified=again):
        targets = [t for t, _ in chunk]
        ledger.settle(targets, [judge(stream, record_type, t, stored, errors)
                                for t, stored in chunk])


async def _list(reader: Reader, ledger: Ledger, stream: str, record_type: str,
                update_since: str | None) -> None:
    if record_type == "contact":
        params = {"updateSince": update_since} if update_since else None
        async for page in reader.pages("/profiles", params):
            ledger.match_profiles(stream, page)
        return
    async for page in reader.pages(f"/{record_type}s"):
        ledger.match_ids(stream, page)


async def _not_listed(reader: Reader, ledger: Ledger, stream: str, *, workers: int,
                      again: bool) -> None:
    """Contacts the ``updateSince`` listing did not show: by email, else the full listing."""
    for chunk in ledger.chunks(stream, unmatched=True, not_verified=again, with_email=True):
        targets = [t for t, _ in chunk]
        ledger.found(await look_up(reader, "contact", targets, workers=workers))
    if next(ledger.chunks(stream, unmatched=True, not_verified=again, with_email=False,
                          size=1), None):
        await _list(reader, ledger, stream, "contact", None)


# --- resend: --repair's push through the normal pipeline ----------------------------------

class RepairFailed(OmetriaSyncError):
    """The resend itself failed (key refused, Ometria unreachable): exit 1."""


async def resend(job: Job, ledger: Ledger, streams: list[str], pacer: RatePacer) -> None:
    """Push the not verified ids of ``streams``: each stream reads a JSON Lines file of its
    records to resend, written from the ledger a chunk at a time."""
    by_name = {s.name: s for s in job.settings.streams}
    with tempfile.TemporaryDirectory(prefix="ometria-sync-repair-") as folder:
        replaced: list[StreamSettings] = []
        for name in streams:
            path = Path(folder) / f"{len(replaced)}.jsonl"
            with path.open("wb") as out:
                for chunk in ledger.chunks(name, not_verified=True):
                    out.write(b"".join(msgspec.json.encode(t.record) + b"\n" for t, _ in chunk))
            replaced.append(msgspec.structs.replace(
                by_name[name], source=JsonlSourceConfig(path=str(path)), enabled=True))
        kept = [s for s in job.settings.streams if s.name not in set(streams)]
        settings = msgspec.structs.replace(job.settings, streams=replaced + kept)
        result = await run_job(Job(path=job.path, settings=settings),
                               RunOptions(repair=True, streams=list(streams), progress="off"),
                               handle_signals=False, pacer=pacer)
    if result.exit_code == ExitCode.FATAL:
        raise RepairFailed(result.error or "the repair run failed")
    log.info("repair_sent", sent=sum(s.sent for s in result.streams),
             dead_lettered=sum(s.dead_lettered for s in result.streams))


# --- verify_job: the order of work --------------------------------------------------------

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
    #: ``/push/_errors`` as last fetched (None: not fetched)
    listed: Any = None


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
    steps: VerifyLog


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
    started = dt.datetime.now(dt.UTC)
    report = VerifyReport(
        job=str(job.path), started_at=started.isoformat(timespec="seconds"),
        verify_id="verify-" + new_run_id(started),
        selection="sample" if options.sample is not None else
        "last_run" if options.last_run else "all",
        seed=seed, rate_limit=settings.ometria.rate_limit_per_second, streams=[], records=[])
    ledger = Ledger()
    steps = VerifyLog(log_path(job), report.verify_id)
    try:
        refused = (await refused_keys(job)
                   if options.sample is None and not options.last_run else None)
        collected = await collect(job, selected, ledger, sample=options.sample, seed=seed or 0,
                                  last_run=options.last_run, refused=refused)
        plans = _plans(selected, ledger, collected, options.method)
        for name, how in plans.items():
            if how.method == "none":
                ledger.not_verifiable(name)
        if announce is not None:
            announce(list(plans.values()), settings.ometria.rate_limit_per_second, seed)
        counts = _Counts()
        await _check(job, options, ledger, collected, plans, report, counts, steps)
        _summarise(ledger, collected, plans, counts, report)
        notes = await note_outcomes(job, ledger, steps, collected.stale)  # for the next
        # run, and ``trace``
        report.ledger_noted, report.ledger_left = notes.noted, notes.left
    finally:
        ledger.close()
        steps.close()
    report.exit_code = int(_exit_code(report))
    if (report.exit_code == ExitCode.OK and options.streams is None
            and report.selection == "all" and isinstance(counts.listed, list)):
        await _record_clean(job, report.started_at, counts.listed)
    return report


async def _record_clean(job: Job, at: str, listed: list[Any]) -> None:
    """Every record of the job verified: what ``/push/_errors`` lists now is history, and
    ``errors`` exits 3 only for errors listed after it."""
    state = await open_state(job.settings.state.checkpoint_url, job.settings.state.schema,
                             job=job.name, streams=job.stream_names)
    try:
        await state.record_clean_verify(at, [error_fingerprint(e) for e in listed])
    finally:
        await state.aclose()


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
                 plans: dict[str, Plan], report: VerifyReport, counts: _Counts,
                 steps: VerifyLog) -> None:
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
                             counts, steps)
            async with guard.reading():
                await _round(work, plans)
            if options.repair:
                await _repair(work)
        except OmetriaSyncError as exc:
            report.error = str(exc)
        finally:
            report.requests = reader.requests if reader is not None else 0


async def _round(work: _Checking, plans: dict[str, Plan], *, again: bool = False) -> None:
    work.counts.listed = await work.reader.get("/push/_errors")
    errors = errors_by_record(work.counts.listed)
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
        for chunk in work.ledger.not_verified():
            for name, target, status, detail in chunk:
                if name in bad:
                    work.steps.repairing(name, target, status, detail, round_no)
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
