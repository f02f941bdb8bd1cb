"""Running one stream: producer -> bounded queue -> batcher -> dispatchers, and its checkpoints.

For each part of the stream's source (a file, a query) the runner resumes from the stored
checkpoint when the part's fingerprint still matches, and writes a new checkpoint each time the
contiguous watermark moves, after the dead letter was made durable. Memory is bounded by the
two queues: ``run.queue_chunks`` chunks of source items and one batch per dispatcher.

Stopping (a signal, or a fatal error elsewhere) stops the reading at once, lets the batches
already handed to Ometria settle within the grace period, and keeps the checkpoint at the
watermark: records in flight at a crash are sent again on the next run (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ometria_sync.config import JobSettings, StreamSettings
from ometria_sync.errors import AuthenticationError, OmetriaSyncError, SourceError
from ometria_sync.ometria.push import Pusher
from ometria_sync.pacing.protocol import RatePacer
from ometria_sync.pipeline.batch import Batch, BatchRecord
from ometria_sync.pipeline.batcher import Batcher, Validator
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.dispatch import Delivery, RetryPolicy
from ometria_sync.pipeline.part_scope import PartScope
from ometria_sync.pipeline.shutdown import Shutdown
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.versions import VersionOrder
from ometria_sync.pipeline.watermark import Watermark
from ometria_sync.sources.base import SourceItem, SourcePart
from ometria_sync.state.deadletter import DeadLetterWriter
from ometria_sync.state.store import StateStore

log = structlog.get_logger("ometria_sync.stream")

#: acknowledged records' change hashes written per transaction ...
_HASHES_PER_WRITE = 5000
#: ... or after this many seconds, whichever comes first
_HASHES_MAX_AGE = 2.0


ValidatorFactory = Callable[[StreamSettings], Validator]
PusherFactory = Callable[[StreamSettings], Pusher]
SleepFn = Callable[[float], Awaitable[None]]


@dataclass
class RunContext:
    """What every stream of one job run shares."""

    settings: JobSettings
    pacer: RatePacer
    policy: RetryPolicy
    dead_letter: DeadLetterWriter
    #: the state store (SQLite or PostgreSQL)
    state: StateStore
    validator_for: ValidatorFactory
    pusher_for: PusherFactory
    shutdown: Shutdown
    save_checkpoints: bool = True
    #: False reads every part from the beginning (``validate``, a full refresh)
    resume: bool = True
    #: send unchanged records too (and refresh their hashes)
    full_refresh: bool = False
    #: skip unchanged records (off for ``validate``, which must see every record)
    detect_changes: bool = True
    sleep: SleepFn = asyncio.sleep
    fatal: list[BaseException] = field(default_factory=list)
    #: every stream's live counters, by name (read by the progress display)
    live: dict[str, StreamStats] = field(default_factory=dict)
    #: per record type: which unsettled batch holds each id's latest version
    versions: dict[str, VersionOrder] = field(default_factory=dict)

    def version_order(self, record_type: str) -> VersionOrder:
        """The one order shared by every stream of ``record_type`` in this run."""
        return self.versions.setdefault(record_type, VersionOrder())


async def run_stream(ctx: RunContext, stream: StreamSettings) -> StreamStats:
    """Sync one stream; never raises for the stream's own failures (they are in the stats)."""
    stats = StreamStats(stream=stream.name)
    ctx.live[stream.name] = stats
    started = time.monotonic()
    if ctx.save_checkpoints:
        await ctx.state.start_run(stream.name)
    source = stream.source.open()
    try:
        for part in await source.parts():
            if ctx.shutdown.requested:
                break
            await _run_part(ctx, stream, part, stats)
            if stats.error:
                break
    except SourceError as exc:
        stats.error = str(exc)
    except OmetriaSyncError as exc:
        stats.error = str(exc)
        ctx.fatal.append(exc)
        ctx.shutdown.request("fatal", immediate=isinstance(exc, AuthenticationError))
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()
    stats.duration = time.monotonic() - started
    stats.outcome = _outcome(stats, ctx.shutdown)
    if ctx.save_checkpoints:
        await ctx.state.finish_run(stream.name, stats.outcome, stats.sent)
    return stats


def _outcome(stats: StreamStats, shutdown: Shutdown) -> str:
    if stats.error:
        return "failed"
    if shutdown.requested:
        return "interrupted"
    if stats.dead_lettered or stats.rejected:
        return "partial"
    return "ok"


