"""Health and alerts: the ``[alerts]`` rules checked at the end of every run and by
``ometria-sync health``, and the webhook told when a run fails, cannot start, or the job is
unhealthy.

Guarantees: telling the webhook never fails a run nor changes its exit code (a receiver that is
down, slow or wrong is logged and left); the webhook URL's secret (for Slack, its path; any
password or secret-looking parameter) never appears in output: only its scheme and host do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog

from ometria_sync.cli.common import SubParsers
from ometria_sync.cli.history import run_sync, stored_reports
from ometria_sync.config import AlertSettings, Job, load_job
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.net import scrub
from ometria_sync.report import Health, HealthRules, RunReport, judge

log = structlog.get_logger("ometria_sync.alerts")

#: runs read back to judge health (the median rule needs 8; the rest is for the last success)
JUDGED_RUNS = 50
WEBHOOK_TIMEOUT_SECONDS = 10.0


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    health = sub.add_parser("health", parents=[common],
                            help="check the job's [alerts] rules against its run history: "
                                 "exit 0 healthy, 1 not (with the reasons)")
    health.add_argument("job", help="the job file (TOML)")
    health.add_argument("--json", action="store_true", help="print the verdict as JSON")
    health.add_argument("--notify", action="store_true",
                        help="also tell alerts.webhook_url_env's webhook when unhealthy")
    health.set_defaults(func=cmd_health)


def rules_of(alerts: AlertSettings) -> HealthRules:
    fields = msgspec.structs.asdict(alerts)
    fields.pop("webhook_url_env")
    return HealthRules(**fields)


def job_health(job: Job) -> Health:
    """The job's health now (StateError when its store cannot be read)."""
    reports = stored_reports(job, JUDGED_RUNS)
    return judge(reports, rules_of(job.settings.alerts), dt.datetime.now(dt.UTC))


def after_run(job: Job, report: RunReport, history: list[RunReport]) -> Health | None:
    """At the end of a run (not a dry run): judge the job from ``history`` (its recent runs,
    this one included), log the verdict when unhealthy, and tell the webhook. Never raises."""
    if report.dry_run:
        return None
    runs = {r.run_id: r for r in history}
    runs[report.run_id] = report
    health = judge(list(runs.values()), rules_of(job.settings.alerts), dt.datetime.now(dt.UTC))
    if not health.healthy:
        log.warning("job_unhealthy", job=job.name, run_id=report.run_id,
                    reasons=health.reasons)
        notify(job, health)
    return health


def message(job: Job, health: Health) -> str:
    run = health.last_run
    head = f"ometria-sync job {job.name}: unhealthy"
    if run is not None:
        head += f" after run {run.run_id} ({run.outcome}, exit {run.exit_code})"
    return head + "\n" + "\n".join(f"• {reason}" for reason in health.reasons)


def webhook_label(url: str) -> str:
    """The URL as it may be shown: scheme and host only (a webhook's path is its secret)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _safe(text: str, url: str) -> str:
    parts = urlsplit(url)
    text = text.replace(url, webhook_label(url))
    for secret in (parts.path if len(parts.path) > 1 else "", parts.query, parts.netloc):
        if secret:
            text = text.replace(secret, "…")
    return scrub(text, url)


def notify(job: Job, health: Health) -> bool:
    """Tell the job's webhook that it is unhealthy, and why. Never raises."""
    return tell(job, message(job, health))


def notify_not_started(job: Job, error: OmetriaSyncError) -> bool:
    """Tell the job's webhook that a run could not start (its state or the shared rate budget
    was out of reach): no report is written then, so no health rule would ever see that run.
    Never raises."""
    return tell(job, f"ometria-sync job {job.name}: the run could not start (exit "
                     f"{int(ExitCode.FATAL)})\n• {error}")


def tell(job: Job, text: str) -> bool:
    """POST ``{"text": text}`` to the job's webhook; False (and a log line) when there is none
    or it did not take the message. Never raises."""
    name = job.settings.alerts.webhook_url_env
    if not name:
        return False
    url = os.environ.get(name, "")
    if not url:
        log.warning("webhook_not_told", reason=f"alerts.webhook_url_env: the environment "
                                               f"variable {name} is not set")
        return False

    async def post() -> int:
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                url, json={"text": text}) as answer:
            return answer.status

    try:
        status = run_sync(post)
    except Exception as exc:  # any failure of the receiver: logged, never the run's
        log.warning("webhook_not_told", webhook=webhook_label(url),
                    error=_safe(f"{type(exc).__name__}: {exc}", url))
        return False
    if status >= 300:
        log.warning("webhook_not_told", webhook=webhook_label(url), status=status)
        return False
    log.info("webhook_told", webhook=webhook_label(url), status=status)
    return True


def cmd_health(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    try:
        health = job_health(job)
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if args.json:
        print(msgspec.json.encode(health).decode())
    else:
        print("healthy" if health.healthy else "unhealthy:")
        for reason in health.reasons:
            print(f"  {reason}")
        for note in health.notes:
            print(f"  note: {note}")
    if not health.healthy and args.notify:
        notify(job, health)
    return ExitCode.OK if health.healthy else ExitCode.FATAL
