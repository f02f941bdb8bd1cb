"""Every row of the failure table (docs/architecture.md), through the engine with a fake."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.config import Job
from ometria_sync.errors import (
    AuthenticationError,
    BatchRejectedError,
    FatalApiError,
    ThrottledError,
    TransientError,
)
from ometria_sync.ometria.push import PushResult
from ometria_sync.pipeline.job_run import JobResult, run_job
from ometria_sync.state.sqlite_sql import open_checkpoint_store
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl

MakeJob = Callable[..., Job]


async def _run(job: Job, fake: FakeOmetria) -> JobResult:
    return await run_job(job, pusher_factory=lambda s: fake,
                         validator_factory=minimal_validator, handle_signals=False)


def _checkpoint(job: Job) -> Any:
    store = open_checkpoint_store(job.settings.state.checkpoint_url, job.name)
    try:
        saved = store.load("contacts", "")
        return saved.position if saved else None
    finally:
        store.close()


def _failing_n_times(n: int, error: Callable[[], Exception]) -> Callable[..., Any]:
    calls = Counter[str]()

    def handler(records: list[dict[str, Any]]) -> PushResult | Exception:
        key = records[0]["id"]
        calls[key] += 1
        if calls[key] <= n:
            return error()
        return PushResult(202, accepted=len(records))

    return handler


async def test_accepted_batches_are_acknowledged_and_checkpointed(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(250))
    job = make_job()
    fake = FakeOmetria()
    result = await _run(job, fake)
    assert result.exit_code == 0
    assert sorted(fake.ids) == sorted(c["id"] for c in contacts(250))
    assert [len(records) for _, records in fake.calls] == [100, 100, 50]
    assert _checkpoint(job)[1] == 250
    stats = result.streams[0]
    assert (stats.read, stats.sent, stats.accepted, stats.requests) == (250, 250, 250, 3)


async def test_2xx_with_rejected_records_acknowledges_and_exits_3(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(150))
    job = make_job()
    fake = FakeOmetria(lambda r: PushResult(200, accepted=len(r) - 2, rejected=2))
    result = await _run(job, fake)
    assert result.exit_code == 3
    assert result.streams[0].rejected == 4 and result.streams[0].sent == 150
    assert _checkpoint(job)[1] == 150


async def test_429_with_retry_after_pauses_every_dispatcher(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """After a 429 asking for 0.4 s, no request of any dispatcher leaves inside those 0.4 s."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(800))
    job = make_job(concurrency=8)
    fake = FakeOmetria(_failing_n_times(1, lambda: ThrottledError("429", retry_after=0.4)),
                       latency=0.01)
    result = await _run(job, fake)
    assert result.exit_code == 0
    assert len(set(fake.ids)) == 800
    # the engine handles the 429 in the step the fake raises it: no request leaves in between
    answered = next(t for t, failure in fake.answers if failure is not None)
    in_flight = [t for t, _ in fake.calls if t < answered]
    later = [t for t, _ in fake.calls if t >= answered]
    assert len(in_flight) <= 8
    assert min(later) >= answered + 0.4 - 0.005
    assert result.streams[0].throttled == 8 and result.streams[0].retries == 8


