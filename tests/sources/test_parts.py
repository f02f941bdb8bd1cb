"""Every kind of part implements the whole SourcePart hook, ``size()`` included: the engine
awaits it for the progress estimate and never probes for it."""

from __future__ import annotations

import gzip
import inspect
from pathlib import Path

import pytest

from ometria_sync.sources.base import SourcePart
from ometria_sync.sources.csv_files import CsvFile, CsvObject, CsvOptions
from ometria_sync.sources.jsonl import JsonlFile, JsonlObject
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.reader import OmneoPart
from ometria_sync.sources.postgres import PostgresQuery, PostgresSourceConfig

PART_CLASSES = [JsonlFile, JsonlObject, CsvFile, CsvObject, PostgresQuery, OmneoPart]


@pytest.mark.parametrize("cls", PART_CLASSES, ids=lambda c: c.__name__)
def test_every_part_class_has_the_whole_hook(cls: type) -> None:
    """Each part class defines every member of the protocol, size() as a coroutine."""
    for name in ("key", "label", "fingerprint", "size", "read"):
        assert hasattr(cls, name), name
    assert inspect.iscoroutinefunction(cls.size)
    assert inspect.iscoroutinefunction(cls.fingerprint)


async def test_a_plain_file_knows_its_size_and_a_gzip_file_does_not(tmp_path: Path) -> None:
    """Bytes to read for a plain file; None for gzip, whose uncompressed size is unknown."""
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b'{"id": "1"}\n' * 10)
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    parts: list[SourcePart] = [JsonlFile(plain), CsvFile(plain, CsvOptions())]
    assert [await p.size() for p in parts] == [120, 120]
    assert await JsonlFile(packed).size() is None


async def test_a_query_cannot_know_its_size() -> None:
    """A PostgreSQL part answers None without connecting (no DSN is even set here)."""
    part: SourcePart = PostgresQuery(PostgresSourceConfig(
        dsn_env="NO_SUCH_DSN_VARIABLE", query="SELECT 1 AS id", cursor=["id"]))
    assert await part.size() is None


@pytest.mark.parametrize("config", [OmneoProfilesConfig, OmneoTransactionsConfig])
async def test_an_omneo_collection_cannot_know_its_size(config: type) -> None:
    """An Omneo part answers None without a request (its client is not even made)."""
    source = config(base_url="https://acme.example.com").open()
    try:
        (part,) = await source.parts()
        assert await part.size() is None
    finally:
        await source.aclose()
