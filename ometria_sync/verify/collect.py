"""Reading the job's sources into the ledger: which streams, in which order, which ids.

Every selected stream is read, and after it every later enabled stream of the same record
type: a later stream's version of an id supersedes the selected one's (the run applies the
streams in job order), so the id is judged against it and only it is ever resent. With
``--last-run`` each stream contributes only what its last sending run covered; with
``--sample N`` each selected stream offers its ids to a reservoir of N.
"""

from __future__ import annotations

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings
from ometria_sync.pipeline.validation import schema_validator
from ometria_sync.verify.ledger import Ledger
from ometria_sync.verify.select import Sampler, Tally, Window, last_run_window, read_targets

log = structlog.get_logger("ometria_sync.verify")

#: ranks of one stream's records start at its index times this (a source holds fewer)
_STREAM_RANKS = 2**40


class Collected(msgspec.Struct):
    """Per stream read: its record type, refused records, and the window it was read in."""

    record_types: dict[str, str]
    invalid: dict[str, int]
    windows: dict[str, Window | None]


def streams_to_read(job: Job, selected: list[StreamSettings]) -> list[StreamSettings]:
    """The selected streams and the later enabled streams of their record types, in job
    order."""
    names = {s.name for s in selected}
    first: dict[str, int] = {}
    for index, stream in enumerate(job.settings.streams):
        if stream.name in names:
            first.setdefault(stream.record_type, index)
    return [s for i, s in enumerate(job.settings.streams)
            if s.name in names or (s.enabled and i > first.get(s.record_type, i))]


async def collect(job: Job, selected: list[StreamSettings], ledger: Ledger, *,
                  sample: int | None, seed: int, last_run: bool) -> Collected:
    names = {s.name for s in selected}
    found = Collected({}, {}, {})
    for stream in streams_to_read(job, selected):
        window = None
        if last_run:
            window = last_run_window(job.settings.report.folder, stream.name)
            if window is None:
                log.warning("no_run_recorded", stream=stream.name,
                            detail="no sending run in the reports: verifying every record")
        tally = Tally()
        sampler = Sampler(sample, seed) if sample is not None and stream.name in names else None
        rank = job.index_of(stream.name) * _STREAM_RANKS
        async for targets in read_targets(stream, schema_validator(stream), tally,
                                          window=window):
            ledger.add(rank, stream.name, targets,
                       selected=stream.name in names and sampler is None)
            rank += len(targets)
            if sampler is not None:
                for target in targets:
                    sampler.offer(target.key)
        if sampler is not None:
            ledger.select(sampler.keys)
        found.record_types[stream.name] = stream.record_type
        found.invalid[stream.name] = tally.invalid
        found.windows[stream.name] = None if tally.whole else window
    return found
