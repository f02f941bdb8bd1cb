"""``ometria-sync plan JOB``: count what the next run would send and how long it would take.

The job runs in plan mode (read, validate and compare with the checkpoints; nothing is sent or
saved), and the requests it would make are timed at the rate this job can expect: the limit, or
its share of a budget shared through Redis with the processes running on the account now.
"""

from __future__ import annotations

import argparse
import asyncio

from ometria_sync.cli.common import SubParsers, render_table
from ometria_sync.config import Job, load_job, read_api_key, read_rate_limit_url
from ometria_sync.errors import ExitCode, RateBudgetError
from ometria_sync.net import redact_url
from ometria_sync.pacing import live_processes
from ometria_sync.pipeline import RunOptions, run_job


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    plan = sub.add_parser("plan", parents=[common],
                          help="count what the next run would send and how long it would take")
    plan.add_argument("job", help="the job file (TOML)")
    plan.add_argument("--stream", action="append", metavar="NAME",
                      help="plan only this stream (repeatable; default: every stream)")
    plan.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    result = asyncio.run(run_job(job, RunOptions(plan_only=True, streams=args.stream,
                                                 progress="off")))
    rate, note = _plan_rate(job)
    rows = []
    for s in result.streams:
        seconds = s.requests / rate
        rows.append([s.stream, str(s.read), str(s.valid), str(s.unchanged), str(s.sent),
                     str(s.deactivated), str(s.dead_lettered), str(s.requests),
                     _duration(seconds)])
    print(render_table(rows, ["stream", "records", "valid", "unchanged", "to send",
                              "to deactivate", "invalid", "requests",
                              f"at {rate:.3g} req/s"]))
    for s in result.streams:  # on_missing: what a run would refuse to deactivate, and why
        if s.error:
            print(f"\n{s.stream}: {s.error}")
    if note:
        print(f"\n{note}")
    total = sum(s.requests for s in result.streams) / rate
    print(f"\nestimated duration: {_duration(total)} (from the checkpoints; "
          "nothing was sent or saved)")
    failed = result.error or any(s.error for s in result.streams)
    return ExitCode.FATAL if failed else ExitCode.OK


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
