"""The job's run history, kept in its state store: ``history`` lists it; every run adds its
report to it (:func:`keep_report`), and the HTML report's trend and the health rules read it
(:func:`stored_reports`).

The reports are read from the state store first (it outlives a pod), and from
``report.folder`` for runs the store does not have (older runs, or a store that could not be
written); a run in both counts once.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from ometria_sync.cli.common import SubParsers, render_table
from ometria_sync.config import Job, load_job
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.report import (
    HISTORY_HEADERS,
    RunReport,
    decode_reports,
    history_rows,
    summarize,
)
from ometria_sync.state import open_state

log = structlog.get_logger("ometria_sync.history")

T = TypeVar("T")
#: the most runs read back from the store at once
MOST_RUNS = 1000


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    history = sub.add_parser("history", parents=[common],
                             help="list the job's runs, newest first, from its state store")
    history.add_argument("job", help="the job file (TOML)")
    history.add_argument("--last", type=int, default=20, metavar="N",
                         help="how many runs to list")
    history.add_argument("--json", action="store_true",
                         help="print JSON (one object per run, with its streams)")
    history.set_defaults(func=cmd_history)


def keep_report(job: Job, report: RunReport, last: int) -> list[RunReport]:
    """Add the run's report to the job's state store, and return the job's newest ``last``
    reports (this one included, oldest first), in one opening of the store. A store that
    cannot be written or read is logged, never fatal (the run is over and its JSON file is
    written already): the reports are then those of ``report.folder``."""

    async def write_and_read() -> list[bytes]:
        state = job.settings.state
        store = await open_state(state.checkpoint_url, state.schema, job=job.name,
                                 streams=job.stream_names)
        try:
            store.add_run_report(report.run_id, report.started_at, msgspec.json.encode(report))
            return await store.run_reports(last)
        finally:
            await store.aclose()

    try:
        stored = decode_reports(run_sync(write_and_read))
    except OmetriaSyncError as exc:
        log.warning("run_report_not_kept_in_state", error=str(exc))
        stored = []
    return _with_folder(job, stored, last, report)


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())``; on a thread of its own when the caller's thread already runs
    an event loop (a program that calls ``finish_report`` from a coroutine)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _folder_reports(job: Job) -> list[RunReport]:
    folder = Path(job.settings.report.folder)
    return decode_reports(p.read_bytes() for p in folder.glob("*.json")) if folder.is_dir() \
        else []


def stored_reports(job: Job, last: int = MOST_RUNS) -> list[RunReport]:
    """The job's newest ``last`` run reports, oldest first: from the state store, and from
    ``report.folder`` for runs the store lacks. StateError when the store cannot be read."""

    async def read() -> list[bytes]:
        state = job.settings.state
        store = await open_state(state.checkpoint_url, state.schema, job=job.name,
                                 streams=job.stream_names)
        try:
            return await store.run_reports(last)
        finally:
            await store.aclose()

    return _with_folder(job, decode_reports(run_sync(read)), last)


def _with_folder(job: Job, stored: list[RunReport], last: int,
                 *also: RunReport) -> list[RunReport]:
    """The store's reports, and the folder's for runs the store lacks: newest ``last``."""
    reports = {r.run_id: r for r in (*also, *stored)}
    for report in _folder_reports(job):
        reports.setdefault(report.run_id, report)
    return sorted(reports.values(), key=lambda r: (r.started_at, r.run_id))[-last:]


def cmd_history(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    try:
        summaries = [summarize(r) for r in stored_reports(job, max(1, args.last))]
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if args.json:
        print(msgspec.json.encode(list(reversed(summaries))).decode())
        return ExitCode.OK
    if not summaries:
        print(f"no run of job {job.name!r} is recorded")
        return ExitCode.OK
    print(render_table(history_rows(summaries), HISTORY_HEADERS))
    return ExitCode.OK
