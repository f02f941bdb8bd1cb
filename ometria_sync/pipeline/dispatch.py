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

:meth:`Delivery.deliver` returns the batch's :class:`~ometria_sync.pipeline.batch.Outcome`; what
it writes is decided in ``settle.py``. A batch is *settled* when its outcome has no ``failure``:
every record in it was either acknowledged by Ometria or written to the dead letter. A failure
(a refused key, retries run out) leaves it unsettled, so the checkpoint never passes it. Only a
clean acknowledgement (``rejected: 0``, ``skipped: 0``) counts a record as ``acknowledged``;
records Ometria refused or may have refused are ``unconfirmed``, so that their stored change
hashes are forgotten. ``skipped`` is documented nowhere (seen in one third-party client):
skipped records are counted as ``unconfirmed``, never as delivered, until its meaning is
confirmed; Ometria does not say which records of the batch it skipped, so the whole batch is
``unconfirmed``.
"""

from __future__ import annotations

import time

import msgspec
import structlog

from ometria_sync.clock import Sleep
from ometria_sync.errors import (
    BatchRejectedError,
    OmetriaSyncError,
    RetriesExhaustedError,
    ThrottledError,
    TransientError,
)
from ometria_sync.net import Backoff
from ometria_sync.ometria import Pusher, PushResult
from ometria_sync.pacing import RatePacer
from ometria_sync.pipeline.batch import Batch, BatchRecord, Outcome, PartScope, encode_body
from ometria_sync.pipeline.ledger import record_key
from ometria_sync.schemas import Problem

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
    ) -> None:
        self._scope = scope
        self._stream = scope.stream
        self._stats = scope.stats
        self._pusher = pusher
        self._pacer = pacer
        self._policy = policy
        self._sleep = sleep

    async def deliver(self, batch: Batch) -> Outcome:
        """Send ``batch`` until it settles or fails; what became of each of its records."""
        outcome = Outcome()
        if not batch.records:
            return outcome
        try:
            await self._send(batch, batch.records, outcome)
        except OmetriaSyncError as exc:  # Ometria refused the key, retries ran out
            outcome.failure = exc
        return outcome

    async def _send(self, batch: Batch, records: list[BatchRecord], outcome: Outcome) -> None:
        try:
            result = await self._push_with_retries(batch, records)
        except BatchRejectedError as exc:
            if len(records) == 1:
                await self._refuse(records[0], exc)
                outcome.unconfirmed.append(records[0])
                outcome.refused += 1
                return
            log.info("batch_split", stream=self._stream, batch=batch.seq,
                     status=exc.status, records=len(records))
            middle = len(records) // 2
            await self._send(batch, records[:middle], outcome)
            await self._send(batch, records[middle:], outcome)
            return
        self._stats.sent += len(records)
        self._stats.accepted += result.accepted
        self._stats.rejected += result.rejected
        self._stats.unconfirmed += result.skipped
        if result.rejected or result.skipped:
            log.warning("records_rejected" if result.rejected else "records_skipped",
                        stream=self._stream, batch=batch.seq, rejected=result.rejected,
                        skipped=result.skipped, request_id=result.request_id)
            outcome.unconfirmed.extend(records)  # which ones, Ometria does not say
        else:
            outcome.acknowledged.extend(records)
        outcome.delivered += len(records) - result.skipped

    async def _push_with_retries(self, batch: Batch, records: list[BatchRecord]) -> PushResult:
        body = encode_body(records)
        failures = 0
        throttle_wait = 0.0
        while True:
            try:
                result = await self._push_once(body, len(records))
            except ThrottledError as exc:
                self._stats.count_status(429)
                self._stats.count_throttled(time.monotonic())
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
                self._stats.count_retry(time.monotonic())
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
                self._stats.count_retry(time.monotonic())
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

    async def _refuse(self, record: BatchRecord, exc: BatchRejectedError) -> None:
        detail = f": {exc.detail}" if exc.detail else ""
        problem = Problem("", f"refused by Ometria (HTTP {exc.status}){detail}")
        self._stats.refuse([Problem("", f"refused by Ometria (HTTP {exc.status})")])
        decoded = msgspec.json.decode(record.encoded)
        if self._scope.ledger is not None:  # what it holds of the key, just before noting
            await self._scope.ledger.look_up([record_key(decoded, record.position)])
        self._scope.dead_letter_record(
            [problem],
            stage="ometria",
            line=record.line,
            position=record.position,
            record=decoded,
        )
