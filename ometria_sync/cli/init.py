"""``ometria-sync init``: a first job file from a CSV export, then a validation of its first
rows with that job, and what to look at.

The job is written from the header (``scaffold``); the check is the ``validate`` command's own
run (``run_job`` with ``validate_only``: nothing sent, no network) on a copy of the file's
first rows and of the job, in a scratch folder, so nothing is left beside the job file."""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import sys
import tempfile
from pathlib import Path

from ometria_sync.cli.common import SubParsers, print_summary, render_table
from ometria_sync.cli.emulator import DEFAULT_PORT
from ometria_sync.config import load_job
from ometria_sync.errors import ConfigError, ExitCode
from ometria_sync.logs import configure_logging
from ometria_sync.pipeline import JobResult, RunOptions, StreamStats, run_job
from ometria_sync.scaffold import (
    CHECK,
    ColumnMatch,
    ExportError,
    ExportHead,
    JobPlan,
    computed_columns,
    job_text,
    match_header,
    read_head,
)
from ometria_sync.schemas import RECORD_TYPES, RecordType, field_guide

SAMPLE_ROWS = 1000
#: fields whose column often identifies a record when the export has no id column
_ID_STAND_INS = ("sku", "email", "customer.email", "identity_email")


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    init = sub.add_parser(
        "init", parents=[common], help="write a first job file from a CSV export's header",
        description="Write a job file that maps the CSV's columns to the fields they likely "
                    "fill (email, first_name -> firstname, dob -> date_of_birth, Magento and "
                    "Shopify names...), with the conversions the sampled cells show they "
                    "need (Magento's 1/2/3 genders and 0/1 subscriptions, yes/no consent, "
                    "local phone numbers, UK countries, 31/12/1980 dates, positive "
                    "discounts...), with unknown columns dropped and listed, commented "
                    "out, under the mapping; then validate the first rows with it (nothing is "
                    "sent) and print the top reasons records are refused. Exit 0 when every "
                    "sampled row is valid, 3 when some are not, 1 when the file cannot be "
                    "read, 2 when OUT exists (without --force).")
    init.add_argument("--csv", required=True, metavar="FILE",
                      help="the export: CSV with a header row, plain or gzip")
    init.add_argument("--type", required=True, choices=RECORD_TYPES, dest="record_type",
                      help="the record type its rows are")
    init.add_argument("--out", default="job.toml", metavar="OUT",
                      help="the job file to write (default: job.toml)")
    init.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    init.add_argument("--region", default="GB", metavar="CC", type=_region,
                      help="the country a phone number without +country code is read in "
                           "(ISO 3166-1 alpha-2; default: GB): an assumption the job's "
                           "comments ask you to check")
    init.add_argument("--rows", type=int, default=SAMPLE_ROWS, metavar="N",
                      help=f"rows validated with the new job (default: {SAMPLE_ROWS})")
    init.set_defaults(func=cmd_init)


def _region(text: str) -> str:
    if len(text) != 2 or not text.isalpha():
        raise argparse.ArgumentTypeError(f"not a two-letter country code: {text!r}")
    return text.upper()


def cmd_init(args: argparse.Namespace) -> int:
    if args.log_level is None and not args.verbose:
        # the sample's run logs its scratch folder: only its warnings are worth a line here
        configure_logging(args.log_format, "warning")
    out = Path(args.out)
    source = Path(args.csv)
    if out.exists() and not args.force:
        print(f"ometria-sync: {out} exists: not overwritten (--force to replace it)",
              file=sys.stderr)
        return ExitCode.USAGE
    try:
        head = read_head(source, max(args.rows, 0))
    except ExportError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    record_type: RecordType = args.record_type
    matches = match_header(record_type, head.header, head.rows, args.region)
    plan = JobPlan(record_type, _relative(source, out), head.delimiter, matches,
                   _command(args), job_file=out.name,
                   emulator_url=f"http://127.0.0.1:{DEFAULT_PORT}/v2")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(job_text(plan), encoding="utf-8")
    _print_matches(out, plan, head)
    return _check_sample(plan, head)


def _relative(source: Path, out: Path) -> str:
    """The export's path as the job file names it: relative to the job file's folder."""
    try:
        return source.resolve().relative_to(out.resolve().parent).as_posix()
    except ValueError:
        return source.resolve().as_posix()


def _command(args: argparse.Namespace) -> str:
    words = ["ometria-sync", "init", "--csv", args.csv, "--type", args.record_type]
    if args.region != "GB":
        words += ["--region", args.region]
    if args.out != "job.toml":
        words += ["--out", args.out]
    return shlex.join(words)


