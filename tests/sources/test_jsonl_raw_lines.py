"""Whole lines handed over undecoded (``JsonlPart.read_raw``, for the typed lane): the same
lines, positions and line numbers as the items ``read`` gives, and those very items when the
lines are decoded."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.sources.base import SourceItem
from ometria_sync.sources.files import jsonl
from ometria_sync.sources.files.jsonl import JsonlPart
from ometria_sync.sources.files.lines import RawLines
from ometria_sync.sources.files.location import LocalFile

LINES = st.lists(st.sampled_from([b'{"id":"a"}', b'{"id":"b","x":[1,2]}', b"", b"   ",
                                  b'{"id":"c"}\r', b"{not json", b'"text"', b"\xff\xfe",
                                  b'{"id":"' + b"x" * 300 + b'"}']), max_size=60)


async def _read(part: JsonlPart, raw: bool) -> list[SourceItem]:
    chunks = part.read_raw(None) if raw else part.read(None)
    assert chunks is not None
    items: list[SourceItem] = []
    async for chunk in chunks:
        if isinstance(chunk, RawLines):
            cut = len(chunk.bodies) // 3
            decoded = chunk.decode(0, cut) + chunk.decode(cut, len(chunk.bodies))
            bodies = [b for b in chunk.bodies if b.strip()]
            assert [i.position for i in decoded] == [
                e for b, e in zip(chunk.bodies, chunk.ends, strict=True) if b.strip()]
            assert [i.raw for i in decoded] == [b.rstrip(b"\r") for b in bodies]
            items.extend(decoded)
        else:
            items.extend(chunk)
    return items


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(LINES, st.booleans(), st.booleans(), st.integers(50, 2000))
async def test_raw_lines_stand_for_the_items_read_gives(
        tmp_path: Path, lines: list[bytes], last_newline: bool, bom: bool, chunk: int) -> None:
    path = tmp_path / "in.jsonl"
    body = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)
    saved = jsonl._CHUNK_BYTES
    jsonl._CHUNK_BYTES = chunk  # several chunks
    try:
        usual = await _read(JsonlPart(LocalFile(path), max_line_bytes=1024), raw=False)
        raw = await _read(JsonlPart(LocalFile(path), max_line_bytes=1024), raw=True)
    finally:
        jsonl._CHUNK_BYTES = saved
    assert raw == usual


async def test_other_encodings_are_read_as_usual(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id":"a"}\n')
    assert JsonlPart(LocalFile(path), encoding="cp1252").read_raw(None) is None
    chunks = JsonlPart(LocalFile(path)).read_raw(None)
    assert chunks is not None
    got = [chunk async for chunk in chunks]
    assert len(got) == 1 and isinstance(got[0], RawLines)
    assert got[0].bodies == [b'{"id":"a"}'] and got[0].ends == [(11, 1)]
