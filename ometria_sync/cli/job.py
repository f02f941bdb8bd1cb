"""The job commands: ``run``, ``validate``, ``status`` and ``reset``; and :func:`run`, the
synchronous Python API (``ometria_sync.run``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ometria_sync.cli.alerts import notify_not_started
from ometria_sync.cli.common import (
    SubParsers,
    print_summary,
    quiet_if_stdout_closed,
    render_table,
)
from ometria_sync.cli.report import finish_report, print_ometria_errors
from ometria_sync.config import Job, load_job
from ometria_sync.errors import ExitCode, OmetriaSyncError, RateBudgetError, StateError
from ometria_sync.pipeline import JobResult, RunOptions, SignalWatch, run_job
from ometria_sync.report import show_progress
from ometria_sync.state import LedgerEntry, StateStore, open_state

T = TypeVar("T")


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="sync the job's streams into Ometria")
    run.add_argument("job", help="the job file (TOML)")
    run.add_argument("--dry-run", action="store_true",
                     help="do everything but send: write the payloads to state.dry_run_dir")
    run.add_argument("--stream", action="append", metavar="NAME",
                     help="sync only this stream (repeatable; default: every stream)")
    run.add_argument("--full-refresh", action="store_true",
                     help="read from the start and send every record, changed or not")
    run.add_argument("--allow-mass-delete", action="store_true",
                     help="for this run, deactivate missing ids even when the source is empty "
                          "or more than max_missing_fraction of them are missing")
    run.add_argument("--progress", choices=("auto", "bars", "log", "off"), default=None,
                     help="progress display (default: the job's report.progress, auto)")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", parents=[common],
                              help="read and validate every stream; send nothing")
    validate.add_argument("job", help="the job file (TOML)")
    validate.add_argument("--stream", action="append", metavar="NAME",
                          help="validate only this stream (repeatable; default: every stream)")
    validate.set_defaults(func=cmd_validate)

    status = sub.add_parser("status", parents=[common], help="show each stream's checkpoint")
    status.add_argument("job", help="the job file (TOML)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=cmd_status)

    reset = sub.add_parser("reset", parents=[common], help="forget checkpoints")
    reset.add_argument("job", help="the job file (TOML)")
    reset.add_argument("--stream", metavar="NAME", help="only this stream (default: every stream)")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(func=cmd_reset)



def _run(args: argparse.Namespace, options: RunOptions) -> int:
    # SIGINT/SIGTERM from here until the report is written: a signal never leaves a run
    # without its summary and report
    with SignalWatch() as signals:
        return _run_watched(args, options, signals)


def _run_watched(args: argparse.Namespace, options: RunOptions, signals: SignalWatch) -> int:
    job = load_job(args.job)
    job.select(options.streams)  # unknown --stream names are a configuration error
    # what is loaded by now (modules, code tables, the job) lives as long as the process:
    # out of the collector's sight, a full collection during a long sync takes half as long
    gc.freeze()
    try:
        result = asyncio.run(run_job(job, options, signals=signals, observer=show_progress))
    except (StateError, RateBudgetError) as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        if not options.dry_run and not options.validate_only:
            notify_not_started(job, exc)
        return ExitCode.FATAL
    if not options.validate_only:  # written before anything is printed: a closed stdout
        result.report_path = finish_report(job, result, dry_run=options.dry_run)
    with quiet_if_stdout_closed():
        _print_result(result, options)
    if result.error:
        print(f"\nometria-sync: {result.error}", file=sys.stderr)
    return result.exit_code


def _print_result(result: JobResult, options: RunOptions) -> None:
    print_summary(result.streams, sys.stdout, validation=options.validate_only,
                  dry_run=options.dry_run)
    if result.report_path:
        print(f"\nreport: {result.report_path}")
        print_ometria_errors(result.ometria_errors, sys.stdout)
    dead = sum(s.dead_lettered for s in result.streams)
    if dead and options.validate_only:
        print(f"\n{dead} record(s) that a run would refuse, written to "
              f"{result.dead_letter_path} (validate's own file; the runs' dead letter is "
              "left alone)")
    elif dead:
        print(f"\n{dead} record(s) written to the dead letter: {result.dead_letter_path}")
    warned = sum(s.warnings for s in result.streams)
    if warned and result.warnings_path:
        print(f"\n{warned} warning(s); the records they were given for: {result.warnings_path}")
    if result.dry_run_dir:
        print(f"\ndry run: payloads written to {result.dry_run_dir}")
    sys.stdout.flush()  # a closed pipe fails here, inside the guard, not at exit


def run(job_path: str | Path, *, dry_run: bool = False, full_refresh: bool = False,
        streams: list[str] | None = None, validate_only: bool = False) -> JobResult:
    """Run a job as ``ometria-sync run`` does, from synchronous code, printing nothing: the
    run report is written (its path in ``report_path``) unless ``validate_only``. Raises
    ConfigError or StateError before anything is sent; every later failure is in the
    result (its ``exit_code`` is the command's). Call it where no event loop is running (inside
    one, await ``run_job`` instead); from the main thread it handles SIGINT and SIGTERM as the
    command does, from another it leaves them to the program."""
    options = RunOptions(dry_run=dry_run, full_refresh=full_refresh, streams=streams,
                         validate_only=validate_only, progress="off")
    job = load_job(job_path)
    job.select(streams)
    # SIGINT/SIGTERM handlers can be set from the main thread only; elsewhere they stay the
    # caller's
    main = threading.current_thread() is threading.main_thread()
    result = asyncio.run(run_job(job, options, handle_signals=main))
    if not validate_only:
        result.report_path = finish_report(job, result, dry_run=dry_run)
    return result


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, RunOptions(dry_run=args.dry_run, full_refresh=args.full_refresh,
                                 streams=args.stream, progress=args.progress,
                                 allow_mass_delete=args.allow_mass_delete))


def cmd_validate(args: argparse.Namespace) -> int:
    return _run(args, RunOptions(validate_only=True, streams=args.stream))


def with_state(job: Job, work: Callable[[StateStore], Awaitable[T]]) -> T:
    """Open the job's state (its rows only), run ``work`` on it, close it (StateError passes
    on). Reads no source: no source secret is needed."""

    async def run() -> T:
        store = await open_state(job.settings.state.checkpoint_url, job.settings.state.schema,
                                 job=job.name, streams=job.stream_names)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


async def _status_rows(job: Job, store: StateStore) -> list[dict[str, Any]]:
    running = await store.run_in_progress()
    rows: list[dict[str, Any]] = []
    for stream in job.streams:
        last = await store.last_run(stream.name)
        parts = await store.checkpoints(stream.name)
        rows.append({
            "stream": stream.name,
            "parts": [{"part": c.part, "position": c.position, "delivered": c.delivered,
                       "updated_at": c.updated_at} for c in parts],
            "delivered": sum(c.delivered for c in parts),
            "tracked_ids": await store.tracked_ids(stream.name),
            "ledger": _ledger_counts(await store.ledger(stream.name)),
            "last_run": last.finished_at or last.started_at if last else None,
            "outcome": _outcome(last.outcome if last else None, running),
        })
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    try:
        rows = with_state(job, lambda store: _status_rows(job, store))
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if args.json:
        print(msgspec.json.encode(rows).decode())
        return ExitCode.OK
    table = [[r["stream"], _position_text(r["parts"]), str(r["delivered"]),
              str(r["tracked_ids"]), r["last_run"] or "never", r["outcome"] or "-",
              ", ".join(f"{n} {kind}" for kind, n in r["ledger"].items()) or "-"]
             for r in rows]
    print(render_table(table, ["stream", "position", "delivered", "tracked ids", "last run",
                               "outcome", "ledger"]))
    return ExitCode.OK


def _ledger_counts(rows: list[LedgerEntry]) -> dict[str, int]:
    """The stream's ledger rows by kind: refused, undelivered and missing (resent by the next
    run), unverified (resent and acknowledged, waiting for a verify), parked."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.kind] = counts.get(row.kind, 0) + 1
    return counts


def _outcome(recorded: str | None, running: bool) -> str | None:
    """A run recorded as running while nobody holds the run lock was killed (kill -9, a lost
    machine): its checkpoint is safe, the next run resumes from it."""
    if recorded == "running" and not running:
        return "killed (no end recorded; the next run resumes)"
    return recorded


def _position_text(parts: list[dict[str, Any]]) -> str:
    if not parts:
        return "start"
    if len(parts) == 1:
        return msgspec.json.encode(parts[0]["position"]).decode()
    return f"{len(parts)} parts"


def cmd_reset(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    if args.stream:
        job.select([args.stream])
    what = f"stream {args.stream!r}" if args.stream else "every stream"
    if not args.yes:
        if not sys.stdin.isatty():
            print("ometria-sync: reset needs --yes when not run from a terminal", file=sys.stderr)
            return ExitCode.USAGE
        answer = input(f"Forget the checkpoints of {what}? The next run starts over. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return ExitCode.OK
    try:
        removed = with_state(job, lambda store: store.reset(args.stream))
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    print(f"forgot {removed} checkpoint(s) of {what}")
    return ExitCode.OK
