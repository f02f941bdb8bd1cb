"""Which records to verify: read again from the stream's source, checked and encoded exactly as
the batcher does before it sends (so the comparison is with what was sent), a chunk at a time
(``ledger.py`` keeps the latest version of each id on disk, not in memory).

``--all`` takes every valid record; ``--sample N`` a uniform sample of N distinct ids
(reservoir sampling over the source, repeatable with its seed); ``--last-run`` the records
the last sending run covered, from where it started to its checkpoint, as the run reports in
``report.folder`` recorded them (single-part sources: a file, a query; a glob keeps a
checkpoint per file, and is then read whole).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings
from ometria_sync.pipeline import (
    Transform,
    Validator,
    deactivated,
    identity,
    prepare_record,
    record_key,
)
from ometria_sync.sources import Position, SourceItem, SourcePart
from ometria_sync.state import comparable, open_state

log = structlog.get_logger("ometria_sync.verify")


class Target(msgspec.Struct):
    """One record to look up: its identity (``key``: record type and identity, the same for
    every stream of that type), the record as it would be sent, and where it is."""

    key: str
    id: str
    record: dict[str, Any]
    source: str
    position: Position = None


class Window(msgspec.Struct, frozen=True):
    """The positions the last sending run covered: after ``start`` (None: the top) up to and
    including ``end``; ``started_at`` is when that run began."""


    start: Position
    end: Position
    started_at: str


def prepare(record_type: str, record: Any, validate: Validator,
            transform: Transform | None = None, tally: Tally | None = None
            ) -> dict[str, Any] | None:
    """The record as the batcher would send it (transformed, ``@type`` added), or None when it
    would refuse it (counted in ``tally.invalid``) or its transform skip it: the batcher's own
    :func:`~ometria_sync.pipeline.batcher.prepare_record`."""
    encoded, problems, _ = prepare_record(record_type, record, validate, transform)
    if encoded is None:
        if problems and tally is not None:
            tally.invalid += 1
        return None
    decoded: dict[str, Any] = msgspec.json.decode(encoded)
    return decoded


def _inside(position: Any, window: Window) -> bool:
    here = comparable(position)
    try:
        if window.start is not None and not here > comparable(window.start):
            return False
        return bool(here <= comparable(window.end))
    except TypeError:
        return True  # positions of another shape: better checked than skipped



def sending_run_reports(report_folder: str) -> Iterator[dict[str, Any]]:
    """The run reports in ``report_folder`` in start order (run ids, their file names, sort
    that way), dry runs and files that are not a report's JSON object left out."""
    folder = Path(report_folder)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            report = msgspec.json.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            continue
        if isinstance(report, dict) and not report.get("dry_run"):
            yield report


def last_run_window(report_folder: str, stream: str) -> Window | None:
    """From the run reports: the positions the last sending run of ``stream`` covered (None
    when no sending run recorded a checkpoint). It starts where that run really started (its
    report's ``start_position``; the top when it read from the top: a new file, a changed
    query, ``--full-refresh``). A report that does not say where its run started (written by
    an older version) gives a window from the top: more is checked, nothing is left out."""
    runs: list[tuple[str, dict[str, Any]]] = []
    for report in sending_run_reports(report_folder):
        for entry in report.get("streams") or []:
            if (isinstance(entry, dict) and entry.get("stream") == stream
                    and entry.get("checkpoint_position") is not None):
                runs.append((str(report.get("started_at")), entry))
    if not runs:
        return None
    started_at, last = runs[-1]  # run ids (file names) sort in start order
    if "started_from_top" not in last:
        log.warning("last_run_start_unknown", stream=stream,
                    detail="the last run's report does not say where it started: "
                           "checking every record up to where it ended")
        start = None
    else:
        start = None if last["started_from_top"] else last.get("start_position")
    return Window(start=start, end=last["checkpoint_position"], started_at=started_at)


class Tally(msgspec.Struct):
    """What reading a stream gave besides its targets."""

    #: records the batcher would refuse (never sent, so never verified)
    invalid: int = 0
    #: the window was dropped (a source of several parts is read whole)
    whole: bool = False
    #: ledger keys to look out for (the stream's refused rows), and those the read met
    watch: frozenset[str] = frozenset()
    seen: set[str] = msgspec.field(default_factory=set)

    def meet(self, item: SourceItem) -> None:
        """Note the item's ledger key (as the run keys a refusal) when it is watched."""
        record = item.record if isinstance(item.record, dict) else None
        key = record_key(record, item.position, item.id)
        if key in self.watch:
            self.seen.add(key)


