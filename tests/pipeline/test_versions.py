"""Versions of one record: after a run, Ometria ends on the source's last version of every id.

Pins issue 18's cases 1-4: a repeated id judged against the run's own earlier occurrence, the
last acknowledged version's hash stored, retries never reordering versions (within a stream
and across streams of one record type), and stored hashes forgotten after any outcome that is
not a clean acknowledgement."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ometria_sync.config import Job
from ometria_sync.errors import TransientError
from ometria_sync.ometria.push import PushResult
from ometria_sync.pipeline.batch import VersionOrder
from ometria_sync.pipeline.change_filter import hash64
from ometria_sync.pipeline.job_run import JobResult, RunOptions, run_job
from tests.fakes import FakeOmetria, minimal_validator, write_jsonl

MakeJob = Callable[..., Job]


async def _run(job: Job, fake: FakeOmetria, **options: Any) -> JobResult:
    return await run_job(job, RunOptions(**options), pusher_factory=lambda s: fake,
                         validator_factory=minimal_validator, handle_signals=False)


def _export(tmp_path: Path, records: list[dict[str, Any]], name: str = "contacts") -> None:
    path = tmp_path / f"data/{name}.jsonl"
    if path.exists():
        path.unlink()
    write_jsonl(path, records)


def _c(rid: str, version: str) -> dict[str, Any]:
    return {"id": rid, "email": f"{rid}@example.com", "firstname": version}


def _last_versions(fake: FakeOmetria) -> dict[str, str]:
    """What Ometria ends on: the last delivered version of each id (last write wins)."""
    return {r["id"]: r["firstname"] for r in fake.delivered}


# --- 1. a repeated id is judged against the run's own earlier occurrence -------------------

async def test_an_id_reverting_within_one_run_is_sent_again(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """Stored v1; tonight's log has v2 then v1 (opted out, then back in): both are sent, in
    that order, and Ometria ends on v1, not on v2."""
    _export(tmp_path, [_c("c1", "v1")])
    job = make_job()
    assert (await _run(job, FakeOmetria())).exit_code == 0
    _export(tmp_path, [_c("c1", "v2"), _c("c0", "x"), _c("c1", "v1")])
    fake = FakeOmetria()
    assert (await _run(job, fake)).exit_code == 0
    assert [r["firstname"] for r in fake.delivered if r["id"] == "c1"] == ["v2", "v1"]


async def test_an_identical_repeat_within_one_run_is_sent_once(
    make_job: MakeJob, tmp_path: Path
) -> None:
    _export(tmp_path, [_c("c1", "v1"), _c("c2", "a"), _c("c1", "v1")])
    fake = FakeOmetria()
    result = await _run(make_job(), fake)
    assert result.exit_code == 0 and fake.ids.count("c1") == 1
    assert result.streams[0].unchanged == 1


async def test_a_batch_never_holds_two_versions_of_one_id(
    make_job: MakeJob, tmp_path: Path
) -> None:
    _export(tmp_path, [_c("c1", "v1"), _c("c2", "a"), _c("c1", "v2"), _c("c3", "b")])
    fake = FakeOmetria()
    assert (await _run(make_job(), fake)).exit_code == 0
    assert [[r["id"] for r in records] for _, records in fake.calls] == [
        ["c1", "c2"], ["c1", "c3"]]
    assert _last_versions(fake)["c1"] == "v2"


# --- 2. the hash stored is the last acknowledged version's ---------------------------------

@pytest.mark.parametrize("order", ["ab", "ba"])
async def test_the_stored_hash_is_the_last_versions(
    make_job: MakeJob, tmp_path: Path, order: str
) -> None:
    """Two versions acknowledged in one hash write: whichever hash is the larger number, the
    next run judges against the version sent last (sorting by (id, hash) kept the larger)."""
    first, last = (_c("c1", v) for v in order)
    _export(tmp_path, [first, last])
    job = make_job()
    assert (await _run(job, FakeOmetria())).exit_code == 0
    _export(tmp_path, [last])
    again = FakeOmetria()
    assert (await _run(job, again)).exit_code == 0
    assert again.calls == [], "the last version sent was judged changed"
    _export(tmp_path, [first])
    back = FakeOmetria()
    await _run(job, back)
    assert back.ids == ["c1"], "the earlier version was judged unchanged"


# --- 3. retries never reorder versions -----------------------------------------------------

def _fails_first_send_of(version: str) -> Callable[[list[dict[str, Any]]], Any]:
    failed: list[bool] = []

    def handler(records: list[dict[str, Any]]) -> Any:
        if not failed and any(r["firstname"] == version for r in records):
            failed.append(True)
            return TransientError("HTTP 503", status=503)
        return PushResult(202, accepted=len(records))

    return handler


async def test_a_retried_older_version_never_lands_after_a_newer_one(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """Batch k (c1=v1) gets a 503 and is retried; batch k+1 (c1=v2) waits for it instead of
    succeeding first on another dispatcher."""
    _export(tmp_path, [_c("c1", "v1"), _c("c1", "v2"), _c("c2", "x")])
    job = make_job(batch_size=1, concurrency=4)
    fake = FakeOmetria(_fails_first_send_of("v1"), latency=0.02)
    assert (await _run(job, fake)).exit_code == 0
    assert [r["firstname"] for r in fake.delivered if r["id"] == "c1"] == ["v1", "v2"]


async def test_two_versions_of_an_id_are_never_in_flight_at_once_across_streams(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """Two parallel streams of contacts share the ids' order: at no moment are two requests
    carrying the same id in flight, however the 503s fall."""
    _export(tmp_path, [_c(f"c{i % 7}", f"a{i}") for i in range(60)])
    _export(tmp_path, [_c(f"c{i % 7}", f"b{i}") for i in range(60)], name="more")
    streams = """
