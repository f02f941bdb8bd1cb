"""The typed lane in the batcher: a chunk of whole lines it takes gives the batch records the
usual path gives (encodings, lines, positions, order keys, id hashes), and a chunk it refuses
goes the usual way (dead letters, warnings, line numbers untouched)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.pipeline import typed_chunks
from ometria_sync.pipeline.batch import Batch, BatchRecord, PartScope
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.change_filter import hash64, hashes64, identity
from ometria_sync.pipeline.prepare import SchemaValidator
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files.jsonl import decode_line
from ometria_sync.sources.files.lines import RawLines, line_ends
from ometria_sync.state.deadletter import DeadLetterWriter


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_hashes_computed_together_are_hash64s(data: list[bytes]) -> None:
    assert hashes64(data) == [hash64(d) for d in data]


@given(st.lists(st.tuples(st.text(max_size=8), st.none() | st.text(max_size=8)), max_size=10))
def test_identities_are_those_of_the_records(pairs: list[tuple[str, str | None]]) -> None:
    ids = [i for i, _ in pairs]
    collections = [c for _, c in pairs]
    assert typed_chunks.identities(ids, collections) == [
        identity({"id": i, "@collection": c}) for i, c in pairs]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[DeadLetterWriter]:
    out = DeadLetterWriter(tmp_path / "dl.jsonl")
    yield out
    out.close()


def _items(lines: list[bytes], ends: list[tuple[int, int]]) -> list[SourceItem]:
    items = []
    for body, end in zip(lines, ends, strict=True):
        value, error = decode_line(body)
        items.append(SourceItem(record=value, position=end, line=end[1], raw=body, error=error))
    return items


async def _run(writer: DeadLetterWriter, record_type: str, chunk: Any,
               lane: bool) -> tuple[list[BatchRecord], StreamStats]:
    stats = StreamStats(stream="s")
    batcher = Batcher(PartScope("s", "in.jsonl", stats, writer), record_type=record_type,
                      validator=SchemaValidator("update", False))
    if not lane:
        batcher.lane = None
    chunks: asyncio.Queue[Any] = asyncio.Queue()
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    chunks.put_nowait(chunk)
    chunks.put_nowait(None)
    await batcher.run(chunks, out)
    records: list[BatchRecord] = []
    while (batch := out.get_nowait()) is not None:
        records.extend(batch.records)
    return records, stats


LINES = [b'{"@collection":"shop","id":"c%d","email":"u%d@example.com","properties":{"n":%d,'
         b'"f":1.0}}' % (i, i, i) for i in range(600)] + [
    b'{"id":"plain","@type":"contact"}', b'{"id":"c3","@collection":""}']


@pytest.mark.parametrize("bad", [None, b'{"id":"x","email":"nope"}', b"{not json"])
async def test_a_chunk_of_lines_gives_what_its_items_give(writer: DeadLetterWriter,
                                                           bad: bytes | None) -> None:
    lines = [*LINES[:100], *([bad] if bad else []), *LINES[100:]]
    ends = line_ends(lines, 40, 3)
    decoded: list[bool] = []
    raw = RawLines(lines, ends, lambda a, b: decoded.append(True) or _items(lines[a:b],
                                                                             ends[a:b]))
    fast, fast_stats = await _run(writer, "contact", raw, lane=True)
    assert decoded == ([True] if bad else [])  # the lane took each slice but the bad one
    usual, usual_stats = await _run(writer, "contact", _items(lines, ends), lane=False)
    assert fast == usual
    assert msgspec.structs.asdict(fast_stats) == msgspec.structs.asdict(usual_stats)
    assert fast_stats.valid == len(LINES)
    expected = [hash((r.get("@collection"), r.get("id"))) for r in map(msgspec.json.decode, [
        line for line in lines if line != bad])]
    assert [r.order_key for r in fast] == expected


def test_records_made_together_have_the_keys_take_gives() -> None:
    records = [{"id": "a", "@collection": "shop"}, {"id": "b", "@collection": None},
               {"id": "c", "@collection": ""}, {"id": "d"}]
    ids = [r["id"] for r in records]
    collections = [r.get("@collection") for r in records]
    ends = [(10, 1), (20, 2), (30, 3), (40, 4)]
    made = typed_chunks.typed_records([b"x"] * 4, ends, ids, collections, id_hashes=True)
    assert [(m.line, m.position) for m in made] == [(e[1], e) for e in ends]
    assert [m.order_key for m in made] == [
        hash((r.get("@collection"), r.get("id"))) for r in records]
    assert [m.id_hash for m in made] == [hash64(identity(r)) for r in records]
