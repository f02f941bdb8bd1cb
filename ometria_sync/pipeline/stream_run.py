"""Running one stream: producer -> bounded queue -> batcher -> dispatchers, and its checkpoints.

What a stream is given comes first (:class:`RunContext`, :class:`SharedRun`). For each part
of the stream's source (a file, a query) the runner resumes from the stored checkpoint when the
part's fingerprint still matches. Each dispatcher takes a batch through four steps: claim (an
earlier version of one of its ids must settle first: ``VersionOrder`` in ``batch.py``), deliver
(``dispatch.py``: the batch's outcome), settle (``settle.py``: the outcome written down, hashes,
dead letter and checkpoint in the one order that module states), release. Memory is bounded by
the two queues: ``run.queue_chunks`` chunks of source items and one batch per dispatcher
(which waits for the state store to keep up: ``batch_queue.py``).

Stopping (a signal, or a fatal error elsewhere) stops the reading at once, lets the batches
already handed to Ometria settle within the grace period, and keeps the checkpoint at the
watermark: records in flight at a crash are sent again on the next run (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from ometria_sync.clock import Sleep
from ometria_sync.config import JobSettings, StreamSettings
from ometria_sync.errors import (
    AuthenticationError,
    MassDeletionRefused,
    OmetriaSyncError,
    SourceError,
    StateError,
)
from ometria_sync.net import Backoff
from ometria_sync.ometria import Pusher
from ometria_sync.pacing import RatePacer
from ometria_sync.pipeline.batch import Batch, PartScope, VersionOrder
from ometria_sync.pipeline.batch_queue import BatchQueue
from ometria_sync.pipeline.batcher import Batcher, Chunk
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.deletions import DeletedPart, deactivate
from ometria_sync.pipeline.dispatch import Delivery, RetryPolicy
from ometria_sync.pipeline.job_io import RunOptions, Shutdown, sending_mode
from ometria_sync.pipeline.ledger import LedgerPart, RecordLedger
from ometria_sync.pipeline.line_groups import GroupedPart, LineGroups, ledger_hashes, shaping
from ometria_sync.pipeline.missing import MissingPart, MissingPhase
from ometria_sync.pipeline.prepare import Validator, schema_validator
from ometria_sync.pipeline.settle import AckedHashes, Settlement
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.transform import Transform
from ometria_sync.sources import Position, SourcePart
from ometria_sync.state import DeadLetterWriter, StateStore, WarningLog

# -------------------------------------------------------------------------------------------------
# What the streams of one job run are given, and what they share and change as they go.
#
# :class:`RunContext` is fixed for the run: the settings, what the run's options mean for every
# stream (checkpoints saved, resumed, change detection) and the services the streams use (the
# pacer, the state store, the dead letter, the stop signal). :class:`SharedRun` is what the
# streams change: the fatal errors, the live counters the progress display reads, and the one
# version order per record type. Streams that run side by side share both.
# -------------------------------------------------------------------------------------------------

ValidatorFactory = Callable[[StreamSettings], Validator]
PusherFactory = Callable[[StreamSettings], Pusher]


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """What every stream of one job run is given; never changes during the run."""

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
    #: ``warnings.jsonl``: the records warnings were given for (None: none written)
    warning_log: WarningLog | None = None
    #: the streams' transforms, by stream name (resolved at start-up)
    transforms: Mapping[str, Transform] = dataclasses.field(default_factory=dict)
    sleep: Sleep = asyncio.sleep
    #: the run's id (the ledger's rows name the runs that refused a record)
    run_id: str = ""
    #: ``--allow-mass-delete``: ``on_missing`` deactivates past its guards, this run
    allow_mass_delete: bool = False

    @classmethod
    def for_options(
        cls,
        options: RunOptions,
        *,
        settings: JobSettings,
        pacer: RatePacer,
        state: StateStore,
        dead_letter: DeadLetterWriter,
        pusher_for: PusherFactory,
        validator_for: ValidatorFactory | None,
        shutdown: Shutdown,
        transforms: Mapping[str, Transform] | None = None,
        warning_log: WarningLog | None = None,
        run_id: str = "",
    ) -> RunContext:
        """What ``options`` (a dry run, ``validate``, ``--full-refresh``, a repair) mean for
        every stream; the schemas validate unless ``validator_for`` says otherwise."""
        ometria = settings.ometria
        return cls(
            settings=settings,
            pacer=pacer,
            policy=RetryPolicy(
                max_retries=ometria.max_retries,
                max_throttle_wait=ometria.max_throttle_wait,
                backoff=Backoff(ometria.backoff_base, ometria.backoff_cap),
            ),
            dead_letter=dead_letter,
            state=state,
            validator_for=validator_for or schema_validator,
            pusher_for=pusher_for,
            shutdown=shutdown,
            save_checkpoints=sending_mode(options) and not options.repair,
            resume=not (options.validate_only or options.full_refresh or options.repair),
            full_refresh=options.full_refresh,
            detect_changes=not (options.validate_only or options.repair),
            transforms=transforms or {},
            warning_log=warning_log,
            run_id=run_id,
            allow_mass_delete=options.allow_mass_delete,
        )


class SharedRun:
    """What the streams of one run change and the run reads: fatal errors (the first one is
    the run's error), every stream's live counters, the version order per record type."""

    def __init__(self) -> None:
        self._errors: list[BaseException] = []
        #: every stream's live counters, by name (read by the progress display while it runs)
        self.live: dict[str, StreamStats] = {}
        #: per record type: which unsettled batch holds each id's latest version
        self._versions: dict[str, VersionOrder] = {}

    def fail(self, exc: BaseException) -> None:
        """Record a failure that makes the run fatal (exit 1); the first one is reported."""
        self._errors.append(exc)

    @property
    def failed(self) -> bool:
        return bool(self._errors)

    @property
    def error(self) -> str | None:
        """The first fatal failure, as the run's result reports it (None: none)."""
        return str(self._errors[0]) if self._errors else None

    def track(self, stats: StreamStats) -> None:
        """Show ``stats`` (updated in place) as its stream's live counters."""
        self.live[stats.stream] = stats

    def version_order(self, record_type: str) -> VersionOrder:
        """The one order shared by every stream of ``record_type`` in this run."""
        return self._versions.setdefault(record_type, VersionOrder())


log = structlog.get_logger("ometria_sync.stream")


async def run_stream(ctx: RunContext, shared: SharedRun, stream: StreamSettings) -> StreamStats:
    """Sync one stream; never raises for the stream's own failures (they are in the stats)."""
    stats = StreamStats(stream=stream.name)
    shared.track(stats)
    started = time.monotonic()
    if ctx.save_checkpoints:
        await ctx.state.start_run(stream.name)
    source = stream.source.open()
    try:
        await _read_parts(ctx, shared, stream, stats, await source.parts())
    except MassDeletionRefused as exc:
        stats.error = str(exc)
        log.error("mass_deletion_refused", stream=stream.name, error=str(exc))
    except SourceError as exc:
        stats.error = str(exc)
    except OmetriaSyncError as exc:
        stats.error = str(exc)
        _stop_run(ctx, shared, exc)
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()
    stats.duration = time.monotonic() - started
    stats.outcome = _outcome(stats, ctx.shutdown)
    if ctx.save_checkpoints:
        try:
            await ctx.state.finish_run(stream.name, stats.outcome, stats.sent)
        except StateError as exc:  # a state write failed: nothing more is written this run
            stats.error = stats.error or str(exc)
            stats.outcome = "failed"
            _stop_run(ctx, shared, exc)
    return stats


async def _read_parts(ctx: RunContext, shared: SharedRun, stream: StreamSettings,
                      stats: StreamStats, source_parts: list[SourcePart]) -> None:
    """The ledger's resends, the source's parts, then (after a complete read) the
    deactivations of ``on_missing``."""
    ledger = None
    parts: list[SourcePart | LedgerPart] = list(source_parts)
    if ctx.save_checkpoints:  # a run that writes state keeps the ledger
        ledger = await RecordLedger.open(ctx.state, stream.name, ctx.run_id, stats,
                                         max_attempts=ctx.settings.run.max_attempts)
        # undelivered by earlier runs: first
        resend = ledger.resend_part(source_parts, ctx.transforms.get(stream.name))
        parts[:0] = [resend] if resend is not None else []
    missing = None
    if stream.on_missing == "deactivate" and ctx.detect_changes:  # not validate, repair
        missing = await MissingPhase.open(ctx.state, stream,
                                          allow_mass_delete=ctx.allow_mass_delete,
                                          scratch=not ctx.save_checkpoints)
    again = (missing is not None and stream.source.parts_read_together()
             and missing.one_pass())  # a glob read whole: every file from its top
    for part in parts:
        if ctx.shutdown.requested:
            break
        await _run_part(ctx, shared, stream, part, stats, ledger,
                        None if isinstance(part, LedgerPart) else missing,
                        whole=len(source_parts) == 1, again=again)
        if stats.error:
            break
    if missing is not None and not stats.error and not ctx.shutdown.requested:
        async def run_part(part: SourcePart) -> None:
            await _run_part(ctx, shared, stream, part, stats, ledger)

        await deactivate(ctx.state, missing, stats, run_part,
                         stopped=lambda: bool(stats.error) or ctx.shutdown.requested)


def _stop_run(ctx: RunContext, shared: SharedRun, exc: OmetriaSyncError) -> None:
    """A failure the run cannot go on after: every stream stops (at once for a refused key)."""
    shared.fail(exc)
    ctx.shutdown.request("fatal", immediate=isinstance(exc, AuthenticationError))


def _outcome(stats: StreamStats, shutdown: Shutdown) -> str:
    if stats.error:
        return "failed"
    if shutdown.requested:
        return "interrupted"
    if stats.dead_lettered or stats.rejected or stats.unconfirmed:
        return "partial"
    return "ok"


async def _run_part(
    ctx: RunContext, shared: SharedRun, stream: StreamSettings,
    part: SourcePart | LedgerPart | MissingPart | DeletedPart, stats: StreamStats,
    ledger: RecordLedger | None = None, missing: MissingPhase | None = None, *,
    whole: bool = False, again: bool = False,
) -> None:
    """Read one part; ``whole``: it is the stream's only part (so its lines groups not seen
    by a run that read it all are pruned); ``again``: from its top, whatever its checkpoint."""
    fingerprint = await part.fingerprint()
    stats.bytes_total = await part.size()
    stats.bytes_read = 0
    checkpointed = not isinstance(part, LedgerPart)  # the ledger's resends: never
    if ctx.full_refresh and ctx.save_checkpoints and checkpointed:
        await ctx.state.restart(stream.name, part.key)
    saved = await ctx.state.load(stream.name, part.key) if ctx.resume and checkpointed else None
    start = saved.position if saved and saved.fingerprint == fingerprint and not again else None
    if saved is not None and start is None and not again:
        log.info("source_changed", stream=stream.name, source=part.label,
                 reason="not the source the checkpoint was taken on: reading from the start",
                 checkpoint_fingerprint=saved.fingerprint, fingerprint=fingerprint)
    log.info("stream_start", stream=stream.name, source=part.label, position=start,
             resumed=start is not None)
    if missing is not None and start is None:
        missing.from_top()
    if checkpointed and not isinstance(part, MissingPart | DeletedPart):  # the source's own
        stats.start_position, stats.started_from_top = start, start is None
    changes = None
    if stream.change_detection and ctx.detect_changes:
        stream_id = await ctx.state.stream_id(stream.name)
        changes = ChangeFilter(ctx.state, stream_id, refresh=ctx.full_refresh)
    scope = PartScope(stream.name, part.label, stats, ctx.dead_letter, ledger, ctx.warning_log)
    lines = None
    if (changes is not None and ctx.save_checkpoints and not ctx.full_refresh
            and stream.on_missing != "deactivate"  # on_missing must see every id it reads
            and isinstance(part, GroupedPart)  # change detection's fast path, once Ometria
            and await ctx.state.tracked_ids(stream.name)):  # holds some (not on a first run)
        transform = ctx.transforms.get(stream.name)
        lines = LineGroups(ctx.state, changes, part, shaping(stream, transform),
                           watched=ledger_hashes(await ledger.keys()) if ledger else None,
                           ids_as_read=transform is None)
    runner = _PartRunner(ctx, shared, stream, part, scope, fingerprint, changes, lines,
                         save=ctx.save_checkpoints and checkpointed,
                         missing=missing)
    await runner.run(start)
    if (lines is not None and whole and start is None and not stats.error
            and not ctx.shutdown.requested):
        lines.prune()


class _PartRunner:
    """The tasks of one part and how they stop."""

    def __init__(
        self,
        ctx: RunContext,
        shared: SharedRun,
        stream: StreamSettings,
        part: SourcePart,
        scope: PartScope,
        fingerprint: str | None,
        changes: ChangeFilter | None,
        lines: LineGroups | None,
        *,
        save: bool,
        missing: MissingPhase | None = None,
    ) -> None:
        self.ctx = ctx
        self.lines = lines
        self.shared = shared
        self.part = part
        self.scope = scope
        run = ctx.settings.run
        self.chunks: asyncio.Queue[Chunk | None] = asyncio.Queue(run.queue_chunks)
        self.workers = ctx.settings.ometria.dispatchers
        self.batches: asyncio.Queue[Batch | None] = BatchQueue(self.workers, ctx.state)
        #: acknowledged hashes to store: with change detection, when checkpoints are saved
        hashes = (AckedHashes(ctx.state, changes, groups=lines)
                  if changes is not None and ctx.save_checkpoints else None)
        self.settlement = Settlement(scope, ctx.state, part_key=part.key,
                                     fingerprint=fingerprint, save=save, hashes=hashes,
                                     positions=not isinstance(part, LedgerPart))
        # records read from the source (not resends, not deactivations)
        own = not isinstance(part, LedgerPart | MissingPart | DeletedPart)
        self.batcher = Batcher(
            scope,
            record_type=stream.record_type,
            # deactivations are partial records: judged as updates, never transformed
            validator=ctx.validator_for(stream if own or isinstance(part, LedgerPart)
                                        else msgspec.structs.replace(stream, mode="update")),
            batch_size=ctx.settings.ometria.batch_size,
            linger=run.linger,
            changes=changes,
            # the ledger's kept payloads went through the transform when first sent (its
            # re-read rows are transformed by the part itself)
            transform=ctx.transforms.get(stream.name) if own else None,
            seen=missing.marks if missing is not None and own else None,
            lines=lines,
        )
        self.delivery = Delivery(
            scope,
            pusher=ctx.pusher_for(stream),
            pacer=ctx.pacer,
            policy=ctx.policy,
            sleep=ctx.sleep,
        )
        self._versions = shared.version_order(stream.record_type)

    async def run(self, start: Position | None) -> None:
        groups = self.lines.read_groups(start) if self.lines is not None else None
        if groups is None and self.batcher.lane is not None:  # the typed lane can take
            read_raw = getattr(self.part, "read_raw", None)  # whole lines (a first run)
            groups = read_raw(start) if read_raw is not None else None
        producer = asyncio.create_task(
            self._produce(groups if groups is not None else self.part.read(start)),
            name="producer")
        batcher = asyncio.create_task(self.batcher.run(self.chunks, self.batches), name="batcher")
        dispatchers = [asyncio.create_task(self._dispatch(), name=f"dispatcher-{i}")
                       for i in range(self.workers)]
        stop = asyncio.create_task(self.ctx.shutdown.wait(), name="stop")
        upstream = {producer, batcher}
        # each task says when it ends (an ``asyncio.wait`` on all per task ended was quadratic)
        ended: asyncio.Queue[asyncio.Task[Any]] = asyncio.Queue()
        for task in (*dispatchers, *upstream, stop):
            task.add_done_callback(ended.put_nowait)
        try:
            working = len(dispatchers)
            while working:
                task = await ended.get()
                if task is stop:
                    break
                self._check_task(task)
                if task not in upstream:
                    working -= 1
            while not ended.empty():  # ended with the stop: checked too
                if (task := ended.get_nowait()) is not stop:
                    self._check_task(task)
            await self._stop(upstream, dispatchers)
        finally:
            stop.cancel()
            for task in (*upstream, *dispatchers):
                task.cancel()
            await asyncio.gather(stop, *upstream, *dispatchers, return_exceptions=True)
            try:
                self.settlement.finish()
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
        self.scope.stats.error = str(exc)
        log.error("stream_failed", stream=self.scope.stream, error=str(exc))
        _stop_run(self.ctx, self.shared, exc)

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
            log.warning("grace_period_over", stream=self.scope.stream, unsettled=len(late))

    async def _produce(self, items: AsyncIterator[Chunk]) -> None:
        """Feed the queue. A source that breaks mid-way fails the stream, but what it read
        before goes through the pipeline first (end of stream is signalled either way)."""
        try:
            async for chunk in items:
                await self.chunks.put(chunk)
        except SourceError as exc:
            self.scope.stats.error = str(exc)
            log.error("source_failed", stream=self.scope.stream, source=self.scope.source,
                      error=str(exc))
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        await self.chunks.put(None)

    async def _dispatch(self) -> None:
        """Claim, deliver, settle, release: one batch at a time, until the end or a stop."""
        while not self.ctx.shutdown.requested:
            batch = await self.batches.get()
            if batch is None:
                await self.batches.put(None)  # let the other dispatchers see the end too
                return
            claim = self._versions.claim([r.order_key for r in batch.records])
            try:
                await claim.ready()  # an earlier version of one of its ids has settled
                outcome = await self.delivery.deliver(batch)
                self.settlement.settle(batch, outcome)
            except asyncio.CancelledError:  # cut off at the grace period: outcome unknown
                self.settlement.abandon(batch.records, "cut off at the grace period")
                raise
            except OmetriaSyncError as exc:  # a state write failed (disk full)
                self._fail(exc)
                return
            finally:
                claim.release()
            if outcome.failure is not None:  # Ometria refused, retries ran out
                self._fail(outcome.failure)
                return
            del batch, outcome  # not held while the state catches up
            try:
                await self.ctx.state.keep_up()  # the disk sets the pace when it is the slowest
            except OmetriaSyncError as exc:  # disk full
                self._fail(exc)
                return