async def read_targets(stream: StreamSettings, validate: Validator, tally: Tally, *,
                       window: Window | None = None, transform: Transform | None = None
                       ) -> AsyncIterator[list[Target]]:
    """The stream's valid records (within ``window``, through the stream's ``transform``) as
    targets, one source chunk at a time in source order; nothing is kept between chunks."""
    source = stream.source.open()
    try:
        parts = await source.parts()
        if window is not None and len(parts) != 1:
            log.warning("last_run_needs_one_part", stream=stream.name, parts=len(parts))
            window = None
            tally.whole = True
        for part in parts:
            cursor = _CursorWindow(window) if window is not None and _by_cursor(window) else None
            async with contextlib.aclosing(_chunks(part, cursor)) as chunks:
                async for chunk in chunks:
                    targets = []
                    for item in chunk:
                        if tally.watch:
                            tally.meet(item)
                        if cursor is not None:
                            if cursor.passed(item.position):
                                break
                        elif window is not None and not _inside(item.position, window):
                            continue
                        target = _target(stream, item, part.label, validate, tally, transform)
                        if target is not None:
                            targets.append(target)
                    if targets:
                        yield targets
                    if cursor is not None and cursor.ended:
                        break
    finally:
        await source.aclose()


def _by_cursor(window: Window) -> bool:
    """The window's positions are a query's keyset cursor (``{"after": [...]}``): they do not
    compare in Python (cursor values are text in the database's order), so the window is read
    as the run read it (:class:`_CursorWindow`), not filtered by comparison."""
    return isinstance(window.end, Mapping) and (window.start is None
                                                or isinstance(window.start, Mapping))


class _CursorWindow:
    """A window over a cursor source, read from its start as the run resumed (the source's
    own ``WHERE (cursor) > (start)``, its lookback included: rows the run read again) up to
    the rows at the run's checkpoint. The rows after them were not covered: reading stops at
    the first row past the checkpoint's (rows of one tie group share the position before the
    group, so every row at the checkpoint's position is inside). A checkpoint row that moved
    since (updated after the run) is never met: the read goes on to the end, checking more,
    never less."""

    def __init__(self, window: Window) -> None:
        self.start = window.start
        self._end = msgspec.json.encode(window.end)
        self._at_end = False
        self.ended = False

    def passed(self, position: Position) -> bool:
        """True at the first row after the checkpoint's (then :attr:`ended`)."""
        at_end = msgspec.json.encode(position) == self._end
        if self._at_end and not at_end:
            self.ended = True
        self._at_end = self._at_end or at_end
        return self.ended


async def _chunks(part: SourcePart, cursor: _CursorWindow | None
                  ) -> AsyncGenerator[list[SourceItem], None]:
    """The part's chunks, from the cursor window's start (else from the top); closed, the
    part's read is closed too (a query's cursor is not left open when the window ends)."""
    read = part.read(cursor.start if cursor is not None else None)
    try:
        async for chunk in read:
            yield chunk
    finally:
        close = getattr(read, "aclose", None)
        if close is not None:
            await close()


class Sampler:
    """A uniform sample of ``size`` distinct keys (reservoir sampling, repeatable with its
    seed); it holds only the sampled keys."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.keys: list[str] = []
        self._slots: dict[str, int] = {}
        self._rng = random.Random(seed)
        self.seen = 0

    def offer(self, key: str) -> None:
        if key in self._slots:  # a later version of a sampled id: still sampled
            return
        self.seen += 1
        if len(self.keys) < self.size:
            self._slots[key] = len(self.keys)
            self.keys.append(key)
            return
        pick = self._rng.randrange(self.seen)
        if pick < self.size:
            del self._slots[self.keys[pick]]
            self._slots[key] = pick
            self.keys[pick] = key


def _target(stream: StreamSettings, item: SourceItem, label: str, validate: Validator,
            tally: Tally, transform: Transform | None = None) -> Target | None:
    """The item as a target, or None when the batcher would refuse it (counted) or the
    stream's transform skip it (never sent, so neither verified nor invalid)."""
    if item.error is not None or not isinstance(item.record, dict):
        tally.invalid += 1
        return None
    record = prepare(stream.record_type, item.record, validate, transform, tally)
    if record is None:
        return None
    if item.line is not None:
        where = f"{label}:{item.line}"
    else:  # a cursor (a query, an API): the position after the record
        where = f"{label} @ {msgspec.json.encode(item.position).decode()}"
    key = f"{stream.record_type}\x00{identity(record).decode(errors='replace')}"
    return Target(key=key, id=str(record["id"]), record=record, source=where,
                  position=item.position)


async def deactivated_targets(job: Job, stream: StreamSettings) -> AsyncIterator[list[Target]]:
    """The ids ``stream`` deactivated (``on_missing``) as targets holding their deactivation:
    ``is_active: false``, ``is_valid: false`` and the status, the opt-out. Read from the
    job's state (never written)."""
    settings = job.settings
    state = await open_state(settings.state.checkpoint_url, settings.state.schema,
                             job=job.name, streams=job.stream_names)
    try:
        async for records in deactivated(state, stream):
            yield [Target(key=f"{stream.record_type}\x00{identity(r).decode(errors='replace')}",
                          id=str(r["id"]), record=r, source="deactivated (on_missing)")
                   for r in records]
    finally:
        await state.aclose()
