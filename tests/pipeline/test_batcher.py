"""The batcher: batch sizes, tails, linger, the envelope checks and the dead letter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from ometria_sync.clock import Sleep
from ometria_sync.pipeline.batch import Batch, PartScope, encode_body
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.schemas import MAX_RECORD_BYTES
from ometria_sync.sources.base import SourceItem
from ometria_sync.state.deadletter import DeadLetterWriter
from tests.fakes import minimal_validator
from tests.manual_clock import ManualClock, until


def _items(records: list[Any], start: int = 0) -> list[SourceItem]:
    return [SourceItem(record=r, position=(i + 1, i + 1), line=i + 1)
            for i, r in enumerate(records, start)]


_writers: list[DeadLetterWriter] = []


@pytest.fixture(autouse=True)
def _close_dead_letters() -> Iterator[None]:
    yield
    while _writers:
        _writers.pop().close()


def _batcher(
    tmp_path: Path, size: int = 100, linger: float = 0.5, sleep: Sleep = asyncio.sleep
) -> tuple[Batcher, StreamStats]:
    stats = StreamStats(stream="contacts")
    writer = DeadLetterWriter(tmp_path / "dl.jsonl")
    _writers.append(writer)
    batcher = Batcher(
        PartScope("contacts", "in.jsonl", stats, writer), record_type="contact",
        validator=minimal_validator(None), batch_size=size, linger=linger, sleep=sleep,
    )
    return batcher, stats


async def _run(batcher: Batcher, chunks: list[list[SourceItem]]) -> list[Batch]:
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    for chunk in chunks:
        inq.put_nowait(chunk)
    inq.put_nowait(None)
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    await batcher.run(inq, out)
    for writer in _writers:
        writer.sync()
    batches = []
    while (batch := out.get_nowait()) is not None:
        batches.append(batch)
    return batches


async def test_cuts_full_batches_of_100_and_a_tail(tmp_path: Path) -> None:
    """250 records make batches of 100, 100 and 50, numbered in order, ending where read."""
    batcher, _ = _batcher(tmp_path)
    batches = await _run(batcher, [_items([{"id": f"c{i}"} for i in range(250)])])
    assert [len(b.records) for b in batches] == [100, 100, 50]
    assert [b.seq for b in batches] == [0, 1, 2]
    assert batches[-1].end_position == (250, 250)


async def test_batch_size_is_configurable(tmp_path: Path) -> None:
    batcher, _ = _batcher(tmp_path, size=7)
    batches = await _run(batcher, [_items([{"id": f"c{i}"} for i in range(15)])])
    assert [len(b.records) for b in batches] == [7, 7, 1]


async def test_body_is_a_json_array_of_the_records(tmp_path: Path) -> None:
    batcher, _ = _batcher(tmp_path)
    (batch,) = await _run(batcher, [_items([{"id": "a"}, {"id": "b"}])])
    assert json.loads(encode_body(batch.records)) == [
        {"id": "a", "@type": "contact"}, {"id": "b", "@type": "contact"}]


async def test_linger_sends_a_half_full_batch_from_a_slow_source(tmp_path: Path) -> None:
    """A source that pauses does not hold its half-full batch: it leaves once `linger` passed
    on the batcher's clock, and not before."""
    clock = ManualClock()
    batcher, _ = _batcher(tmp_path, linger=0.5, sleep=clock.sleep)
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    task = asyncio.create_task(batcher.run(inq, out))
    inq.put_nowait(_items([{"id": "a"}, {"id": "b"}]))
    await until(lambda: clock.sleeping == 1)
    await clock.advance(0.49)
    assert out.empty()
    await clock.advance(0.01)
    batch = await asyncio.wait_for(out.get(), 2)
    assert batch is not None and len(batch.records) == 2
    inq.put_nowait(None)
    await task


async def test_a_chunk_within_linger_joins_the_batch_and_restarts_the_wait(tmp_path: Path) -> None:
    """Each chunk that arrives in time joins the half-full batch, and the batch waits `linger`
    again from then: it leaves `linger` after the last chunk, never while chunks keep coming."""
    clock = ManualClock()
    batcher, _ = _batcher(tmp_path, linger=0.5, sleep=clock.sleep)
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    task = asyncio.create_task(batcher.run(inq, out))
    inq.put_nowait(_items([{"id": "a"}]))
    await until(lambda: clock.sleeping == 1)
    await clock.advance(0.3)
    inq.put_nowait(_items([{"id": "b"}], start=1))
    await until(lambda: clock.started == 2 and clock.sleeping == 1)
    await clock.advance(0.3)  # 0.6: the first wait would be over, the second is not
    assert out.empty()
    await clock.advance(0.2)
    batch = await asyncio.wait_for(out.get(), 2)
    assert batch is not None and len(batch.records) == 2
    assert batch.end_position == (2, 2)
    inq.put_nowait(None)
    await task
    assert out.get_nowait() is None  # nothing left over: no second, empty batch


