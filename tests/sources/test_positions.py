"""Positions read back from a checkpoint: each source takes its own shape, and a checkpoint of
another shape (an older version's, or one edited by hand) is a SourceError that names the part
and says how to start over, never a crash deeper in the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ometria_sync.errors import SourceError
from ometria_sync.sources.base import LinePosition, Position, SourcePart, checkpoint_as
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.jsonl import JsonlPart
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.postgres import PostgresQuery, PostgresSourceConfig

NOT_A_FILE_POSITION = ["abc", 5, [-1, 0], [10], {"after": ["x"]}, [10, 1, 2], ["x", 1]]
NOT_A_QUERY_POSITION = [[10, 1], "abc", {"after": "2024-01-01"}, {"after": [1, 2]}]


async def _first_chunk(part: SourcePart, start: Position) -> list[Any]:
    async for chunk in part.read(start):
        return chunk
    return []


def _files(tmp_path: Path) -> list[SourcePart]:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": "1"}\n{"id": "2"}\n')
    csv = tmp_path / "a.csv"
    csv.write_text("id\n1\n2\n")
    return [JsonlPart(LocalFile(jsonl)), CsvPart(LocalFile(csv), CsvOptions())]


@pytest.mark.parametrize("start", NOT_A_FILE_POSITION, ids=repr)
async def test_a_file_refuses_a_checkpoint_that_is_not_offset_and_line(
        tmp_path: Path, start: Any) -> None:
    """JSON Lines and CSV files name themselves and the expected [offset, line]."""
    for part in _files(tmp_path):
        with pytest.raises(SourceError, match=r"is not a file position \(\[offset, line\]\)"
                                              r".*ometria-sync reset") as caught:
            await _first_chunk(part, start)
        assert part.label in str(caught.value)


async def test_a_file_resumes_from_its_own_position_as_stored(tmp_path: Path) -> None:
    """A position as the checkpoint store gives it back (a JSON list) resumes after the line."""
    for part in _files(tmp_path):
        (first, *_) = await _first_chunk(part, None)
        rest = await _first_chunk(part, list(first.position))
        assert [i.line for i in rest] == [first.line + 1]


@pytest.mark.parametrize("start", NOT_A_QUERY_POSITION, ids=repr)
async def test_a_query_refuses_a_checkpoint_that_is_not_its_cursor(start: Any) -> None:
    """Refused before connecting: nothing is read from a position the query never made."""
    part = PostgresQuery(PostgresSourceConfig(
        dsn_env="NO_SUCH_DSN_VARIABLE", query="SELECT 1 AS id", cursor=["id"]))
    with pytest.raises(SourceError, match=r"is not a PostgreSQL position .*ometria-sync reset"):
        await _first_chunk(part, start)


def test_checkpoint_as_reads_back_what_json_made_of_a_tuple() -> None:
    """A tuple comes back from the store as a list; text digits are still taken as numbers."""
    assert checkpoint_as(LinePosition, [120, 3], "f", "x") == LinePosition(120, 3)
    assert checkpoint_as(LinePosition, ["120", "3"], "f", "x") == (120, 3)
