"""What a verify leaves for the next run and for ``trace``: its findings in the job's ledger,
and its steps in ``verify-log.jsonl``.

A record Ometria lost at import behind a cursor source (or listed in ``/push/_errors``) is
never read again by the next run: verify is what knows it. So at its end verify writes, through
the state store:

* a record found missing, different, or listed in ``/push/_errors`` with its id: a ledger row
  of kind ``missing`` (``pipeline.verify_finding``) holding its latest version, which the next
  run resends first (read again from the source by id where it can), and its change hash is
  forgotten (Ometria does not hold what the hash says it acknowledged: change detection must
  not skip the resend, nor the source's next read of it); a refused row is left as it is (its
  source version was never sent);
* a record found in Ometria in its latest version whose key the ledger holds (undelivered,
  missing, resent and not yet verified, parked): the row leaves the ledger (a refused row
  stays);
* a refused row whose record a whole read of its stream (``--all``: no ``--sample``, no
  ``--last-run``) no longer met, by id or, for a record without one, at its position: the row
  is stale (the row was deleted from the source, or the file replaced by one without it) and
  leaves the ledger. Nothing else ever takes it out: no run reads that record again.

The ledger keeps rows, not history: ``verify-log.jsonl``, beside the dead letter, keeps the
verify steps ``trace`` tells (found missing, different or listed; resent by ``--repair``;
verified and so out of the ledger, with the run that resent it), one JSON line each, only for
records that are not verified or leave the ledger: a clean verify of a million records writes
none. It is bounded: a verify that finds it past :data:`LOG_ROTATE_BYTES` moves it to
``verify-log.1.jsonl`` (replacing the one before) and starts a new one, so the two hold at most
about twice that, and ``trace`` reads both, the older first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import structlog

from ometria_sync.config import Job
from ometria_sync.pipeline import (
    hash64,
    identity,
    leaves_when_verified,
    record_key,
    verify_finding,
)
from ometria_sync.state import LedgerEntry, open_state, utc_now
from ometria_sync.verify.ledger import Detail, Ledger
from ometria_sync.verify.select import Target

log = structlog.get_logger("ometria_sync.verify")

_FOUND = {"missing": "found missing", "different": "found different",
          "in_errors": "found listed in /push/_errors"}


class VerifyStep(msgspec.Struct, omit_defaults=True):
    """One line of ``verify-log.jsonl``."""

    time: str
    verify_id: str
    stream: str
    key: str
    #: "found missing", "found different", "found listed in /push/_errors", "repaired",
    #: "verified"
    what: str
    detail: str | None = None
    source: str | None = None
    position: Any = None
    #: for "verified": the run that last resent it from the ledger, and when
    resent_by: str | None = None
    resent_at: str | None = None


#: the size past which the next verify starts a new ``verify-log.jsonl``
LOG_ROTATE_BYTES = 32 * 1024 * 1024


def log_path(job: Job) -> Path:
    """``verify-log.jsonl``, beside the dead letter."""
    return Path(job.settings.state.dead_letter_path).with_name("verify-log.jsonl")


class VerifyLog:
    """Appends :class:`VerifyStep` s to ``verify-log.jsonl`` (opened on the first step); a
    file that cannot be written is logged once and left alone (the ledger is what matters)."""

    def __init__(self, path: Path, verify_id: str) -> None:
        self.path = path
        self.verify_id = verify_id
        self._fh: BinaryIO | None = None
        self._broken = False
        #: ledger keys resent by ``--repair`` (their finding is logged when first resent)
        self.repaired: set[str] = set()

    def repairing(self, stream: str, target: Target, status: str, detail: Detail | None,
                  round_no: int) -> None:
        """``--repair`` resends this record: what was found (the first time), the resend."""
        key = record_key(target.record, None)
        if key not in self.repaired:
            self.repaired.add(key)
            self.add(stream, target, _FOUND.get(status, status),
                     detail=_reason(self.verify_id, status, detail))
        self.add(stream, target, "repaired",
                 detail=f"resent by verify --repair (round {round_no})")

    def add(self, stream: str, target: Target, what: str, **extra: Any) -> None:
        self.write(VerifyStep(utc_now(), self.verify_id, stream, record_key(target.record, None),
                              what, source=target.source, position=target.position, **extra))

    def write(self, step: VerifyStep) -> None:
        if self._broken:
            return
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _rotate(self.path)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._fh = os.fdopen(fd, "ab")
            self._fh.write(msgspec.json.encode(step) + b"\n")
        except OSError as exc:
            self._broken = True
            log.warning("verify_log_unwritable", path=str(self.path),
                        error=exc.strerror or str(exc))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def rotated(path: Path) -> Path:
    """Where the log before ``path`` went: ``verify-log.1.jsonl``."""
    return path.with_name(f"{path.stem}.1{path.suffix}")


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, rotated(path))
    except FileNotFoundError:
        pass


def read_steps(path: Path) -> list[VerifyStep]:
    """The steps in the rotated log, then in ``path`` (none when there is neither; unreadable
    lines left out)."""
    steps = []
    for each in (rotated(path), path):
        if not each.exists():
            continue
        for line in each.read_bytes().splitlines():
            try:
                steps.append(msgspec.json.decode(line, type=VerifyStep))
            except msgspec.DecodeError:
                continue
    return steps


def _reason(verify_id: str, status: str, detail: Detail | None) -> str:
    text = f"verify {verify_id}: {_FOUND.get(status, status)}"
    if detail is not None and detail.differences:
        text += ": " + ", ".join(d.path for d in detail.differences[:5])
    if detail is not None and detail.error:
        error = detail.error
        text += f": {error.get('error_path', '')}: {error.get('error_message')}"
    return text


class LedgerNotes(msgspec.Struct):
    """What one verify wrote in the ledger."""

    noted: int = 0
    left: int = 0


async def refused_keys(job: Job) -> dict[str, frozenset[str]]:
    """The job's refused ledger keys, by stream (what a whole read looks out for)."""
    settings = job.settings
    state = await open_state(settings.state.checkpoint_url, settings.state.schema,
                             job=job.name, streams=job.stream_names)
    try:
        found: dict[str, set[str]] = {}
        for row in await state.ledger():
            if not leaves_when_verified(row):
                found.setdefault(row.stream, set()).add(row.key)
        return {stream: frozenset(keys) for stream, keys in found.items()}
    finally:
        await state.aclose()