async def test_type_is_added_when_missing_and_a_mismatch_is_dead_lettered(tmp_path: Path) -> None:
    batcher, stats = _batcher(tmp_path)
    (batch,) = await _run(batcher, [_items([{"id": "a"}, {"id": "b", "@type": "order"}])])
    assert [msgspec.json.decode(r.encoded)["@type"] for r in batch.records] == ["contact"]
    assert stats.dead_lettered == 1
    entry = json.loads((tmp_path / "dl.jsonl").read_text())
    assert entry["line"] == 2 and entry["id"] == "b"
    assert entry["reasons"] == [{"path": "@type", "message":
                                 "must be 'contact' (the stream's record_type), got 'order'"}]


async def test_non_objects_and_decode_errors_go_to_the_dead_letter(tmp_path: Path) -> None:
    batcher, stats = _batcher(tmp_path)
    items = _items([[1, 2], None])
    items.append(SourceItem(record=None, position=(3, 3), line=3, raw=b"{oops",
                            error="invalid JSON: boom"))
    batches = await _run(batcher, [items])
    lines = [json.loads(x) for x in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert [e["reasons"][0]["message"] for e in lines] == [
        "must be a JSON object, got list", "must be a JSON object, got null",
        "invalid JSON: boom"]
    assert lines[2]["raw"] == "{oops" and lines[2]["stage"] == "source"
    # nothing valid, but the consumed positions are still covered by a (empty) final batch
    assert [(len(b.records), b.end_position) for b in batches] == [(0, (3, 3))]
    assert stats.read == 3 and stats.dead_lettered == 3


async def test_a_record_over_60_kb_is_dead_lettered_with_that_reason(tmp_path: Path) -> None:
    batcher, stats = _batcher(tmp_path)
    big = {"id": "big", "properties": {"blob": "x" * MAX_RECORD_BYTES}}
    (batch,) = await _run(batcher, [_items([big, {"id": "small"}])])
    assert [msgspec.json.decode(r.encoded)["id"] for r in batch.records] == ["small"]
    entry = json.loads((tmp_path / "dl.jsonl").read_text())
    size = len(json.dumps({**big, "@type": "contact"}, separators=(",", ":")))
    assert entry["reasons"][0]["message"] == (
        f"record is too large: at most {MAX_RECORD_BYTES} bytes once encoded, got {size}")
    assert stats.reasons == {
        f"record is too large: at most {MAX_RECORD_BYTES} bytes once encoded": 1}


async def test_dead_lettered_items_after_the_last_batch_are_covered(tmp_path: Path) -> None:
    """Positions of refused trailing records end up in a batch, so the checkpoint passes them."""
    batcher, _ = _batcher(tmp_path)
    batches = await _run(batcher, [_items([{"id": "a"}, {"id": "bad id"}])])
    assert [(len(b.records), b.end_position) for b in batches] == [(1, (2, 2))]


async def test_a_big_chunk_lets_the_event_loop_run_between_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validating thousands of records at once would hold the loop and make the pacer miss its
    departure slots: the batcher yields between slices once it has held the loop long enough
    (here: at once), and the batches come out the same."""
    import ometria_sync.pipeline.batcher as batcher_module

    monkeypatch.setattr(batcher_module, "_MAX_HOLD", 0.0)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    batcher, _ = _batcher(tmp_path, size=1000)  # no batch cut (no queue put) inside the chunk
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    inq.put_nowait(_items([{"id": f"c{i}"} for i in range(128 * 10)]))
    inq.put_nowait(None)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await batcher.run(inq, out)
    task.cancel()
    assert ticks - before >= 9  # one yield after each of the first nine slices at least
    batch = out.get_nowait()
    assert batch is not None and len(batch.records) == 1000


async def test_a_value_the_encoder_cannot_write_dead_letters_its_record_not_the_run(
        tmp_path: Path) -> None:
    """Even past a validator that let it through: the record is refused, the dead letter holds
    a printable form of the value, and the other records are batched."""
    batcher, stats = _batcher(tmp_path)
    bad = {"id": "bad", "span": asyncpg.Range(1, 5), "bits": asyncpg.BitString("101")}
    (batch,) = await _run(batcher, [_items([{"id": "a"}, bad, {"id": "b"}])])
    assert [msgspec.json.decode(r.encoded)["id"] for r in batch.records] == ["a", "b"]
    entry = json.loads((tmp_path / "dl.jsonl").read_text())
    assert entry["id"] == "bad" and entry["line"] == 2
    assert entry["reasons"][0]["message"].startswith("cannot be encoded as JSON: ")
    assert entry["record"]["span"] == "<Range [1, 5)>"
    assert entry["record"]["bits"] == "<BitString 101>"
    assert stats.dead_lettered == 1
