"""``verify``: read the job's records again from their sources, look them up in Ometria, sort
them, and (``repair``) resend what is missing or different through the normal pipeline.

Order of work: select the records of every stream (nothing is requested yet), announce the
plan (requests and time at the account's rate), fetch ``/push/_errors`` once, look the records
up stream by stream. ``repair`` then pushes the records that are not verified with
:func:`~ometria_sync.pipeline.job_run.run_job` in ``repair`` mode (validation, dead letter,
pacing; no checkpoint moves, no change detection), waits ``settle`` seconds for Ometria's
asynchronous import, and verifies them again, for up to ``repair_rounds`` rounds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings, read_api_key
from ometria_sync.errors import OmetriaSyncError
from ometria_sync.exit_codes import ExitCode
from ometria_sync.net.backoff import Backoff
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pipeline.job_run import RunOptions, account_pacer, run_job, shared_budget
from ometria_sync.pipeline.validation import schema_validator
from ometria_sync.sources.jsonl import JsonlSourceConfig
from ometria_sync.verify.check import (
    Method,
    Outcome,
    Plan,
    classify,
    errors_by_record,
    look_up,
    plan,
)
from ometria_sync.verify.reader import Reader
from ometria_sync.verify.select import Selection, Target, last_run_window, select

log = structlog.get_logger("ometria_sync.verify")

NOT_VERIFIED = ("different", "missing", "in_errors")


class VerifyOptions(msgspec.Struct, frozen=True, kw_only=True):
    streams: list[str] | None = None
    #: a uniform sample of this many records per stream (None: all)
    sample: int | None = None
    #: the sample's seed (None: drawn, and reported)
    seed: int | None = None
    last_run: bool = False
    method: Method = "auto"
    repair: bool = False
    repair_rounds: int = 3
    #: seconds to let Ometria import a repair before it is verified again
    settle: float = 10.0


class StreamSummary(msgspec.Struct):
    stream: str
    record_type: str
    method: str
    checked: int
    verified: int = 0
    different: int = 0
    missing: int = 0
    in_errors: int = 0
    not_verifiable: int = 0
    #: records the batcher would refuse (never sent, so not looked up)
    invalid: int = 0
    #: records resent by ``--repair``
    repaired: int = 0
    requests: int = 0


class VerifyReport(msgspec.Struct):
    job: str
    started_at: str
    selection: Literal["all", "sample", "last_run"]
    seed: int | None
    rate_limit: float
    streams: list[StreamSummary]
    records: list[Outcome]
    requests: int = 0
    exit_code: int = 0
    error: str | None = None


def _client(job: Job) -> OmetriaClient:
    ometria = job.settings.ometria
    return OmetriaClient(ometria.base_url, read_api_key(ometria),
                         timeout=ometria.request_timeout,
                         retry_after_cap=ometria.retry_after_cap,
                         ca_bundle=ometria.ca_bundle, connections=ometria.dispatchers + 2)


def _summarise(summary: StreamSummary, outcomes: list[Outcome]) -> None:
    for name in ("verified", "different", "missing", "in_errors", "not_verifiable"):
        setattr(summary, name, sum(1 for o in outcomes if o.status == name))


async def verify_job(
    job: Job,
    options: VerifyOptions,
    *,
    announce: Callable[[list[Plan], float, int | None], None] | None = None,
) -> VerifyReport:
    """Verify the job's streams; fatal errors end up in ``report.error`` (exit 1)."""
    settings = job.settings
    streams = job.select(options.streams)
    seed = options.seed
    if options.sample is not None and seed is None:
        seed = random.SystemRandom().randrange(2**31)
    report = VerifyReport(
        job=str(job.path), started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        selection="sample" if options.sample is not None else
        "last_run" if options.last_run else "all",
        seed=seed, rate_limit=settings.ometria.rate_limit_per_second, streams=[], records=[])
    selections: dict[str, Selection] = {}
    plans: dict[str, Plan] = {}
    for stream in streams:
        window = None
        if options.last_run:
            window = last_run_window(settings.report.folder, stream.name)
            if window is None:
                log.warning("no_run_recorded", stream=stream.name,
                            detail="no sending run in the reports: verifying every record")
        chosen = await select(stream, schema_validator(stream), sample=options.sample,
                              seed=seed or 0, window=window)
        selections[stream.name] = chosen
        plans[stream.name] = plan(stream.name, stream.record_type, chosen.targets,
                                  chosen.distinct, options.method,
                                  update_since=_since(chosen))
    if announce is not None:
        announce(list(plans.values()), settings.ometria.rate_limit_per_second, seed)
    client = _client(job)
    budget = await shared_budget(job)  # reads share the account's budget with any run
    try:
        reader = Reader(client, budget or account_pacer(settings),
                        Backoff(settings.ometria.backoff_base, settings.ometria.backoff_cap),
                        max_retries=settings.ometria.max_retries,
                        max_throttle_wait=settings.ometria.max_throttle_wait)
        try:
            await _verify(job, options, streams, selections, plans, reader, report)
        except OmetriaSyncError as exc:
            report.error = str(exc)
        report.requests = reader.requests
    finally:
        await client.aclose()
        if budget is not None:
            await budget.aclose()
    report.exit_code = int(_exit_code(report))
    return report


def _since(selection: Selection) -> str | None:
    return selection.window.started_at if selection.window is not None else None