[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }

[[streams]]
name = "more"
record_type = "contact"
source = { kind = "jsonl", path = "data/more.jsonl" }
parallel = true
"""
    job = make_job(streams=streams, batch_size=3, concurrency=4)
    in_flight: dict[str, int] = {}
    most = 0
    calls = 0

    class Tracking(FakeOmetria):
        async def push(self, body: bytes, count: int, on_sent: Any = None) -> PushResult:
            nonlocal most, calls
            ids = [r["id"] for r in msgspec.json.decode(body)]
            calls += 1
            for i in ids:
                in_flight[i] = in_flight.get(i, 0) + 1
                most = max(most, in_flight[i])
            try:
                await asyncio.sleep(0.005)
                if calls % 5 == 0:
                    raise TransientError("HTTP 503", status=503)
                return await super().push(body, count, on_sent)
            finally:
                for i in ids:
                    in_flight[i] -= 1

    fake = Tracking()
    assert (await _run(job, fake)).exit_code == 0
    assert most == 1
    assert len(fake.delivered) == 120


async def test_version_order_waits_only_for_earlier_claims_of_the_same_ids() -> None:
    order = VersionOrder()
    first = order.claim([1, 2])
    other = order.claim([3])
    second = order.claim([2, 4])
    await asyncio.wait_for(other.ready(), 1)  # no shared id: no wait
    waiting = asyncio.ensure_future(second.ready())
    await asyncio.sleep(0)
    assert not waiting.done() and second.waits_for == 1
    first.release()
    await asyncio.wait_for(waiting, 1)
    for claim in (other, second):
        claim.release()
    assert order.held == 0


# --- 4. an outcome that is not a clean acknowledgement forgets the stored hash --------------

async def _stored_then(make_job: MakeJob, tmp_path: Path, **job_options: Any) -> Job:
    """c1=old acknowledged and stored; tonight's export has c1=new."""
    _export(tmp_path, [_c("c1", "old")])
    job = make_job(**job_options)
    assert (await _run(job, FakeOmetria())).exit_code == 0
    _export(tmp_path, [_c("c1", "new")])
    return job


async def _reverted_is_sent(job: Job, tmp_path: Path) -> None:
    """The source reverts to the old content: Ometria may hold "new", so it must be sent."""
    _export(tmp_path, [_c("c1", "old")])
    fake = FakeOmetria()
    assert (await _run(job, fake)).exit_code == 0
    assert _last_versions(fake) == {"c1": "old"}


async def test_rejected_records_forget_their_stored_hash(
    make_job: MakeJob, tmp_path: Path
) -> None:
    job = await _stored_then(make_job, tmp_path)
    partly = FakeOmetria(lambda r: PushResult(202, accepted=len(r) - 1, rejected=1))
    assert (await _run(job, partly)).exit_code == 3
    await _reverted_is_sent(job, tmp_path)


async def test_a_batch_failed_after_retries_forgets_its_stored_hash(
    make_job: MakeJob, tmp_path: Path
) -> None:
    job = await _stored_then(make_job, tmp_path, max_retries=1)
    down = FakeOmetria(lambda r: TransientError("HTTP 503", status=503))
    assert (await _run(job, down)).exit_code == 1
    await _reverted_is_sent(job, tmp_path)


async def test_a_batch_cut_off_at_the_grace_period_forgets_its_stored_hash(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """SIGTERM while a batch is in flight longer than the grace period (2 s): it is cancelled,
    its outcome unknown."""
    job = await _stored_then(make_job, tmp_path)
    slow = FakeOmetria(latency=30)
    run = asyncio.ensure_future(run_job(
        job, RunOptions(), pusher_factory=lambda s: slow, validator_factory=minimal_validator))
    while not slow.calls:
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    result = await asyncio.wait_for(run, 10)
    assert result.exit_code == 130
    await _reverted_is_sent(job, tmp_path)


def test_hash64_of_the_two_versions_differs() -> None:
    """(A guard for the tests above: the versions really differ in content.)"""
    assert hash64(b'{"firstname":"old"}') != hash64(b'{"firstname":"new"}')