def _print_matches(out: Path, plan: JobPlan, head: ExportHead) -> None:
    rows = [[m.column, m.field or "- (dropped)", m.type if m.field else ""]
            for m in plan.matches]
    table = render_table(rows, ["column", "field", "type"])
    print("\n".join(line.rstrip() for line in table.splitlines()))
    mapped = sum(1 for m in plan.matches if m.field)
    print(f"\nwrote {out}: {mapped} of {len(plan.matches)} columns mapped"
          + (f", delimiter {plan.delimiter!r}" if plan.delimiter != "," else ""))
    filled = {f: m.column for m in plan.matches for f in m.fields}
    for doc in field_guide(plan.record_type):
        if doc.required and "." not in doc.path and doc.path not in filled:
            stand_in = next((filled[f] for f in _ID_STAND_INS if f in filled), None)
            example = (f' (e.g. {stand_in} = "{doc.path}", in place of its line)'
                       if stand_in else "")
            print(f"no column fills {doc.path} (required): map the column that identifies "
                  f"a record to it{example}")
    computed = computed_columns(plan.record_type, plan.matches)
    for match in computed:
        print(f"computed: {match.field} = {match.expr}")
    checks = [(m.column, n[len(CHECK):]) for m in plan.matches + computed for n in m.notes
              if n.startswith(CHECK)]
    if checks:
        print("\ncheck these assumptions (a CHECK comment in the job says each again):")
        print("\n".join(f"  column {column!r}: {note}" for column, note in checks))
    if head.not_utf8_line is not None:
        print(f"line {head.not_utf8_line} is not UTF-8: the CSV source reads UTF-8, so "
              "convert the file (iconv -f cp1252 -t utf-8) or set the source's encoding")
    if len(set(head.header)) != len(head.header):
        print("the header names a column twice: the CSV source refuses such a file")


def _check_sample(plan: JobPlan, head: ExportHead) -> int:
    """Validate the sampled rows with the job as written (its path pointed at the sample)."""
    if not head.rows:
        print("\nno rows to validate after the header")
        return ExitCode.OK
    with tempfile.TemporaryDirectory(prefix="ometria-sync-init-") as scratch:
        folder = Path(scratch)
        (folder / "sample.csv").write_bytes(head.sample)
        sample = JobPlan(plan.record_type, "sample.csv", plan.delimiter, plan.matches,
                         plan.command)
        (folder / "job.toml").write_text(job_text(sample), encoding="utf-8")
        try:
            job = load_job(folder / "job.toml")
            result = asyncio.run(run_job(job, RunOptions(validate_only=True, progress="off"),
                                         handle_signals=False))
        except ConfigError as exc:
            print(f"\nthe job does not load as written: {exc}")
            return ExitCode.FATAL
    rows = f"{len(head.rows)} rows" if len(head.rows) != 1 else "row"
    print(f"\nthe first {rows}, validated with it (nothing sent):")
    print_summary(result.streams, sys.stdout, validation=True)
    _print_what_to_look_at(result, plan)
    return result.exit_code


_COLUMN = re.compile(r"column '((?:[^'\\]|\\.)*)'|column \"((?:[^\"\\]|\\.)*)\"")


def _print_what_to_look_at(result: JobResult, plan: JobPlan) -> None:
    """For each top reason, the column behind it, the field's rule and the column's hint."""
    stats: list[StreamStats] = result.streams
    reasons = [r for s in stats for r, _, _ in s.top_reasons(10)]
    warnings = [r for s in stats for r, _ in
                sorted(s.warning_reasons.items(), key=lambda kv: -kv[1])[:5]]
    by_field = {f: m for m in plan.matches for f in m.fields}
    by_column = {m.column: m for m in plan.matches}
    rules = {d.path: d.rule for d in field_guide(plan.record_type)}
    notes: list[str] = []
    for reason in reasons + warnings:
        match = _culprit(reason, by_field, by_column)
        if match is None or match.field is None:
            continue
        rule = rules.get(match.field, "")
        advice = match.hint or "; ".join(n[len(CHECK):] for n in match.notes
                                         if n.startswith(CHECK))
        note = (f"  column {match.column!r} -> {match.field}"
                + (f": {rule}" if rule else "") + (f"; {advice}" if advice else ""))
        if note not in notes:
            notes.append(note)
    if notes:
        print("\nwhat to look at (the column behind each reason; edit its line in the job):")
        print("\n".join(notes))
    if reasons:
        print(f"\nevery field, its rule and an example: ometria-sync fields {plan.record_type}")


def _culprit(reason: str, by_field: dict[str, ColumnMatch],
             by_column: dict[str, ColumnMatch]) -> ColumnMatch | None:
    named = _COLUMN.search(reason)
    if named is not None:
        return by_column.get(named.group(1) or named.group(2))
    path = reason.split(": ", 1)[0]
    return by_field.get(path)
