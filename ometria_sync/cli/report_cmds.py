"""``plan`` and ``errors``, and what ``run`` leaves behind: the JSON report and the metrics."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any, TextIO

import structlog

from ometria_sync.cli._types import SubParsers
from ometria_sync.cli.summary import render_table
from ometria_sync.config import Job, load_job, read_api_key, read_rate_limit_url
from ometria_sync.errors import OmetriaSyncError, RateBudgetError
from ometria_sync.exit_codes import ExitCode
from ometria_sync.net.urls import redact_url
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pacing.redis_budget import live_processes
from ometria_sync.pipeline.job_run import JobResult, RunOptions, run_job
from ometria_sync.report.metrics import export_metrics
from ometria_sync.report.run_report import (
    RunReport,
    group_ometria_errors,
    shared_budget_report,
    stream_report,
    write_report,
)

log = structlog.get_logger("ometria_sync.report")


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    plan = sub.add_parser("plan", parents=[common],
                          help="count what the next run would send and how long it would take")
    plan.add_argument("job")
    plan.add_argument("--stream", action="append", metavar="NAME")
    plan.set_defaults(func=cmd_plan)
    errors = sub.add_parser("errors", parents=[common],
                            help="fetch Ometria's latest push validation errors, grouped")
    errors.add_argument("job")
    errors.set_defaults(func=cmd_errors)


def finish_report(job: Job, result: JobResult, *, dry_run: bool) -> str:
    """Write ``<report.folder>/<run-id>.json`` and the metrics the job asks for."""
    settings = job.settings
    report = RunReport(
        run_id=result.run_id, job=str(job.path), started_at=result.started_at,
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        exit_code=result.exit_code, dry_run=dry_run, dead_letter_path=result.dead_letter_path,
        streams=[stream_report(s, settings.ometria.rate_limit_per_second)
                 for s in result.streams],
        ometria_errors=group_ometria_errors(result.ometria_errors), error=result.error,
        shared_budget=shared_budget_report(result.shared_budget,
                                           settings.ometria.rate_limit_per_second)
        if result.shared_budget else None,
    )
    path = write_report(report, settings.report.folder)
    if settings.report.metrics_textfile or settings.report.pushgateway_url:
        try:
            export_metrics(report, job.name, textfile=settings.report.metrics_textfile,
                           pushgateway=settings.report.pushgateway_url)
        except OSError as exc:  # monitoring must not fail the sync
            log.warning("metrics_not_exported", error=str(exc))
    return str(path)


def print_ometria_errors(errors: Any, out: TextIO) -> None:
    groups = group_ometria_errors(errors)
    if not groups:
        return
    print("\nOmetria's latest push validation errors (GET /v2/push/_errors), grouped:", file=out)
    rows = [[str(g.count), g.error_path, g.error_message] for g in groups]
    print(render_table(rows, ["count", "path", "message"]), file=out)


def cmd_errors(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    ometria = job.settings.ometria
    key = read_api_key(ometria)

    async def fetch() -> Any:
        client = OmetriaClient(ometria.base_url, key, timeout=ometria.request_timeout,
                               ca_bundle=ometria.ca_bundle)
        try:
            return await client.get_json("/push/_errors")
        finally:
            await client.aclose()

    try:
        errors = asyncio.run(fetch())
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if not group_ometria_errors(errors):
        print("Ometria lists no push validation errors for this account.")
        return ExitCode.OK
    print_ometria_errors(errors, sys.stdout)
    return ExitCode.PARTIAL


def cmd_plan(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    result = asyncio.run(run_job(job, RunOptions(plan_only=True, streams=args.stream,
                                                 progress="off")))
    rate, note = _plan_rate(job)
    rows = []
    for s in result.streams:
        seconds = s.requests / rate
        rows.append([s.stream, str(s.read), str(s.valid), str(s.unchanged), str(s.sent),
                     str(s.dead_lettered), str(s.requests), _duration(seconds)])
    print(render_table(rows, ["stream", "records", "valid", "unchanged", "to send", "invalid",
                              "requests", f"at {rate:.3g} req/s"]))
    if note:
        print(f"\n{note}")
    total = sum(s.requests for s in result.streams) / rate
    print(f"\nestimated duration: {_duration(total)} (from the checkpoints; "
          "nothing was sent or saved)")
    return ExitCode.FATAL if result.error else ExitCode.OK


def _plan_rate(job: Job) -> tuple[float, str]:
    """The rate this job can expect: the limit, or its share of a budget shared through
    Redis with the processes running on the account now."""
    ometria = job.settings.ometria
    limit = ometria.rate_limit_per_second
    url = read_rate_limit_url(ometria)
    if url is None:
        return limit, ""
    try:
        others = asyncio.run(live_processes(url, base_url=ometria.base_url,
                                            api_key=read_api_key(ometria)))
    except RateBudgetError as exc:
        return limit, f"shared rate budget: {exc}; assuming the whole limit"
    rate = limit / (others + 1)
    return rate, (f"shared rate budget ({redact_url(url)}): {others} other process(es) on this "
                  f"account now; this job's share: {rate:.3g} of {limit:g} requests/s")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
