"""The deactivation phase after a stream's read (:func:`deactivate`: the full-read phase of
``missing.py``, or the cursor sources' below), and ``on_missing`` for sources read by cursor
(PostgreSQL, MySQL), which never see a deleted row: a ``deleted_query`` says which ids were
deleted since its own checkpoint, a ``keys_query`` lists every current id for a periodic sweep
(``sweep_every``).

* Deleted ids (:class:`DeletedPart`): read by keyset like the stream's query, checkpointed under
  the part key ``deleted``; each id the job delivered (the change index holds an acknowledged
  hash for it) becomes its deactivation (``missing.py``), any other id is passed over: the job
  never touches what it did not deliver. A row passed over hands its position to the
  deactivation before it, so the checkpoint moves past it once that one is acknowledged.
* The sweep (:func:`sweep`): when the last one is ``sweep_every`` old (its time is kept as
  the ``keys_sweep`` checkpoint), every current id is read and marked seen in a new generation,
  then the full-read phase runs: the same guards (an empty result, ``max_missing_fraction``),
  the same deactivations of the delivered ids not seen.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from ometria_sync.pipeline.change_filter import hash64, identity
from ometria_sync.pipeline.missing import MissingPart, MissingPhase, deactivation, presence_key
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.sources import Deletions, Position, SourceConfig, SourceItem, SourcePart
from ometria_sync.state import StateStore

log = structlog.get_logger("ometria_sync.missing")

#: the part key the last sweep's time is kept under
SWEEP_PART = "keys_sweep"

#: runs one part through the stream's pipeline; whether it ended without a failure or a stop
RunPart = Callable[[SourcePart], Awaitable[bool]]


async def _only_part(config: SourceConfig) -> SourcePart:
    parts = await config.open().parts()
    return parts[0]


class DeletedPart:
    """The deactivations of the ids a ``deleted_query`` returns, as one checkpointed part."""

    def __init__(self, phase: MissingPhase, state: StateStore, inner: SourcePart) -> None:
        self._phase = phase
        self._state = state
        self._inner = inner

    @property
    def key(self) -> str:
        return "deleted"

    @property
    def label(self) -> str:
        return f"deleted_query of {self._phase.stream.name}"

    async def fingerprint(self) -> str | None:
        return await self._inner.fingerprint()

    async def size(self) -> int | None:
        return None

    async def read(self, start: Position | None) -> AsyncIterator[list[SourceItem]]:
        phase = self._phase
        async for chunk in self._inner.read(start):
            rows = [(hash64(identity(i.record)), i) for i in chunk
                    if isinstance(i.record, dict) and i.record.get("id") is not None]
            delivered = await self._state.lookup(phase.stream_id, [h for h, _ in rows])
            out: list[SourceItem] = []
            gone: list[tuple[int, str]] = []
            for id_hash, item in rows:
                if id_hash in delivered:
                    key = presence_key(item.record)
                    gone.append((id_hash, key))
                    out.append(SourceItem(deactivation(phase.stream, key), item.position))
                elif out:  # passed over: the deactivation before it carries its position
                    out[-1].position = item.position
            if gone:
                phase.presence.mark_gone(phase.stream_id, gone)
                phase.deleted += len(gone)
                yield out


async def deactivate(state: StateStore, phase: MissingPhase, stats: StreamStats,
                     run: Callable[[SourcePart], Awaitable[None]],
                     stopped: Callable[[], bool]) -> None:
    """After a stream's complete read: send the deactivations of the ids it did not see, or
    (a source read by cursor) of the ids its ``deleted_query`` or ``keys_query`` sweep tells,
    each part through ``run`` (the stream's pipeline). They are counted apart (``missing``,
    ``deactivated``), not as records read from the source."""

    async def run_part(part: SourcePart) -> bool:
        read, valid, unchanged = stats.read, stats.valid, stats.unchanged
        await run(part)
        stats.deactivated += stats.read - read - (stats.unchanged - unchanged)
        stats.read, stats.valid, stats.unchanged = read, valid, unchanged
        return not stopped()

    try:
        deletions = phase.stream.source.deletions()
        if deletions is not None:
            await cursor_deactivations(state, phase, deletions, run_part)
        else:
            part = await phase.plan()
            if part is not None and await run_part(part):
                phase.done(deactivated=True)
    finally:
        census = phase.census
        stats.missing = (census.missing if census is not None else 0) + phase.deleted
        stats.reactivated = phase.reactivated
    await state.flush()


async def cursor_deactivations(state: StateStore, phase: MissingPhase, deletions: Deletions,
                               run_part: RunPart) -> None:
    """After a stream's read: its deleted ids, then the sweep when it is due."""
    if deletions.deleted is not None:
        inner = await _only_part(deletions.deleted)
        await run_part(DeletedPart(phase, state, inner))
    if deletions.keys is not None:
        await sweep(state, phase, deletions, run_part)


async def sweep(state: StateStore, phase: MissingPhase, deletions: Deletions,
                run_part: RunPart) -> None:
    """Read every current id when the last sweep is ``sweep_seconds`` old, then deactivate
    the delivered ids it did not list (MassDeletionRefused past the guards)."""
    assert deletions.keys is not None
    name = phase.stream.name
    last = await state.load(name, SWEEP_PART)
    now = time.time()
    if last is not None and now - float(last.position) < deletions.sweep_seconds:
        return
    phase.from_top()
    listed = 0
    async for chunk in (await _only_part(deletions.keys)).read(None):
        for item in chunk:
            if isinstance(item.record, dict) and item.record.get("id") is not None:
                phase.marks.note(hash64(identity(item.record)), item.record)
                listed += 1
        await phase.marks.flush([])
    log.info("keys_swept", stream=name, ids=listed)
    part: MissingPart | None = await phase.plan()
    if part is not None:
        if not await run_part(part):
            return  # the next run resumes the deactivations (the generation is still open)
        phase.done(deactivated=True)
    if not phase.scratch:
        state.save(name, SWEEP_PART, now, "sweep", 0)
