"""Change detection and stream order: nightly runs send only what changed, in the job's order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.config import Job
from ometria_sync.errors import TransientError
from ometria_sync.ometria.push import PushResult
from ometria_sync.pipeline.job_run import JobResult, RunOptions, run_job
from ometria_sync.state.sqlite_sql import open_checkpoint_store
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl

MakeJob = Callable[..., Job]


async def _run(job: Job, fake: FakeOmetria, **options: Any) -> JobResult:
    return await run_job(job, RunOptions(**options), pusher_factory=lambda s: fake,
                         validator_factory=minimal_validator, handle_signals=False)


def _export(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    """Tonight's export: the same name, rewritten (a new fingerprint)."""
    path = tmp_path / "data/contacts.jsonl"
    if path.exists():
        path.unlink()
    write_jsonl(path, records)


async def test_an_unchanged_export_sends_nothing(make_job: MakeJob, tmp_path: Path) -> None:
    _export(tmp_path, contacts(300))
    job = make_job()
    assert (await _run(job, FakeOmetria())).exit_code == 0
    _export(tmp_path, contacts(300))  # re-exported: same content, new fingerprint
    second = FakeOmetria()
    result = await _run(job, second)
    assert result.exit_code == 0 and second.calls == []
    assert result.streams[0].unchanged == 300 and result.streams[0].read == 300


async def test_key_order_does_not_count_as_a_change(make_job: MakeJob, tmp_path: Path) -> None:
    _export(tmp_path, contacts(50))
    job = make_job()
    await _run(job, FakeOmetria())
    _export(tmp_path, [dict(reversed(list(c.items()))) for c in contacts(50)])
    second = FakeOmetria()
    await _run(job, second)
    assert second.calls == []


async def test_only_changed_and_new_records_are_sent(make_job: MakeJob, tmp_path: Path) -> None:
    _export(tmp_path, contacts(300))
    job = make_job()
    await _run(job, FakeOmetria())
    tonight = contacts(310)
    for i in (3, 150, 299):
        tonight[i]["email"] = f"new{i}@example.com"
    _export(tmp_path, tonight)
    second = FakeOmetria()
    result = await _run(job, second)
    assert sorted(second.ids) == sorted(["c3", "c150", "c299", *(f"c{i}" for i in range(300, 310))])
    assert result.streams[0].unchanged == 297


async def test_a_crash_between_send_and_acknowledgement_resends(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """The server got the batch but the answer never came: the hash is not stored, so the
    next run sends those records again."""
    _export(tmp_path, contacts(100))
    job = make_job(max_retries=0)
    received: list[str] = []

    def lost_answer(records: list[dict[str, Any]]) -> Exception:
        received.extend(r["id"] for r in records)
        return TransientError("connection reset after the request was sent")

    assert (await _run(job, FakeOmetria(lost_answer))).exit_code == 1
    assert len(received) == 100
    second = FakeOmetria()
    assert (await _run(job, second)).exit_code == 0
    assert sorted(second.ids) == sorted(received)


async def test_rejected_batches_are_not_remembered(make_job: MakeJob, tmp_path: Path) -> None:
    """Ometria refused some records of the batch without saying which: all stay eligible."""
    _export(tmp_path, contacts(100))
    job = make_job()
    await _run(job, FakeOmetria(lambda r: PushResult(202, accepted=99, rejected=1)))
    _export(tmp_path, contacts(100))
    second = FakeOmetria()
    await _run(job, second)
    assert len(second.ids) == 100


async def test_full_refresh_sends_everything_and_status_counts_ids(
    make_job: MakeJob, tmp_path: Path
) -> None:
    _export(tmp_path, contacts(120))
    job = make_job()
    await _run(job, FakeOmetria())
    again = FakeOmetria()
    assert (await _run(job, again, full_refresh=True)).exit_code == 0
    assert len(again.ids) == 120
    store = open_checkpoint_store(job.settings.state.checkpoint_url, job.name)
    try:
        assert store.changes.count("contacts") == 120
        store.reset("contacts")
        assert store.changes.count("contacts") == 0
    finally:
        store.close()


STREAMS = """
[[streams]]
name = "contacts"
record_type = "contact"
source = {{ kind = "jsonl", path = "data/contacts.jsonl" }}

[[streams]]
name = "more"
record_type = "contact"
source = {{ kind = "jsonl", path = "data/more.jsonl" }}
parallel = {parallel}
"""


async def test_streams_run_in_order(make_job: MakeJob, tmp_path: Path) -> None:
    """The second stream starts only after every batch of the first was acknowledged."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(500))
    write_jsonl(tmp_path / "data/more.jsonl", contacts(500, start=1000))
    job = make_job(streams=STREAMS.format(parallel="false"), concurrency=4)
    fake = FakeOmetria(latency=0.01)
    assert (await _run(job, fake)).exit_code == 0
    order = [records[0]["id"] for _, records in fake.calls]
    firsts = [i for i, rid in enumerate(order) if int(rid[1:]) < 1000]
    seconds = [i for i, rid in enumerate(order) if int(rid[1:]) >= 1000]
    assert max(firsts) < min(seconds)


async def test_a_parallel_stream_runs_alongside(make_job: MakeJob, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(500))
    write_jsonl(tmp_path / "data/more.jsonl", contacts(500, start=1000))
    job = make_job(streams=STREAMS.format(parallel="true"), concurrency=2)
    fake = FakeOmetria(latency=0.01)
    assert (await _run(job, fake)).exit_code == 0
    order = [int(records[0]["id"][1:]) >= 1000 for _, records in fake.calls]
    assert order.index(True) < len(order) - 1 - order[::-1].index(False)


async def test_hashes_are_written_in_few_transactions_and_all_by_the_end(
    make_job: MakeJob, tmp_path: Path, monkeypatch: Any
) -> None:
    """A write per acknowledged batch was the biggest cost on the event loop at high rates:
    12,000 records (120 batches) are remembered in 3 writes (of 5,000 here), the last one when
    the run ends, and the next run knows every one of them."""
    from ometria_sync.state.change_index_sql import ChangeIndex

    writes: list[list[tuple[int, int]]] = []
    remember = ChangeIndex.remember

    def counted(self: ChangeIndex, stream: int, pairs: list[tuple[int, int]],
                groups: list[int] | None = None) -> None:
        writes.append(list(pairs))
        remember(self, stream, pairs, groups)

    monkeypatch.setattr(ChangeIndex, "remember", counted)
    _export(tmp_path, contacts(12_000))
    job = make_job()
    assert (await _run(job, FakeOmetria())).exit_code == 0
    assert [len(w) for w in writes] == [5000, 5000, 2000]
    _export(tmp_path, contacts(12_000))  # tomorrow's export, unchanged
    second = FakeOmetria()
    result = await _run(job, second)
    assert second.calls == [] and result.streams[0].unchanged == 12_000
