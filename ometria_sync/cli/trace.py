"""``trace``: one record's story, from what the job's state and reports remember of it.

``ometria-sync trace JOB.toml ID [--stream NAME]`` gathers, per stream:

* the ledger (``pipeline/ledger.py``): refused or not delivered, why, first and last seen with
  the run ids, attempts, parked;
* the dead letter (file or database): each refusal with its run id, time, stage, line,
  position and reasons, and whether it was new or known;
* the change index: whether Ometria acknowledged a version of it (a hash is kept);
* ``verify-log.jsonl`` (``verify/notes.py``): what each verify found of it (missing,
  different, listed in ``/push/_errors``), its resends by ``--repair``, and the verify that
  found it in Ometria, with the run that resent it from the ledger before;
* the run reports: the runs whose window (where the run started reading to its checkpoint)
  covers a position the record was seen at, with their outcome;
* ``on_missing = "deactivate"``: whether the last complete read saw it, and whether it was
  deactivated because a complete read (or the ``deleted_query``) no longer had it.

The id may be a contact's ``collection/id``. Email addresses and phone numbers in what is
shown are masked (``a***@example.com``, ``+4*********23``) unless ``--show-values``. Reads no
source, so needs no source secret; the change index is looked up without writing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.cli.common import SubParsers
from ometria_sync.cli.job import with_state
from ometria_sync.config import Job, load_job
from ometria_sync.errors import ExitCode, OmetriaSyncError
from ometria_sync.pipeline import hash64, identity
from ometria_sync.state import LedgerEntry, StateStore, comparable, presence_index
from ometria_sync.verify import VerifyStep, read_steps, sending_run_reports, verify_log_path

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<![\w.])(\+?\d)[\d \-().]{5,}(\d\d)(?![\w.])")


def mask(text: str) -> str:
    """Email addresses and phone numbers in ``text`` masked: the first character and the
    domain of an address, the first and last two digits of a number."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(
        lambda m: m.group(1) + "*" * (len(m.group(0)) - len(m.group(1)) - 2) + m.group(2), text)


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    trace = sub.add_parser("trace", parents=[common],
                           help="tell one record's story: refusals, deliveries, retries, runs")
    trace.add_argument("job", help="the job file (TOML)")
    trace.add_argument("id", help="the record's id (a contact's may be collection/id)")
    trace.add_argument("--stream", metavar="NAME", help="only this stream")
    trace.add_argument("--show-values", action="store_true",
                       help="show email addresses and phone numbers in clear")
    trace.add_argument("--json", action="store_true", help="print JSON instead of text")
    trace.set_defaults(func=cmd_trace)


class Step(msgspec.Struct, omit_defaults=True):
    """One thing that happened to the record (or that the state says of it now)."""

    stream: str
    what: str
    time: str | None = None
    run_id: str | None = None
    detail: str | None = None
    position: Any = None
    #: the record's full key (``collection/id`` for a contact of a collection), when known
    key: str | None = None


def _matches(key: str | None, wanted: str) -> bool:
    return key is not None and (key == wanted or key.endswith("/" + wanted))


def _ledger_steps(rows: list[LedgerEntry], wanted: str) -> list[Step]:
    steps = []
    for row in rows:
        if not _matches(row.key, wanted):
            continue
        if row.kind not in ("missing", "unverified"):  # verify's own log tells those
            first = "refused" if row.kind == "refused" else "not delivered"
            steps.append(Step(row.stream, f"{first} (first)", row.first_seen, row.first_run,
                              row.reason, key=row.key))
        now = {"refused": "still refused", "undelivered": "to be resent by the next run",
               "missing": "to be resent by the next run",
               "unverified": "resent and acknowledged, waiting for a verify to find it",
               "parked": "parked: no longer resent"}.get(row.kind, row.kind)
        detail = f"{row.reason}; {row.attempts} run(s) so far"
        if row.payload:
            detail += f"; payload kept: {row.payload}"
        steps.append(Step(row.stream, f"ledger: {now}", row.last_seen, row.last_run, detail))
    return steps