async def _run_part(
    ctx: RunContext, stream: StreamSettings, part: SourcePart, stats: StreamStats
) -> None:
    fingerprint = await part.fingerprint()
    size = getattr(part, "size", None)
    stats.bytes_total = await size() if size is not None else None
    stats.bytes_read = 0
    if ctx.full_refresh and ctx.save_checkpoints:
        await ctx.state.restart(stream.name, part.key)
    saved = await ctx.state.load(stream.name, part.key) if ctx.resume else None
    start = saved.position if saved and saved.fingerprint == fingerprint else None
    if saved is not None and start is None:
        log.info("source_changed", stream=stream.name, source=part.label,
                 reason="not the source the checkpoint was taken on: reading from the start",
                 checkpoint_fingerprint=saved.fingerprint, fingerprint=fingerprint)
    log.info("stream_start", stream=stream.name, source=part.label, position=start,
             resumed=start is not None)
    changes = None
    if stream.change_detection and ctx.detect_changes:
        stream_id = await ctx.state.stream_id(stream.name)
        changes = ChangeFilter(ctx.state, stream_id, refresh=ctx.full_refresh)
    runner = _PartRunner(ctx, stream, part, stats, fingerprint, changes)
    await runner.run(start)


class _PartRunner:
    """The tasks of one part and how they stop."""

    def __init__(
        self,
        ctx: RunContext,
        stream: StreamSettings,
        part: SourcePart,
        stats: StreamStats,
        fingerprint: str | None,
        changes: ChangeFilter | None,
    ) -> None:
        self.ctx = ctx
        self.stream = stream
        self.part = part
        self.stats = stats
        self.fingerprint = fingerprint
        self.watermark = Watermark()
        self._saved_records = 0
        run = ctx.settings.run
        self.chunks: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue(run.queue_chunks)
        self.workers = ctx.settings.ometria.dispatchers
        self.batches: asyncio.Queue[Batch | None] = asyncio.Queue(self.workers)
        scope = PartScope(stream.name, part.label, stats, ctx.dead_letter)
        self.batcher = Batcher(
            scope,
            record_type=stream.record_type,
            validator=ctx.validator_for(stream),
            batch_size=ctx.settings.ometria.batch_size,
            linger=run.linger,
            changes=changes,
        )
        self.delivery = Delivery(
            scope,
            pusher=ctx.pusher_for(stream),
            pacer=ctx.pacer,
            policy=ctx.policy,
            sleep=ctx.sleep,
            on_acknowledged=self._remember if changes and ctx.save_checkpoints else None,
            on_unconfirmed=self._forget if changes and ctx.save_checkpoints else None,
        )
        self._changes = changes
        self._versions = ctx.version_order(stream.record_type)
        # hashes of acknowledged records, not yet written: one per id, the last acknowledged
        self._acked: dict[int, int] = {}
        self._acked_since = time.monotonic()

    def _remember(self, records: list[BatchRecord]) -> None:
        """Ometria acknowledged these: their hashes become the reference for the next run.

        Written _HASHES_PER_WRITE at a time (or every _HASHES_MAX_AGE seconds), sorted, in one
        transaction: a write per batch was the biggest cost on the event loop at 200 requests/s
        (2.6 times the time per hash). Batches acknowledged out of order are written at once
        (see ``_settle``), so the hashes still waiting always belong to records before the
        checkpoint, which a resume does not re-read; if the process dies, those records only
        count as changed in the next export, never is a change missed."""
        self._acked.update((r.id_hash, r.content_hash) for r in records)  # the last one wins
        now = time.monotonic()
        if len(self._acked) >= _HASHES_PER_WRITE or now - self._acked_since >= _HASHES_MAX_AGE:
            self._write_hashes()

    def _write_hashes(self) -> None:
        self._acked_since = time.monotonic()
        if not self._acked or self._changes is None:
            return
        pairs, self._acked = sorted(self._acked.items()), {}
        written = self.ctx.state.remember(self._changes.stream_id, pairs)
        self._changes.written(written, pairs)

    def _forget(self, records: list[BatchRecord]) -> None:
        """These records' outcome is not a clean acknowledgement: Ometria may hold this version
        or the one before. Their stored hashes are deleted now (before any later write), so
        neither this run nor a later one skips them as unchanged."""
        if self._changes is None or not self.ctx.save_checkpoints:
            return
        ids = [r.id_hash for r in records]
        for id_hash in ids:
            self._acked.pop(id_hash, None)
        self._changes.forget(ids)
        self.ctx.state.forget_ids(self._changes.stream_id, ids)

    async def run(self, start: object) -> None:
        producer = asyncio.create_task(self._produce(self.part.read(start)), name="producer")
        batcher = asyncio.create_task(self.batcher.run(self.chunks, self.batches), name="batcher")
        dispatchers = [
            asyncio.create_task(self._dispatch(), name=f"dispatcher-{i}")
            for i in range(self.workers)
        ]
        stop = asyncio.create_task(self.ctx.shutdown.wait(), name="stop")
        upstream = {producer, batcher}
        try:
            pending: set[asyncio.Task[None]] = set(dispatchers) | upstream
            while not stop.done() and any(not d.done() for d in dispatchers):
                done, pending = await asyncio.wait(
                    pending | {stop}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stop)
                for task in done - {stop}:
                    self._check_task(task)
            await self._stop(upstream, dispatchers)
        finally:
            stop.cancel()
            for task in (*upstream, *dispatchers):
                task.cancel()
            await asyncio.gather(stop, *upstream, *dispatchers, return_exceptions=True)
            try:
                self._write_hashes()
                await self.ctx.state.flush()
            except OmetriaSyncError as exc:
                self._fail(exc)

    def _check_task(self, task: asyncio.Task[None]) -> None:
        """A task ended: fine, a state error (stop the run), or a bug (raise it, loudly)."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        if not isinstance(exc, OmetriaSyncError):
            raise exc
        self._fail(exc)

    def _fail(self, exc: OmetriaSyncError) -> None:
        self.stats.error = str(exc)
        self.ctx.fatal.append(exc)
        log.error("stream_failed", stream=self.stream.name, error=str(exc))
        self.ctx.shutdown.request("fatal", immediate=isinstance(exc, AuthenticationError))

    async def _stop(
        self, upstream: set[asyncio.Task[None]], dispatchers: list[asyncio.Task[None]]
    ) -> None:
        """Stop reading; let in-flight batches settle within the grace period."""
        if all(d.done() for d in dispatchers):
            return
        for task in upstream:
            task.cancel()
        await asyncio.gather(*upstream, return_exceptions=True)
        while not self.batches.empty():  # cut but never sent: re-read on the next run
            self.batches.get_nowait()
        for _ in dispatchers:
            self.batches.put_nowait(None)
        grace = 0.0 if self.ctx.shutdown.immediate else self.ctx.settings.run.grace_period
        cut_short: asyncio.Future[Any] = asyncio.ensure_future(self.ctx.shutdown.wait_immediate())
        settled: asyncio.Future[Any] = asyncio.gather(*dispatchers, return_exceptions=True)
        try:
            await asyncio.wait(
                [settled, cut_short], timeout=grace, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            cut_short.cancel()
        late = [d for d in dispatchers if not d.done()]
        if late:
            log.warning("grace_period_over", stream=self.stream.name, unsettled=len(late))

    async def _produce(self, items: AsyncIterator[list[SourceItem]]) -> None:
        """Feed the queue. A source that breaks mid-way fails the stream, but what it read
        before goes through the pipeline first (end of stream is signalled either way)."""
        try:
            async for chunk in items:
                await self.chunks.put(chunk)
        except SourceError as exc:
            self.stats.error = str(exc)
            log.error("source_failed", stream=self.stream.name, source=self.part.label,
                      error=str(exc))
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        await self.chunks.put(None)

    async def _dispatch(self) -> None:
        while not self._stopping():
            batch = await self.batches.get()
            if batch is None:
                await self.batches.put(None)  # let the other dispatchers see the end too
                return
            claim = self._versions.claim(r.order_key for r in batch.records)
            try:
                await claim.ready()  # an earlier version of one of its ids has settled
                delivered = await self.delivery.deliver(batch)
            except OmetriaSyncError as exc:  # Ometria refused, retries ran out
                self._forget(batch.records)
                self._fail(exc)
                return
            except asyncio.CancelledError:  # cut off at the grace period: outcome unknown
                self._forget(batch.records)
                raise
            finally:
                claim.release()
            try:
                self._settle(batch, delivered)
                await self.ctx.state.keep_up()  # the disk sets the pace when it is the slowest
            except OmetriaSyncError as exc:  # disk full
                self._fail(exc)
                return

    def _stopping(self) -> bool:
        return self.ctx.shutdown.requested

    def _settle(self, batch: Batch, delivered: int) -> None:
        moved = self.watermark.settle(batch.seq, batch.end_position, delivered)
        if self.watermark.pending:
            # acknowledged beyond the checkpoint: a resume re-reads these records, and only
            # their stored hashes keep them from being sent again
            self._write_hashes()
        if not moved:
            return
        self.stats.position = self.watermark.position
        if not self.ctx.save_checkpoints:
            return
        newly = self.watermark.records - self._saved_records
        self.ctx.dead_letter.sync()
        self.ctx.state.save(self.stream.name, self.part.key, self.watermark.position,
                            self.fingerprint, newly)
        self._saved_records = self.watermark.records
        log.debug("checkpoint", stream=self.stream.name, batch=batch.seq,
                  position=self.watermark.position)

