"""``dead-letter``: the refused records of a job as JSON Lines, from the dead-letter file or the
state database, whole or one run's (``--run ID``, ``--last``), all or only the refusals that run
found new (``--new``: not the same content an earlier run refused, see the ledger in
``pipeline/ledger.py``).

Every entry names the run that refused it (``run_id``); entries written before runs were named
in file mode have none, and are listed only without ``--run``/``--last``. Reads no source, so
no source secret is needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.cli.common import SubParsers
from ometria_sync.cli.job import with_state
from ometria_sync.config import Job, load_job
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.state import StateStore


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    dead = sub.add_parser("dead-letter", parents=[common],
                          help="write the job's refused records (from the dead-letter file or "
                               "the state database) as JSON Lines")
    dead.add_argument("job", help="the job file (TOML)")
    dead.add_argument("--stream", metavar="NAME", help="only this stream")
    which = dead.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="only this run (its id, as in the report)")
    which.add_argument("--last", action="store_true",
                       help="only the last run (the newest report in report.folder)")
    dead.add_argument("--new", action="store_true",
                      help="only the refusals the run found new (not refused with the same "
                           "content by an earlier run)")
    dead.set_defaults(func=cmd_dead_letter)


class _Filter(msgspec.Struct, frozen=True):
    stream: str | None
    run_id: str | None
    new_only: bool

    def keeps(self, entry: Any) -> bool:
        if not isinstance(entry, dict):
            return self.run_id is None and not self.new_only
        if self.stream is not None and entry.get("stream") != self.stream:
            return False
        if self.run_id is not None and entry.get("run_id") != self.run_id:
            return False
        return not (self.new_only and entry.get("known_since"))


def last_run_id(report_folder: str) -> str | None:
    """The id of the newest sending run: run ids (report file names) sort in start order;
    dry runs are left out."""
    folder = Path(report_folder)
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            report = msgspec.json.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            continue
        if isinstance(report, dict) and not report.get("dry_run") and report.get("run_id"):
            return str(report["run_id"])
    return None


def _file_lines(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip(b"\n")


def cmd_dead_letter(args: argparse.Namespace) -> int:
    """The refused records, oldest first, as JSON Lines on stdout; a count on stderr."""
    job = load_job(args.job)
    if args.stream:
        job.select([args.stream])
    run_id = args.run
    if args.last:
        run_id = last_run_id(job.settings.report.folder)
        if run_id is None:
            print(f"ometria-sync: no run recorded in {job.settings.report.folder}",
                  file=sys.stderr)
            return ExitCode.FATAL
    keep = _Filter(args.stream, run_id, args.new)
    try:
        count = _export(job, keep)
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    where = ("the state database" if job.settings.state.dead_letter == "database"
             else job.settings.state.dead_letter_path)
    run = f" of run {run_id}" if run_id else ""
    print(f"{count} refused record(s){run} from {where}", file=sys.stderr)
    return ExitCode.OK


def _export(job: Job, keep: _Filter) -> int:
    out = sys.stdout.buffer
    count = 0
    decode = msgspec.json.decode

    def emit(line: bytes) -> None:
        nonlocal count
        try:
            entry = decode(line)
        except msgspec.DecodeError:  # a line cut by a crash: shown whole, never hidden
            entry = None
        if keep.keeps(entry):
            out.write(line + b"\n")
            count += 1

    if job.settings.state.dead_letter == "database":
        async def read(store: StateStore) -> None:
            rows: AsyncIterator[bytes] = store.dead_letters(keep.stream, keep.run_id)
            async for line in rows:
                emit(line)

        with_state(job, read)
    else:
        for line in _file_lines(Path(job.settings.state.dead_letter_path)):
            emit(line)
    out.flush()
    return count
