"""Which records to verify: read again from the stream's source, checked and encoded exactly as
the batcher does before it sends (so the comparison is with what was sent), the latest version
of each id.

``--all`` takes every valid record; ``--sample N`` a uniform sample of N distinct ids
(reservoir sampling over the source, repeatable with its seed); ``--last-run`` the records
between the checkpoint before the last sending run and the checkpoint after it, as the run
reports in ``report.folder`` recorded them (single-part sources: a file, a query; a glob keeps
a checkpoint per file, and is then read whole).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
import structlog

from ometria_sync.config import StreamSettings
from ometria_sync.pipeline.batcher import Validator
from ometria_sync.schemas import record_size_problem
from ometria_sync.schemas.envelope import envelope_problems
from ometria_sync.sources.base import Position, SourceItem
from ometria_sync.state.change_index import identity

log = structlog.get_logger("ometria_sync.verify")

_encode = msgspec.json.Encoder(order="sorted").encode


class Target(msgspec.Struct):
    """One record to look up: its identity, the record as it would be sent, and where it is."""

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


class Selection(msgspec.Struct):
    """What a stream gave: the targets, how many valid distinct ids it holds, how many records
    it has that the batcher would refuse (never sent, so never verified)."""

    targets: list[Target]
    distinct: int = 0
    invalid: int = 0
    window: Window | None = None


def prepare(record_type: str, record: Any, validate: Validator) -> dict[str, Any] | None:
    """The record as the batcher would send it (``@type`` added), or None when it would refuse
    it (the same envelope, schema and size checks)."""
    if envelope_problems(record):
        return None
    declared = record.get("@type")
    if declared is None:
        record["@type"] = record_type
    elif declared != record_type:
        return None
    if validate(record_type, record).errors:
        return None
    try:
        encoded = _encode(record)
    except (TypeError, ValueError, OverflowError):
        return None
    if record_size_problem(len(encoded)) is not None:
        return None
    decoded: dict[str, Any] = msgspec.json.decode(encoded)
    return decoded


def _comparable(position: Any) -> Any:
    return tuple(_comparable(p) for p in position) if isinstance(position, list) else position


def _inside(position: Any, window: Window) -> bool:
    here = _comparable(position)
    try:
        if window.start is not None and not here > _comparable(window.start):
            return False
        return bool(here <= _comparable(window.end))
    except TypeError:
        return True  # positions of another shape: better checked than skipped


def last_run_window(report_folder: str, stream: str) -> Window | None:
    """From the run reports: the checkpoint before and after the last sending run of
    ``stream`` (None when no sending run recorded one)."""
    folder = Path(report_folder)
    runs: list[tuple[str, Any]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            report = msgspec.json.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError):
            continue
        if not isinstance(report, dict) or report.get("dry_run"):
            continue
        for entry in report.get("streams") or []:
            if (isinstance(entry, dict) and entry.get("stream") == stream
                    and entry.get("checkpoint_position") is not None):
                runs.append((str(report.get("started_at")), entry["checkpoint_position"]))
    if not runs:
        return None
    start = runs[-2][1] if len(runs) > 1 else None
    return Window(start=start, end=runs[-1][1], started_at=runs[-1][0])


async def select(
    stream: StreamSettings,
    validate: Validator,
    *,
    sample: int | None = None,
    seed: int = 0,
    window: Window | None = None,
) -> Selection:
    """Read the stream's source from the top and pick the records to verify."""
    latest: dict[str, Target] = {}
    reservoir: list[Target] = []
    slots: dict[str, int] = {}
    rng = random.Random(seed)
    seen = invalid = 0
    source = stream.source.open()
    try:
        parts = await source.parts()
        if window is not None and len(parts) != 1:
            log.warning("last_run_needs_one_part", stream=stream.name, parts=len(parts))
            window = None
        for part in parts:
            async for chunk in part.read(None):
                for item in chunk:
                    if window is not None and not _inside(item.position, window):
                        continue
                    target = _target(stream, item, part.label, validate)
                    if target is None:
                        invalid += 1
                        continue
                    if sample is None:
                        latest.pop(target.key, None)  # the latest version, at its position
                        latest[target.key] = target
                        continue
                    if target.key in slots:  # a later version of a sampled id replaces it
                        reservoir[slots[target.key]] = target
                        continue
                    seen += 1
                    if len(reservoir) < sample:
                        slots[target.key] = len(reservoir)
                        reservoir.append(target)
                    else:
                        pick = rng.randrange(seen)
                        if pick < sample:
                            del slots[reservoir[pick].key]
                            slots[target.key] = pick
                            reservoir[pick] = target
    finally:
        await source.aclose()
    if sample is None:
        return Selection(list(latest.values()), len(latest), invalid, window)
    return Selection(reservoir, seen, invalid, window)


def _target(stream: StreamSettings, item: SourceItem, label: str,
            validate: Validator) -> Target | None:
    if item.error is not None or not isinstance(item.record, dict):
        return None
    record = prepare(stream.record_type, item.record, validate)
    if record is None:
        return None
    if item.line is not None:
        where = f"{label}:{item.line}"
    else:  # a cursor (a query, an API): the position after the record
        where = f"{label} @ {msgspec.json.encode(item.position).decode()}"
    return Target(key=identity(record).decode(errors="replace"), id=str(record["id"]),
                  record=record, source=where, position=item.position)