def _verify_steps(steps: list[VerifyStep], wanted: str, streams: list[str]) -> list[Step]:
    """What each verify found of the record, and the resends between them."""
    found = []
    for step in steps:
        if step.stream not in streams or not _matches(step.key, wanted):
            continue
        if (step.what == "verified" and step.resent_by and step.resent_at
                and not step.resent_by.startswith("verify-")):
            found.append(Step(step.stream, "resent from the ledger, acknowledged",
                              step.resent_at, step.resent_by, key=step.key))
        found.append(Step(step.stream, f"verify: {step.what}", step.time, step.verify_id,
                          step.detail, step.position, step.key))
    return found


def _dead_letter_step(entry: dict[str, Any]) -> Step:
    reasons = "; ".join(f"{r.get('path')}: {r.get('message')}" if r.get("path")
                        else str(r.get("message")) for r in entry.get("reasons") or [])
    known = entry.get("known_since")
    what = f"refused at {entry.get('stage', 'validate')}" + (
        f" (known since {known})" if known else " (new)")
    line = entry.get("line")
    where = f"{entry.get('source')}" + (f" line {line}" if line else "")
    record = entry.get("record")
    shown = msgspec.json.encode(record).decode() if record is not None else entry.get("raw")
    return Step(str(entry.get("stream")), what, entry.get("time"), entry.get("run_id"),
                f"{where}: {reasons}; record: {shown}", entry.get("position"), _entry_id(entry))


def _entry_id(entry: dict[str, Any]) -> str | None:
    record = entry.get("record")
    collection = record.get("@collection") if isinstance(record, dict) else None
    rid = entry.get("id")
    return f"{collection}/{rid}" if collection and rid else rid


async def _dead_letter_steps(job: Job, store: StateStore, wanted: str,
                             stream: str | None) -> list[Step]:
    steps = []
    if job.settings.state.dead_letter == "database":
        lines = [line async for line in store.dead_letters(stream)]
    else:
        path = Path(job.settings.state.dead_letter_path)
        lines = path.read_bytes().splitlines() if path.exists() else []
    for line in lines:
        try:
            entry = msgspec.json.decode(line)
        except msgspec.DecodeError:
            continue
        if (isinstance(entry, dict) and _matches(_entry_id(entry), wanted)
                and (stream is None or entry.get("stream") == stream)):
            steps.append(_dead_letter_step(entry))
    return steps


def _run_steps(job: Job, streams: list[str], positions: dict[str, list[Any]]) -> list[Step]:
    """The runs whose window covers a position the record was seen at, from the reports."""
    steps = []
    for report in sending_run_reports(job.settings.report.folder):
        for entry in report.get("streams") or []:
            name = entry.get("stream") if isinstance(entry, dict) else None
            if name not in streams or not positions.get(name):
                continue
            start, end = entry.get("start_position"), entry.get("checkpoint_position")
            if any(_covers(start, end, p) for p in positions[name]):
                steps.append(Step(name, "read by a run", report.get("started_at"),
                                  report.get("run_id"),
                                  f"outcome {entry.get('outcome')}, read from {start} to "
                                  f"{end} (exit {report.get('exit_code')})"))
    return steps


def _covers(start: Any, end: Any, position: Any) -> bool:
    try:
        here = _ordered(position)
        after = start is None or here > _ordered(start)
        return bool(after and end is not None and here <= _ordered(end))
    except TypeError:
        return False


def _ordered(position: Any) -> Any:
    """A position in a form that compares by order: a SQL source's keyset watermark
    (``{"after": [values as text]}``) by its values, numbers as numbers; else ``comparable``."""
    after = position.get("after") if isinstance(position, dict) else None
    if isinstance(after, list):
        return tuple(_number_or_text(v) for v in after)
    return comparable(position)


