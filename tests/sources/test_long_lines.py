"""Unbounded lines: every file source caps a line (``max_line_bytes``), dead-letters a longer
one with its first bytes and its length, keeps byte offsets exact, and keeps memory flat."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.config import Job
from ometria_sync.errors import ConfigError
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.jsonl import JsonlPart
from ometria_sync.sources.files.lines import PREFIX_BYTES, BoundedLines, Line
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.state.deadletter import RAW_PREFIX_BYTES, DeadLetterWriter
from tests.fakes import FakeOmetria, minimal_validator

MB = 1 << 20


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.booleans(), st.integers(8, 30), st.integers(1, 50))
def test_lines_are_split_exactly_and_over_long_ones_only_flagged(
        bodies: list[bytes], final_newline: bool, limit: int, block: int) -> None:
    """Sizes add up to the file; lines within the limit come out whole, longer ones flagged
    with their length and a prefix, whatever the block size."""
    data = b"\n".join(bodies) + (b"\n" if final_newline and bodies else b"")
    lines = [Line(x, len(x) + 1, len(x)) if isinstance(x, bytes) else x
             for x in BoundedLines(io.BytesIO(data), limit, block)]
    assert sum(line.size for line in lines) == len(data)
    expected = bodies if not bodies or final_newline or bodies[-1] else bodies[:-1]
    assert [line.length for line in lines] == [len(b) for b in expected]
    for line, body in zip(lines, expected, strict=True):
        assert line.over == (len(body) > limit)
        if line.over:  # a prefix: as much as was read when the line passed the limit
            assert body.startswith(line.body)
            assert len(line.body) >= min(len(body), limit + 1, PREFIX_BYTES)
        else:
            assert line.body == body


def write_with_long_line(path: Path, long_bytes: int, gz: bool = False) -> int:
    """Two good contacts around one line of ``long_bytes`` bytes (without its newline);
    written in pieces, so that the test itself holds little."""
    head = b'{"id": "huge", "properties": {"blob": "'
    tail = b'"}}'
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(b'{"id": "before"}\n')
        fh.write(head)
        left = long_bytes - len(head) - len(tail)
        piece = b"x" * MB
        while left > 0:
            fh.write(piece[:left])
            left -= MB
        fh.write(tail + b"\n")
        fh.write(b'{"id": "after"}\n')
    return long_bytes


@pytest.mark.parametrize("gz", [False, True])
async def test_a_51_mb_line_is_dead_lettered_the_rest_sent_with_flat_memory(
        make_job: Callable[..., Job], tmp_path: Path, gz: bool) -> None:
    """The good lines are sent; the long one is dead-lettered with its length and a prefix;
    the whole run allocates at most a few MB (it held the line whole: about 530 MB)."""
    path = tmp_path / "data" / "contacts.jsonl"
    path.parent.mkdir()
    length = write_with_long_line(path, 51 * MB, gz)
    job = make_job()
    fake = FakeOmetria()
    tracemalloc.start()
    try:
        result = await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: fake,
                               validator_factory=minimal_validator, handle_signals=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n51 MB line ({'gzip' if gz else 'plain'}): peak traced memory {peak / MB:.1f} MB")
    assert peak < 20 * MB
    assert result.exit_code == 3 and fake.ids == ["before", "after"]
    dead = [json.loads(x) for x in Path(result.dead_letter_path).read_text().splitlines()]
    assert [d["reasons"][0]["message"] for d in dead] == [
        f"line is {length} bytes, over the 1 MB limit"]
    assert dead[0]["line"] == 2 and dead[0]["raw"].startswith('{"id": "huge"')
    assert len(dead[0]["raw"]) == PREFIX_BYTES
    assert tuple(result.streams[0].position) == (17 + length + 1 + 16, 3)  # every byte counted


async def test_jsonl_positions_stay_exact_and_resume_after_the_long_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id":"a"}\r\n' + b'"' + b"y" * 3000 + b'"\n' + b'{"id":"b"}')
    items: list[SourceItem] = []
    async for chunk in JsonlPart(LocalFile(path), max_line_bytes=2048).read(None):
        items += chunk
    assert [(i.line, i.error) for i in items] == [
        (1, None), (2, "line is 3002 bytes, over the 2 KB limit"), (3, None)]
    assert [i.position for i in items] == [(12, 1), (12 + 3003, 2), (12 + 3003 + 10, 3)]
    part = JsonlPart(LocalFile(path), max_line_bytes=2048)
    resumed = [i async for chunk in part.read(items[1].position) for i in chunk]
    assert [i.record for i in resumed] == [{"id": "b"}]


CSV = CsvOptions(columns={"email": "email"}, max_line_bytes=1024)


async def read_csv(path: Path, start: Any = None) -> list[SourceItem]:
    return [i async for chunk in CsvPart(LocalFile(path), CSV).read(start) for i in chunk]


async def test_a_csv_row_with_a_line_over_the_limit_is_refused_and_the_next_rows_read(
        tmp_path: Path) -> None:
    """Also when the long line opens a quote that never closes: a fresh reader takes over
    after it, so the quote does not swallow the rows that follow."""
    path = tmp_path / "c.csv"
    long_cell = "z" * 5000
    path.write_text("id,email\n"
                    f"c1,a@example.com\n"
                    f'c2,"{long_cell}\n'           # a quote left open on a long line
                    "c3,c@example.com\n"
                    f'c4,"two\n{long_cell}"\n'     # a quoted cell whose second line is long
                    "c5,e@example.com\n")
    items = await read_csv(path)
    assert [(i.line, i.record and i.record["id"], i.error) for i in items] == [
        (2, "c1", None),
        (3, None, "line is 5004 bytes, over the 1 KB limit"),
        (4, "c3", None),
        (5, None, "line is 5001 bytes, over the 1 KB limit (line 6)"),
        (7, "c5", None)]
    assert items[-1].position == (path.stat().st_size, 7)
    assert items[1].raw is not None and len(items[1].raw) == PREFIX_BYTES
    assert [i.record["id"] for i in await read_csv(path, items[1].position) if i.record] == [
        "c3", "c5"]


async def test_csv_memory_stays_flat_for_a_51_mb_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    with path.open("wb") as fh:
        fh.write(b"id,email\nc1,a@example.com\nc2,")
        for _ in range(51):
            fh.write(b"q" * MB)
        fh.write(b"\nc3,c@example.com\n")
    tracemalloc.start()
    try:
        part = CsvPart(LocalFile(path), CsvOptions(columns={"email": "email"}))
        items = [i async for chunk in part.read(None) for i in chunk]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * MB
    assert [i.error or i.record["id"] for i in items] == [
        "c1", f"line is {51 * MB + 3} bytes, over the 1 MB limit", "c3"]


def test_the_dead_letter_keeps_only_a_prefix_of_a_raw_line_and_its_length(
        tmp_path: Path) -> None:
    writer = DeadLetterWriter(tmp_path / "dead.jsonl")
    writer.write(stream="s", source="f", reasons=[], raw=b"r" * (RAW_PREFIX_BYTES + 10))
    writer.write(stream="s", source="f", reasons=[], raw=b"short")
    writer.close()
    long, short = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(long["raw"]) == RAW_PREFIX_BYTES and long["raw_bytes"] == RAW_PREFIX_BYTES + 10
    assert short["raw"] == "short" and "raw_bytes" not in short


def test_max_line_bytes_is_validated_and_a_source_may_set_its_own(
        make_job: Callable[..., Job], tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "contacts.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"run.max_line_bytes"):
        make_job("max_line_bytes = 100")
    job = make_job("max_line_bytes = 4096")
    assert getattr(job.streams[0].source, "max_line_bytes", None) == 4096
    own = make_job("max_line_bytes = 4096", streams="""
[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl", max_line_bytes = 2048 }
""")
    assert getattr(own.streams[0].source, "max_line_bytes", None) == 2048
