"""The bad-input corpus: every file ends in a clear message or dead-letter entries, never a
traceback, and nothing valid in it is lost."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.config import Job
from ometria_sync.pipeline.job_run import JobResult, RunOptions, run_job
from tests.fakes import FakeOmetria, minimal_validator

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
MakeJob = Callable[..., Job]


async def _sync(make_job: MakeJob, tmp_path: Path, name: str) -> tuple[JobResult, FakeOmetria,
                                                                           list[dict[str, Any]]]:
    target = tmp_path / "data" / "contacts.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    source = BAD / name
    if source.exists():
        shutil.copy(source, target)
    job = make_job()
    fake = FakeOmetria()
    result = await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: fake,
                           validator_factory=minimal_validator, handle_signals=False)
    dead_path = Path(result.dead_letter_path)
    dead = [json.loads(x) for x in dead_path.read_text().splitlines()] if dead_path.exists() else []
    return result, fake, dead


def _messages(dead: list[dict[str, Any]]) -> list[str]:
    return [d["reasons"][0]["message"] for d in dead]


async def test_truncated_gzip_delivers_what_it_could_read_then_fails_clearly(
    make_job: MakeJob, tmp_path: Path
) -> None:
    result, fake, _ = await _sync(make_job, tmp_path, "truncated.jsonl.gz")
    assert result.exit_code == 1
    stats = result.streams[0]
    assert "unreadable after line" in (stats.error or "") and stats.outcome == "failed"
    assert len(fake.ids) == stats.read > 0  # everything read before the break was delivered


async def test_binary_garbage_is_dead_lettered_line_by_line(
    make_job: MakeJob, tmp_path: Path
) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, "garbage.bin")
    assert result.exit_code == 3 and fake.calls == []
    assert dead and all(m.startswith(("not valid utf-8: ", "invalid JSON"))
                        for m in _messages(dead))
    assert all(d["line"] and d["raw"] is not None for d in dead)


@pytest.mark.parametrize("name", ["bom.jsonl", "crlf.jsonl"])
async def test_bom_and_crlf_are_fine(make_job: MakeJob, tmp_path: Path, name: str) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, name)
    assert result.exit_code == 0 and dead == []
    assert fake.ids == [f"c{i}" for i in range(5)]


async def test_deep_nesting_is_dead_lettered(make_job: MakeJob, tmp_path: Path) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, "deep.jsonl")
    assert result.exit_code == 3
    assert "ok1" in fake.ids
    assert "invalid JSON: nested too deeply" in _messages(dead)


async def test_nan_and_infinity_are_not_json(make_job: MakeJob, tmp_path: Path) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, "nan.jsonl")
    assert result.exit_code == 3 and fake.ids == ["ok"]
    assert [d["line"] for d in dead] == [1, 2, 3, 4]
    assert all(m.startswith("invalid JSON") for m in _messages(dead))


async def test_duplicate_keys_keep_the_last_value(make_job: MakeJob, tmp_path: Path) -> None:
    result, fake, _ = await _sync(make_job, tmp_path, "duplicate-keys.jsonl")
    assert result.exit_code == 0
    assert fake.delivered[0]["email"] == "second@example.com"


async def test_invalid_utf8_names_the_byte(make_job: MakeJob, tmp_path: Path) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, "invalid-utf8.jsonl")
    assert result.exit_code == 3 and fake.ids == ["u2"]
    assert _messages(dead) == ['not valid utf-8: set source.encoding (e.g. "cp1252") if the '
                               'file is not UTF-8, got byte 0xE9 at byte 23 of the line']
    assert dead[0]["raw"] == '{"id":"u1","name":"caf\ufffd"}'


async def test_an_empty_file_sends_nothing_and_succeeds(make_job: MakeJob, tmp_path: Path) -> None:
    result, fake, dead = await _sync(make_job, tmp_path, "empty.jsonl")
    assert result.exit_code == 0 and fake.calls == [] and dead == []
    assert result.streams[0].read == 0


async def test_a_10_mb_line_is_dead_lettered_as_over_the_line_limit(
    make_job: MakeJob, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "contacts.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w") as fh:
        fh.write('{"id":"small"}\n')
        fh.write(json.dumps({"id": "huge", "properties": {"blob": "x" * 10_000_000}}) + "\n")
        fh.write('{"id":"after"}\n')
    result, fake, dead = await _sync(make_job, tmp_path, "generated")
    assert result.exit_code == 3 and fake.ids == ["small", "after"]
    length = path.read_bytes().splitlines()[1].__len__()
    assert _messages(dead) == [f"line is {length} bytes, over the 1 MB limit"]
    assert dead[0]["line"] == 2 and dead[0]["raw"].startswith('{"id": "huge"')
    assert len(dead[0]["raw"]) == 1024  # a prefix, not the line
