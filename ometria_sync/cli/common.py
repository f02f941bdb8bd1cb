"""What the command modules share: the sub-parser type each registers its commands on, and the
tables they print, among them the end-of-run summary (one row per stream, and the top reasons
records were refused)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO, TypeAlias

from ometria_sync.pipeline import StreamStats

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction

_COLUMNS = (
    ("stream", "stream"), ("outcome", "outcome"), ("read", "read"), ("valid", "valid"),
    ("unchanged", "unchanged"), ("sent", "sent"), ("accepted", "accepted"),
    ("rejected", "rejected"), ("unconfirmed", "unconfirmed"),
    ("dead-lettered", "dead_lettered"), ("requests", "requests"), ("429s", "throttled"),
    ("retries", "retries"), ("seconds", "duration"), ("records/s", "records_per_second"),
)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: argparse's ``%(default)s`` added where the
    help does not already say it, and where there is one to say (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


@contextlib.contextmanager
def quiet_if_stdout_closed() -> Iterator[None]:
    """Printing to a closed pipe (``ometria-sync run job.toml | head -3``) stops the printing,
    quietly: no traceback, and the caller's exit code stands. stdout is pointed at /dev/null so
    that the interpreter's last flush does not fail either."""
    try:
        yield
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at /dev/null: its reader has gone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _cell(stats: StreamStats, attr: str) -> str:
    value = getattr(stats, attr)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


#: a dry run sent nothing: what it would have sent, and nothing of Ometria's answers
_DRY_RUN_COLUMNS = (
    ("stream", "stream"), ("outcome", "outcome"), ("read", "read"), ("valid", "valid"),
    ("unchanged", "unchanged"), ("would send", "sent"), ("dead-lettered", "dead_lettered"),
    ("seconds", "duration"),
)

_VALIDATION_COLUMNS = (
    ("stream", "stream"), ("records", "read"), ("valid", "valid"),
    ("invalid", "dead_lettered"), ("warnings", "warnings"),
)


def print_summary(streams: list[StreamStats], out: TextIO, *, validation: bool = False,
                  dry_run: bool = False) -> None:
    """The table of counts per stream (``validation``: what ``validate`` found; ``dry_run``:
    what would be sent, never "sent" or "accepted"), then the top reasons records were refused
    and the top warnings."""
    columns = (_VALIDATION_COLUMNS if validation else _DRY_RUN_COLUMNS if dry_run
               else _COLUMNS)
    headers = [title for title, _ in columns]
    rows = [[_cell(s, attr) for _, attr in columns] for s in streams]
    print(render_table(rows, headers), file=out)
    for stats in streams:
        if (stats.slack is not None and stats.slack_max is not None and not validation
                and not dry_run):
            print(f"{stats.stream}: pacing slack {stats.slack * 1000:.0f} ms per window of "
                  f"requests (widest {stats.slack_max * 1000:.0f} ms)", file=out)
        if stats.error:
            print(f"\n{stats.stream}: {stats.error}", file=out)
        if stats.unconfirmed and not validation and not dry_run:
            print(f"\n{stats.stream}: {stats.unconfirmed} records not confirmed by Ometria "
                  "(answered \"skipped\", whose meaning is undocumented): not counted as "
                  "delivered, and their change hashes are forgotten, so a later run that "
                  "reads them sends them again", file=out)
        if not validation:
            _print_ledger(stats, out)
            _print_missing(stats, out)
        if stats.filtered:
            print(f"\n{stats.stream}: {stats.filtered} record(s) skipped by the stream's "
                  "transform (it returned None)", file=out)
        if stats.reasons:
            print(f"\n{stats.stream}: why records were refused (records, problems)", file=out)
            for reason, records, problems in stats.top_reasons(10):
                print(f"  {records:>8}  {problems:>8}  {reason}", file=out)
        if stats.warnings:
            print(f"\n{stats.stream}: {stats.warnings} warnings, e.g.", file=out)
            top = sorted(stats.warning_reasons.items(), key=lambda kv: -kv[1])[:5]
            for reason, count in top:
                print(f"  {count:>8}  {reason}", file=out)


def _print_missing(stats: StreamStats, out: TextIO) -> None:
    """What ``on_missing = "deactivate"`` did: ids gone from the source, ids back."""
    if stats.missing:
        print(f"\n{stats.stream}: {stats.missing} id(s) delivered before are missing from the "
              f"source: {stats.deactivated} deactivation(s) sent", file=out)
    if stats.reactivated:
        print(f"\n{stats.stream}: {stats.reactivated} id(s) deactivated before came back: sent "
              "active again", file=out)


def _print_ledger(stats: StreamStats, out: TextIO) -> None:
    """What the ledger of refused records says of this run: the refusals an earlier run found
    already (known: they alone do not make the run exit 3), and the records that left it."""
    if stats.refused_known and stats.refused_known_since:
        print(f"\n{stats.stream}: {stats.refused_known} still refused since "
              f"{stats.refused_known_since[:10]}, unchanged; {stats.refused_new} new",
              file=out)
    if stats.ledger_left:
        print(f"\n{stats.stream}: {stats.ledger_left} record(s) of the ledger went out and "
              "were acknowledged: they left it", file=out)
    if stats.resent:
        print(f"\n{stats.stream}: {stats.resent} record(s) not delivered by an earlier run "
              "resent first, from the ledger", file=out)
    if stats.undelivered:
        print(f"\n{stats.stream}: {stats.undelivered} record(s) not delivered (retries ran out, "
              "cut off at the grace period, or not confirmed): kept in the ledger, the next "
              "run resends them first", file=out)
    if stats.parked:
        print(f"\n{stats.stream}: {stats.parked} record(s) parked after their last attempt "
              "([run] max_attempts): no longer resent; `ometria-sync trace JOB.toml ID` tells "
              "their story", file=out)
