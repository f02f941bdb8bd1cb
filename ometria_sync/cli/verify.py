"""``ometria-sync verify``: look the job's records up in Ometria; ``--repair`` resends."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ometria_sync.cli.common import SubParsers, render_table
from ometria_sync.config import load_job
from ometria_sync.errors import ExitCode, StateError
from ometria_sync.pipeline import load_transforms
from ometria_sync.verify import LISTED, Plan, VerifyOptions, outcome_rows, report_json, verify_job

#: records listed in the table (``--json`` lists up to ``LISTED``)
_SHOWN = 50


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common],
                       help="read the records back from Ometria and report what is missing or "
                            "different; --repair resends them")
    p.add_argument("job", help="the job file (TOML)")
    p.add_argument("--stream", action="append", metavar="NAME",
                   help="verify only this stream (repeatable; default: every stream)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true",
                       help="every valid record of the sources (the default)")
    which.add_argument("--sample", type=_positive, metavar="N",
                       help="a uniform sample of N records per stream (its seed is printed)")
    which.add_argument("--last-run", action="store_true",
                       help="only what the last sending run covered (from the run reports)")
    p.add_argument("--seed", type=int, default=None,
                   help="the sample's seed, to repeat one (default: a random one)")
    p.add_argument("--method", choices=("auto", "list", "single"), default="auto",
                   help="list pages (250 a request) or one look-up per record "
                        "(default: whichever costs fewer requests)")
    p.add_argument("--repair", action="store_true",
                   help="resend what is missing or different, then verify it again")
    p.add_argument("--repair-rounds", type=_positive, default=3, metavar="N",
                   help="with --repair: how many resend-and-verify rounds at most")
    p.add_argument("--settle", type=float, default=10.0, metavar="SECONDS",
                   help="wait for Ometria's asynchronous import after a repair ")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)


def _announce(plans: list[Plan], rate: float, seed: int | None) -> None:
    out = sys.stderr
    requests = sum(p.requests for p in plans)
    requests += 1 if requests else 0  # GET /push/_errors, when anything is looked up
    rows = [[p.stream, p.record_type, str(p.records), p.method, str(p.requests),
             str(p.single_requests) if p.record_type != "custom_event" else "-",
             str(p.list_requests) if p.list_requests is not None else "-"] for p in plans]
    print(render_table(rows, ["stream", "type", "records", "method", "requests",
                              "look-ups", "list pages"]), file=out)
    fallback = sum(p.fallback for p in plans)
    print(f"estimate: {requests} requests, about {requests / rate:.1f} s at {rate:g} req/s"
          + (f", and up to {fallback} look-ups of contacts changed before the last run "
             "(not in its updateSince listing)" if fallback else "")
          + (f"; sample seed {seed}" if seed is not None else ""), file=out, flush=True)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.seed is not None and args.sample is None:
        print("ometria-sync: --seed needs --sample", file=sys.stderr)
        return ExitCode.USAGE
    job = load_job(args.job)
    selected = job.select(args.stream)
    job.check_credentials(selected)  # verify reads the sources
    # and compares what the streams' transforms make of them (read: selected or enabled)
    load_transforms(job, [s for s in job.streams if s.enabled or s in selected])
    options = VerifyOptions(streams=args.stream, sample=args.sample, seed=args.seed,
                            last_run=args.last_run, method=args.method, repair=args.repair,
                            repair_rounds=args.repair_rounds, settle=args.settle)
    try:
        report = asyncio.run(verify_job(job, options, announce=_announce))
    except StateError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    if args.json:
        sys.stdout.write(report_json(report).decode() + "\n")
    else:
        rows = [[s.stream, s.record_type, s.method, str(s.checked), str(s.verified),
                 str(s.different), str(s.missing), str(s.in_errors), str(s.not_verifiable),
                 str(s.invalid), str(s.repaired), str(s.requests)] for s in report.streams]
        print(render_table(rows, ["stream", "type", "method", "checked", "verified",
                                  "different", "missing", "in _errors", "not verifiable",
                                  "invalid", "repaired", "requests"]))
        details = outcome_rows(report.records, _SHOWN)
        if details:
            print()
            print(render_table(details, ["status", "stream", "id", "source", "detail"]))
            hidden = len(report.records) + report.records_not_listed - len(details)
            if hidden > 0:
                print(f"... and {hidden} more (--json lists the first {LISTED})")
        if report.seed is not None:
            print(f"\nsample seed: {report.seed} (repeat with --seed {report.seed})")
        print(f"requests: {report.requests}")
        if report.ledger_noted or report.ledger_left:
            print(f"ledger ({report.verify_id}): {report.ledger_noted} record(s) not in Ometria"
                  f" noted, the next run resends them first; {report.ledger_left} found in "
                  "Ometria left it")
    if report.error:
        print(f"ometria-sync: {report.error}", file=sys.stderr)
    elif report.exit_code == ExitCode.NOTHING_VERIFIED:
        print("ometria-sync: nothing was verified: the selection holds no record that can be "
              "read back (custom events have no read endpoint; an empty selection)",
              file=sys.stderr)
    return report.exit_code
