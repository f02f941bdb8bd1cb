"""Dead letters in the state store hold the same JSON as a dead-letter file's lines."""

from __future__ import annotations

import json
from pathlib import Path

from ometria_sync.schemas.problems import Problem
from ometria_sync.state.deadletter import DatabaseDeadLetter, DeadLetterWriter
from ometria_sync.state.store import StateStore


def _refuse(writer: DeadLetterWriter) -> None:
    writer.write(stream="contacts", source="a.jsonl", reasons=[Problem("email", "not an email")],
                 line=3, position=[120, 3], record={"id": "c3", "email": "x"})
    writer.write(stream="contacts", source="a.jsonl", reasons=[Problem("", "bad JSON")],
                 stage="source", line=4, position=[140, 4], raw=b"{nope")


async def test_rows_are_the_file_lines_and_committed_before_what_follows(
        store: StateStore, tmp_path: Path) -> None:
    file_writer = DeadLetterWriter(tmp_path / "dl.jsonl", "run-1")
    _refuse(file_writer)
    file_writer.close()
    writer = DatabaseDeadLetter(store, "run-1")
    _refuse(writer)
    writer.sync()  # before the checkpoint that covers them
    store.save("contacts", "a.jsonl", [140, 4], "fp", 1)
    await store.flush()
    rows = [json.loads(e) async for e in store.dead_letters(run_id="run-1")]
    lines = [json.loads(line) for line in (tmp_path / "dl.jsonl").read_text().splitlines()]
    for row, line in zip(rows, lines, strict=True):
        assert row.pop("time") and line.pop("time")
        assert row == line and row["run_id"] == "run-1"
    assert writer.count == 2 and "the state database" in writer.describe()


def test_a_fresh_file_holds_only_this_runs_lines(tmp_path: Path) -> None:
    """``validate``'s own file: what an earlier validation wrote is gone."""
    path = tmp_path / "validate-dead-letter.jsonl"
    for run in ("v1", "v2"):
        writer = DeadLetterWriter(path, run, fresh=True)
        _refuse(writer)
        writer.close()
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == ["v2", "v2"]
    DeadLetterWriter(path, "v3", fresh=True).close()  # a validation that refused nothing
    assert not path.exists()