async def test_503_with_retry_after_pauses_every_dispatcher(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """A 503 asking for 0.4 s holds back every dispatcher, not only the one that got it."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(3000))
    job = make_job(concurrency=8)
    calls = Counter[str]()

    def handler(records: list[dict[str, Any]]) -> PushResult | Exception:
        calls[records[0]["id"]] += 1
        if records[0]["id"] == "c0" and calls["c0"] == 1:
            return TransientError("503", status=503, retry_after=0.4)
        return PushResult(202, accepted=len(records))

    fake = FakeOmetria(handler, latency=0.01)
    result = await _run(job, fake)
    assert result.exit_code == 0 and len(set(fake.ids)) == 3000
    answered = next(t for t, failure in fake.answers if failure is not None)
    later = [t for t, _ in fake.calls if t >= answered]
    assert len(later) > 1 and min(later) >= answered + 0.4 - 0.005
    assert result.streams[0].statuses == {"503": 1, "202": 30}


async def test_429_without_retry_after_backs_off_and_retries(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(100))
    job = make_job()
    fake = FakeOmetria(_failing_n_times(3, lambda: ThrottledError("429")))
    result = await _run(job, fake)
    assert result.exit_code == 0 and len(fake.calls) == 4
    assert result.streams[0].statuses == {"429": 3, "202": 1}


async def test_transient_errors_are_retried_then_delivered(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(200))
    job = make_job()
    fake = FakeOmetria(_failing_n_times(2, lambda: TransientError("503", status=503)))
    result = await _run(job, fake)
    assert result.exit_code == 0
    assert len(fake.ids) == 200 and result.streams[0].retries == 4


async def test_transient_errors_past_the_limit_fail_the_run_with_the_checkpoint_kept(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """The 3rd batch never gets through: exit 1, the checkpoint stays after batch 2, and a rerun
    against a healthy server delivers the rest: nothing is skipped."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(500))
    job = make_job(max_retries=2, concurrency=1)

    def handler(records: list[dict[str, Any]]) -> PushResult | Exception:
        if records[0]["id"] == "c200":
            return TransientError("connection reset")
        return PushResult(202, accepted=len(records))

    broken = FakeOmetria(handler)
    result = await _run(job, broken)
    assert result.exit_code == 1
    assert "failed 3 times" in (result.error or "")
    assert _checkpoint(job)[1] == 200
    healthy = FakeOmetria()
    again = await _run(job, healthy)
    assert again.exit_code == 0
    assert set(broken.ids) | set(healthy.ids) == {c["id"] for c in contacts(500)}
    assert healthy.ids[0] == "c200"


async def test_400_splits_the_batch_and_dead_letters_only_the_bad_record(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(100))
    job = make_job()

    def handler(records: list[dict[str, Any]]) -> PushResult | Exception:
        if any(r["id"] == "c37" for r in records):
            return BatchRejectedError("bad", status=422, detail="root > email: not valid")
        return PushResult(202, accepted=len(records))

    fake = FakeOmetria(handler)
    result = await _run(job, fake)
    assert result.exit_code == 3
    assert sorted(fake.ids) == sorted(c["id"] for c in contacts(100) if c["id"] != "c37")
    entry = json.loads(Path(result.dead_letter_path).read_text())
    assert entry["id"] == "c37" and entry["stage"] == "ometria" and entry["line"] == 38
    assert entry["reasons"] == [{"path": "", "message":
                                 "refused by Ometria (HTTP 422): root > email: not valid"}]
    assert len(fake.calls) <= 2 * 7 + 1  # a bisection, not one request per record
    assert _checkpoint(job)[1] == 100


async def test_a_refused_key_stops_the_run_at_once(make_job: MakeJob, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(2000))
    job = make_job(concurrency=2)
    fake = FakeOmetria(lambda r: AuthenticationError("key refused", status=403))
    result = await _run(job, fake)
    assert result.exit_code == 1
    assert len(fake.calls) <= 2
    assert "key refused" in (result.error or "")
    assert _checkpoint(job) is None


async def test_an_unexpected_status_is_fatal(make_job: MakeJob, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(10))
    job = make_job()
    fake = FakeOmetria(lambda r: FatalApiError("HTTP 404", status=404))
    result = await _run(job, fake)
    assert result.exit_code == 1 and result.streams[0].outcome == "failed"


async def test_the_checkpoint_is_the_contiguous_watermark_when_batches_finish_out_of_order(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """Batch 0 fails; later batches succeed: the checkpoint stays at the start, so the rerun
    reads everything again and skips what Ometria already acknowledged; batch 0 goes first,
    from the ledger (where its retries running out put it), and only once."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(400))
    job = make_job(max_retries=1, concurrency=4)

    def handler(records: list[dict[str, Any]]) -> PushResult | Exception:
        if records[0]["id"] == "c0":
            return TransientError("timeout")
        return PushResult(202, accepted=len(records))

    first = FakeOmetria(handler)
    result = await _run(job, first)
    assert result.exit_code == 1
    assert "c300" in first.ids  # a later batch was acknowledged out of order ...
    assert _checkpoint(job) is None  # ... but the checkpoint never passed batch 0
    second = FakeOmetria()
    again = await _run(job, second)
    assert again.exit_code == 0
    assert set(first.ids) | set(second.ids) == {c["id"] for c in contacts(400)}
    assert sorted(second.ids) == sorted(f"c{i}" for i in range(100))  # each once
    assert (again.streams[0].resent, again.streams[0].unchanged) == (100, 400)
