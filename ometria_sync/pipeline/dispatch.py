"""Delivering one batch: pace, push, and react to each answer (docs/architecture.md, failure table).

=================  ==========================================================================
answer             action
=================  ==========================================================================
2xx                acknowledged; ``accepted``/``rejected``/``skipped`` counted; queue headers
                   fed to pacer
429                every dispatcher paused (Retry-After as a floor, else backoff), AIMD, retry
408/5xx/network    retry with exponential backoff and jitter, up to ``max_retries``; a
                   Retry-After also pauses every dispatcher for that long
400/413/422        split in halves until the bad records are isolated; those are dead-lettered
401/403, other     raised: the run stops
=================  ==========================================================================

A batch is *settled* when :meth:`Delivery.deliver` returns: every record in it was either
acknowledged by Ometria or written to the dead letter. Anything else raises, and the batch is
not settled, so the checkpoint never passes it. Only a clean acknowledgement (``rejected: 0``,
``skipped: 0``) reaches ``on_acknowledged``; records Ometria refused or may have refused go to
``on_unconfirmed``, so that their stored change hashes are forgotten. ``skipped`` is
documented nowhere (seen in one third-party client): skipped records are counted as
``unconfirmed``, never as delivered, until its meaning is confirmed; Ometria does not say which
records of the batch it skipped, so the whole batch goes to ``on_unconfirmed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import structlog

from ometria_sync.clock import Sleep
from ometria_sync.errors import (
    BatchRejectedError,
    RetriesExhaustedError,
    ThrottledError,
    TransientError,
)
from ometria_sync.net.backoff import Backoff
from ometria_sync.ometria.push import Pusher, PushResult
from ometria_sync.pacing.protocol import RatePacer
from ometria_sync.pipeline.batch import Batch, BatchRecord, PartScope, encode_body
from ometria_sync.schemas.problems import Problem

log = structlog.get_logger("ometria_sync.dispatch")


class RetryPolicy:
    """How long one batch may keep trying."""

    def __init__(
        self, *, max_retries: int = 8, max_throttle_wait: float = 900.0, backoff: Backoff
    ) -> None:
        self.max_retries = max_retries
        self.max_throttle_wait = max_throttle_wait
        self.backoff = backoff


class Delivery:
    """Delivers batches of one stream through the shared pacer. Safe to use from many tasks."""

    def __init__(
        self,
        scope: PartScope,
        *,
        pusher: Pusher,
        pacer: RatePacer,
        policy: RetryPolicy,
        sleep: Sleep,
        on_acknowledged: Callable[[list[BatchRecord]], None] | None = None,
        on_unconfirmed: Callable[[list[BatchRecord]], None] | None = None,
    ) -> None:
        self._scope = scope
        self._stream = scope.stream
        self._stats = scope.stats
        self._pusher = pusher
        self._pacer = pacer
        self._policy = policy
        self._sleep = sleep
        self._on_ack = on_acknowledged
        self._on_unconfirmed = on_unconfirmed

    async def deliver(self, batch: Batch) -> int:
        """Settle ``batch``; returns how many of its records Ometria acknowledged."""
        if not batch.records:
            return 0
        return await self._send(batch, batch.records)

    async def _send(self, batch: Batch, records: list[BatchRecord]) -> int:
        try:
            result = await self._push_with_retries(batch, records)
        except BatchRejectedError as exc:
            if len(records) == 1:
                self._refuse(records[0], exc)
                return 0
            log.info("batch_split", stream=self._stream, batch=batch.seq,
                     status=exc.status, records=len(records))
            middle = len(records) // 2
            left = await self._send(batch, records[:middle])
            return left + await self._send(batch, records[middle:])
        self._stats.sent += len(records)
        self._stats.accepted += result.accepted
        self._stats.rejected += result.rejected
        self._stats.unconfirmed += result.skipped
        if result.rejected or result.skipped:
            log.warning("records_rejected" if result.rejected else "records_skipped",
                        stream=self._stream, batch=batch.seq, rejected=result.rejected,
                        skipped=result.skipped, request_id=result.request_id)
            if self._on_unconfirmed is not None:  # which ones, Ometria does not say
                self._on_unconfirmed(records)
        elif self._on_ack is not None:
            self._on_ack(records)
        return len(records) - result.skipped

    async def _push_with_retries(self, batch: Batch, records: list[BatchRecord]) -> PushResult:
        body = encode_body(records)
        failures = 0
        throttle_wait = 0.0
        while True:
            try:
                result = await self._push_once(body, len(records))
            except ThrottledError as exc:
                self._stats.count_status(429)
                self._stats.throttled += 1
                self._pacer.observe_queue(exc.queue_remaining, None)
                delay = self._pacer.throttled(
                    self._policy.backoff, exc.retry_after, exc.queue_remaining
                )
                throttle_wait += delay
                if throttle_wait > self._policy.max_throttle_wait:
                    raise RetriesExhaustedError(
                        f"stream {self._stream}: batch {batch.seq} still throttled (429) after "
                        f"{throttle_wait:.0f} s; Ometria's import queue may be full"
                    ) from exc
                log.info("throttled", stream=self._stream, batch=batch.seq, status=429,
                         retry_after=exc.retry_after, pause=round(delay, 3),
                         rate=round(self._pacer.rate, 3))
                self._stats.retries += 1
                continue
            except TransientError as exc:
                self._stats.count_status(exc.status or "network")
                if failures >= self._policy.max_retries:
                    raise RetriesExhaustedError(
                        f"stream {self._stream}: batch {batch.seq} failed "
                        f"{failures + 1} times, last: {exc}"
                    ) from exc
                delay = self._policy.backoff.delay(failures, exc.retry_after)
                if exc.retry_after is not None:  # the server asked everybody to wait
                    self._pacer.pause(exc.retry_after)
                failures += 1
                self._stats.retries += 1
                log.info("retrying", stream=self._stream, batch=batch.seq, status=exc.status,
                         error=str(exc), attempt=failures, delay=round(delay, 3))
                await self._sleep(delay)
                continue
            except BatchRejectedError as exc:
                self._stats.count_status(exc.status)
                raise
            self._stats.count_status(result.status)
            self._pacer.on_success()
            self._pacer.observe_queue(result.queue_remaining, result.queue_limit)
            return result

    async def _push_once(self, body: bytes, count: int) -> PushResult:
        """One paced request. Its slot counts as leaving now until the client reports it
        written (a request stuck in connect holds the window); the network's variation of
        delay reported with a 2xx feeds the pacer's measured slack."""
        slot = await self._pacer.acquire(until_sent=True)
        self._stats.request_sent(time.monotonic())
        try:
            result = await self._pusher.push(body, count, slot.sent)
        except BaseException:
            slot.done()
            raise
        slot.done(jitter=result.network_jitter)
        self._stats.note_slack(self._pacer.slack, self._pacer.largest_slack)
        return result

    def _refuse(self, record: BatchRecord, exc: BatchRejectedError) -> None:
        if self._on_unconfirmed is not None:
            self._on_unconfirmed([record])
        detail = f": {exc.detail}" if exc.detail else ""
        problem = Problem("", f"refused by Ometria (HTTP {exc.status}){detail}")
        self._stats.refuse(Problem("", f"refused by Ometria (HTTP {exc.status})"))
        self._scope.dead_letter_record(
            [problem],
            stage="ometria",
            line=record.line,
            position=record.position,
            record=msgspec.json.decode(record.encoded),
        )