def _number_or_text(value: Any) -> tuple[int, Any]:
    try:
        return 0, float(value)
    except (TypeError, ValueError):
        return 1, str(value)


def _id_hashes(keys: set[str]) -> list[int]:
    """The change index's id hashes of ``keys`` (an id, or a contact's ``collection/id``)."""
    hashes = []
    for key in keys:
        collection, _, rid = key.rpartition("/")
        record = {"@collection": collection, "id": rid} if collection else {"id": key}
        hashes.append(hash64(identity(record)))
    return hashes


async def _acknowledged(store: StateStore, stream: str, keys: set[str]) -> Step | None:
    """Whether a change hash is kept for the record under any of ``keys`` (the id as
    given, and the ``collection/id`` keys its refusals were seen under)."""
    found = await store.lookup(await store.stream_id(stream), _id_hashes(keys))
    if not found:
        return None
    return Step(stream, "acknowledged by Ometria (a version of it: its change hash is kept)")


async def _presence(store: StateStore, stream: str, keys: set[str]) -> list[Step]:
    """What ``on_missing`` knows of the record: deactivated, or seen by which read."""
    rows = await presence_index(store).status(await store.stream_id(stream), _id_hashes(keys))
    steps = []
    for seen, gone, current in rows:
        if gone:
            what = ("deactivated in Ometria (on_missing): the source no longer had it; sent "
                    "active again if it comes back")
        elif seen >= current:
            what = f"seen by the last complete read of the source (read {current})"
        else:
            what = (f"missing from the last complete read (read {current}; last seen by read "
                    f"{seen}): the deactivation is sent once a read passes the guards")
        steps.append(Step(stream, what))
    return steps


async def story(job: Job, store: StateStore, wanted: str, stream: str | None) -> list[Step]:
    """Every step the state and the reports remember of record ``wanted``, oldest first."""
    streams = [stream] if stream else job.stream_names
    steps = _ledger_steps([r for r in await store.ledger(stream) if r.stream in streams],
                          wanted)
    steps += await _dead_letter_steps(job, store, wanted, stream)
    steps += _verify_steps(read_steps(verify_log_path(job)), wanted, streams)
    positions: dict[str, list[Any]] = {}
    for step in steps:
        if step.position is not None:
            positions.setdefault(step.stream, []).append(step.position)
    steps += _run_steps(job, streams, positions)
    steps.sort(key=lambda s: (s.time or "", s.run_id or ""))
    keys = {wanted} | {s.key for s in steps if s.key}
    deactivating = {s.name for s in job.streams if s.on_missing == "deactivate"}
    for name in streams:
        acknowledged = await _acknowledged(store, name, keys)
        if acknowledged is not None:
            steps.append(acknowledged)
        if name in deactivating:
            steps += await _presence(store, name, keys)
    return steps


def cmd_trace(args: argparse.Namespace) -> int:
    job = load_job(args.job)
    if args.stream:
        job.select([args.stream])
    try:
        steps = with_state(job, lambda store: story(job, store, args.id, args.stream))
    except OmetriaSyncError as exc:
        print(f"ometria-sync: {exc}", file=sys.stderr)
        return ExitCode.FATAL
    show = (lambda text: text) if args.show_values else mask
    if args.json:
        print(show(msgspec.json.encode(steps).decode()))
        return ExitCode.OK
    if not steps:
        print(f"nothing recorded of {args.id!r}: never refused, never left undelivered, and no "
              "change hash kept (never acknowledged, or change detection is off)")
        return ExitCode.OK
    for step in steps:
        head = " ".join(p for p in (step.time, step.run_id and f"run {step.run_id}") if p)
        print(show(f"{step.stream}: {head + ': ' if head else ''}{step.what}"
                   + (f" - {step.detail}" if step.detail else "")))
    return ExitCode.OK