async def note_outcomes(job: Job, ledger: Ledger, steps: VerifyLog,
                        stale: dict[str, list[str]] | None = None) -> LedgerNotes:
    """Write this verify's outcomes in the job's ledger (see the module's docstring);
    ``stale``: refused rows whose record the source no longer holds, by stream."""
    settings = job.settings
    state = await open_state(settings.state.checkpoint_url, settings.state.schema,
                             job=job.name, streams=job.stream_names)
    notes = LedgerNotes()
    try:
        rows: dict[tuple[str, str], LedgerEntry] = {
            (r.stream, r.key): r for r in await state.ledger()}
        now = utc_now()
        for chunk in _outcomes(ledger, rows, steps.repaired):
            put, drops = _chunk(chunk, rows, steps, now, settings.run.max_attempts)
            if put:
                state.put_ledger(put)
                notes.noted += len(put)
                for stream, rows_of in _by_stream(put).items():
                    state.forget_ids(await state.stream_id(stream), rows_of)
            for stream, keys in drops.items():
                state.drop_ledger(stream, keys)
                notes.left += len(keys)
            await state.keep_up()
        for stream, keys in (stale or {}).items():
            state.drop_ledger(stream, keys)
            notes.left += len(keys)
            for key in keys:
                steps.write(VerifyStep(now, steps.verify_id, stream, key, "gone from the source",
                                       detail="refused, and no longer in the source: left "
                                              "the ledger"))
        await state.flush()
    finally:
        await state.aclose()
    if notes.noted or notes.left:
        log.info("verify_ledger", noted=notes.noted, left=notes.left,
                 verify_id=steps.verify_id)
    return notes


def _outcomes(ledger: Ledger, rows: dict[tuple[str, str], LedgerEntry],
              repaired: set[str] | frozenset[str] = frozenset()
              ) -> Iterator[list[tuple[str, Target, str, Detail | None]]]:
    """The outcomes to write down: every id not verified, and the verified ids the ledger
    holds or ``--repair`` resent (found by their keys alone: the records of the others are
    never decoded)."""
    yield from ledger.not_verified()
    if not rows and not repaired:
        return
    for chunk in ledger.verified_keys():
        held = [key for stream, key in chunk
                if (stream, ledger_key(key)) in rows or ledger_key(key) in repaired]
        if held:
            yield ledger.outcomes_of(held)


def ledger_key(target_key: str) -> str:
    """The ledger's key (``pipeline.record_key``: ``collection/id`` or the id) of the target
    keyed ``target_key`` (``record type NUL identity``, the identity ``collection NUL id`` or
    the id): the same for every record verify checks (valid, so its id has no space)."""
    return target_key.split("\x00", 1)[-1].replace("\x00", "/")


def _by_stream(rows: list[LedgerEntry]) -> dict[str, list[int]]:
    """The id hashes (change detection's) of ``rows``' records, by stream."""
    found: dict[str, list[int]] = {}
    for row in rows:
        record = msgspec.json.decode(row.payload or "{}")
        found.setdefault(row.stream, []).append(hash64(identity(record)))
    return found


def _chunk(chunk: list[tuple[str, Target, str, Detail | None]],
           rows: dict[tuple[str, str], LedgerEntry], steps: VerifyLog, now: str,
           max_attempts: int) -> tuple[list[LedgerEntry], dict[str, list[str]]]:
    put: list[LedgerEntry] = []
    drops: dict[str, list[str]] = {}
    for stream, target, status, detail in chunk:
        key = record_key(target.record, None)
        old = rows.get((stream, key))
        if status == "verified":
            if old is not None and leaves_when_verified(old):
                drops.setdefault(stream, []).append(key)
                steps.add(stream, target, "verified", detail="in Ometria: left the ledger",
                          resent_by=old.last_run, resent_at=old.last_seen)
            elif key in steps.repaired:
                steps.add(stream, target, "verified", detail="in Ometria after the repair")
            continue
        if status not in _FOUND:
            continue
        reason = _reason(steps.verify_id, status, detail)
        if key not in steps.repaired:  # else logged when first resent
            steps.add(stream, target, _FOUND[status], detail=reason)
        row = verify_finding(old, stream, target.record, reason, steps.verify_id, now,
                             max_attempts)
        if row is not None:
            put.append(row)
    return put, drops
