"""What ``run`` leaves behind: the JSON report, the HTML report and the metrics; ``report``,
which shows a run's report again (JSON, or ``--html``); and ``errors``, Ometria's own list of
the pushed records it refused, grouped."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any, TextIO

import msgspec
import structlog

from ometria_sync.cli.alerts import JUDGED_RUNS, after_run
from ometria_sync.cli.common import SubParsers, render_table
from ometria_sync.cli.history import keep_report, stored_reports
from ometria_sync.config import Job, load_job, read_api_key
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.ometria import OmetriaClient
from ometria_sync.pipeline import JobResult
from ometria_sync.report import (
    TREND_RUNS,
    RunReport,
    export_metrics,
    group_ometria_errors,
    shared_budget_report,
    stream_report,
    write_html,
    write_report,
)
from ometria_sync.state import CleanVerify, open_state
from ometria_sync.verify import error_fingerprint

log = structlog.get_logger("ometria_sync.report")


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    errors = sub.add_parser("errors", parents=[common],
                            help="fetch Ometria's latest push validation errors, grouped; exit 3 "
                                 "only for those listed since the last clean `verify --all`")
    errors.add_argument("job", help="the job file (TOML): its Ometria account")
    errors.set_defaults(func=cmd_errors)

    show = sub.add_parser("report", parents=[common],
                          help="show a run's report: its JSON, or an HTML page with charts")
    show.add_argument("job", help="the job file (TOML)")
    show.add_argument("--run", metavar="ID",
                      help="the run's id, as in `history` (default: the latest run)")
    show.add_argument("--html", metavar="OUT.html",
                      help="write the HTML report here (one self-contained file, no network) "
                           "instead of printing the JSON")
    show.set_defaults(func=cmd_report)


def finish_report(job: Job, result: JobResult, *, dry_run: bool) -> str:
    """Write ``<report.folder>/<run-id>.json``, keep it in the state store, check the job's
    health (telling the webhook when unhealthy), write the HTML report and the metrics the
    job asks for. Only the JSON file's failure raises: the rest is logged."""
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
    history = keep_report(job, report, JUDGED_RUNS)  # this run included
    after_run(job, report, history)  # health, and the webhook when unhealthy
    if settings.report.html:
        try:
            write_html(report, history[-TREND_RUNS:], path.with_suffix(".html"))
        except OSError as exc:  # a page for people must not fail the sync
            log.warning("html_report_not_written", error=str(exc))
    if settings.report.metrics_textfile or settings.report.pushgateway_url:
        try:
            export_metrics(report, job.name, textfile=settings.report.metrics_textfile,
                           pushgateway=settings.report.pushgateway_url)
        except OSError as exc:  # monitoring must not fail the sync
            log.warning("metrics_not_exported", error=str(exc))
    return str(path)


def cmd_report(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    try:
        reports = stored_reports(job)
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    chosen = [r for r in reports if r.run_id == args.run] if args.run else reports[-1:]
    if not chosen:
        which = f"run {args.run!r}" if args.run else "any run"
        print(f"ometria-sync: no report of {which} for job {job.name!r} "
              f"(looked in {job.settings.report.folder})", file=sys.stderr)
        return ExitCode.FATAL
    (report,) = chosen
    if not args.html:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
        return ExitCode.OK
    before = reports[:reports.index(report) + 1]  # the trend up to this run
    path = write_html(report, before[-TREND_RUNS:], args.html)
    print(f"HTML report of run {report.run_id}: {path}")
    return ExitCode.OK


def print_ometria_errors(errors: Any, out: TextIO) -> None:
    groups = group_ometria_errors(errors)
    if not groups:
        return
    print("\nOmetria's latest push validation errors (GET /v2/push/_errors), grouped:", file=out)
    rows = [[str(g.count), g.error_path, g.error_message] for g in groups]
    print(render_table(rows, ["count", "path", "message"]), file=out)


_TO_LEDGER = ("\n`ometria-sync verify JOB.toml --last-run` (or --all) puts the records these "
              "errors name in the ledger: the next run resends them first")


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

    async def last_clean() -> CleanVerify | None:
        state = await open_state(job.settings.state.checkpoint_url, job.settings.state.schema,
                                 job=job.name, streams=job.stream_names)
        try:
            return await state.last_clean_verify()
        finally:
            await state.aclose()

    try:
        errors = asyncio.run(fetch())
        clean = asyncio.run(last_clean())
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if not group_ometria_errors(errors):
        print("Ometria lists no push validation errors for this account.")
        return ExitCode.OK
    if clean is None:
        print_ometria_errors(errors, sys.stdout)
        print(_TO_LEDGER)
        return ExitCode.PARTIAL
    seen = set(clean.errors)
    new = [e for e in errors if error_fingerprint(e) not in seen]
    print(f"{len(errors) - len(new)} of the {len(errors)} listed errors were listed already at "
          f"the last clean `verify --all` ({clean.at}): history, every record verified then")
    if not new:
        print("none is newer: nothing to look at")
        return ExitCode.OK
    print(f"{len(new)} listed since:")
    print_ometria_errors(new, sys.stdout)
    print(_TO_LEDGER)
    return ExitCode.PARTIAL