def _exit_code(report: VerifyReport) -> ExitCode:
    if report.error:
        return ExitCode.FATAL
    if any(o.status in NOT_VERIFIED for o in report.records):
        return ExitCode.PARTIAL
    return ExitCode.OK


async def _verify(job: Job, options: VerifyOptions, streams: list[StreamSettings],
                  selections: dict[str, Selection], plans: dict[str, Plan], reader: Reader,
                  report: VerifyReport) -> None:
    workers = job.settings.ometria.dispatchers
    errors = errors_by_record(await reader.get("/push/_errors"))
    by_stream: dict[str, list[Outcome]] = {}
    for stream in streams:
        chosen, how = selections[stream.name], plans[stream.name]
        before = reader.requests
        stored = await look_up(reader, stream.record_type, chosen.targets, how.method,
                               workers=workers, update_since=_since(chosen))
        by_stream[stream.name] = classify(stream.name, stream.record_type, chosen.targets,
                                          stored, errors)
        report.streams.append(StreamSummary(stream.name, stream.record_type, how.method,
                                            len(chosen.targets), invalid=chosen.invalid,
                                            requests=reader.requests - before))
    if options.repair:
        await _repair(job, options, streams, selections, by_stream, reader, report)
    for summary in report.streams:
        _summarise(summary, by_stream[summary.stream])
        report.records.extend(by_stream[summary.stream])


async def _repair(job: Job, options: VerifyOptions, streams: list[StreamSettings],
                  selections: dict[str, Selection], by_stream: dict[str, list[Outcome]],
                  reader: Reader, report: VerifyReport) -> None:
    summaries = {s.stream: s for s in report.streams}
    for round_no in range(1, options.repair_rounds + 1):
        bad: dict[str, list[Target]] = {}
        for stream in streams:
            wrong = {o.id for o in by_stream[stream.name] if o.status in NOT_VERIFIED}
            chosen = [t for t in selections[stream.name].targets if t.id in wrong]
            if chosen:
                bad[stream.name] = chosen
        if not bad:
            return
        log.info("repair", round=round_no, records={k: len(v) for k, v in bad.items()})
        await _resend(job, [s for s in streams if s.name in bad], bad)
        for name, targets in bad.items():
            summaries[name].repaired += len(targets)
        await asyncio.sleep(options.settle)
        errors = errors_by_record(await reader.get("/push/_errors"))
        for stream in streams:
            if stream.name not in bad:
                continue
            resent = bad[stream.name]
            how = plan(stream.name, stream.record_type, resent,
                       selections[stream.name].distinct, options.method)
            stored = await look_up(reader, stream.record_type, resent, how.method,
                                   workers=job.settings.ometria.dispatchers)
            again = {o.id: o for o in classify(stream.name, stream.record_type, resent,
                                               stored, errors)}
            by_stream[stream.name] = [again.get(o.id, o) for o in by_stream[stream.name]]


async def _resend(job: Job, streams: list[StreamSettings],
                  bad: dict[str, list[Target]]) -> None:
    """Push ``bad`` through the normal pipeline: each stream reads a JSON Lines file of its
    records to resend, validated, paced and dead-lettered as in a run; no checkpoint moves."""
    with tempfile.TemporaryDirectory(prefix="ometria-sync-repair-") as folder:
        replaced = []
        for stream in streams:
            path = Path(folder) / f"{stream.name}.jsonl"
            path.write_bytes(b"".join(msgspec.json.encode(t.record) + b"\n"
                                      for t in bad[stream.name]))
            replaced.append(msgspec.structs.replace(
                stream, source=JsonlSourceConfig(path=str(path)), enabled=True))
        names = {s.name for s in replaced}
        kept = [s for s in job.settings.streams if s.name not in names]
        settings = msgspec.structs.replace(job.settings, streams=replaced + kept)
        result = await run_job(Job(path=job.path, settings=settings),
                               RunOptions(repair=True, streams=sorted(names), progress="off"),
                               handle_signals=False)
    if result.exit_code == ExitCode.FATAL:
        raise _RepairFailed(result.error or "the repair run failed")
    log.info("repair_sent", sent=sum(s.sent for s in result.streams),
             dead_lettered=sum(s.dead_lettered for s in result.streams))


class _RepairFailed(OmetriaSyncError):
    """The resend itself failed (key refused, Ometria unreachable): exit 1."""


def outcome_rows(records: list[Outcome], limit: int) -> list[list[str]]:
    """Table rows for the records that are not verified (at most ``limit``)."""
    rows = []
    for outcome in records:
        if outcome.status == "verified":
            continue
        if outcome.status == "not_verifiable":
            detail = f"no read endpoint for {outcome.record_type} records"
        elif outcome.differences:
            detail = "; ".join(d.describe() for d in outcome.differences[:3])
            if len(outcome.differences) > 3:
                detail += f"; ... {len(outcome.differences) - 3} more"
        elif outcome.error:
            detail = f"{outcome.error.get('error_path', '')}: {outcome.error.get('error_message')}"
        else:
            detail = "not found in Ometria"
        rows.append([outcome.status, outcome.stream, outcome.id, outcome.source, detail])
        if len(rows) >= limit:
            break
    return rows


def report_json(report: VerifyReport) -> bytes:
    return msgspec.json.encode(report)
