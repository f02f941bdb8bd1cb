"""Every kind of part implements the whole SourcePart hook, ``size()`` included: the engine
awaits it for the progress estimate and never probes for it."""

from __future__ import annotations

import gzip
import inspect
from pathlib import Path

import pytest

from ometria_sync.sources.base import SourcePart
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.jsonl import JsonlPart
from ometria_sync.sources.files.location import (
    LocalFile,
    LocalPath,
    ObjectPath,
    StoredObject,
    location_for,
)
from ometria_sync.sources.files.store import StoreOptions
from ometria_sync.sources.omneo import OmneoProfilesConfig, OmneoTransactionsConfig
from ometria_sync.sources.omneo.reader import OmneoPart
from ometria_sync.sources.postgres import PostgresQuery, PostgresSourceConfig

PART_CLASSES = [JsonlPart, CsvPart, PostgresQuery, OmneoPart]


@pytest.mark.parametrize("cls", PART_CLASSES, ids=lambda c: c.__name__)
def test_every_part_class_has_the_whole_hook(cls: type) -> None:
    """Each part class defines every member of the protocol, size() as a coroutine."""
    for name in ("key", "label", "fingerprint", "size", "read"):
        assert hasattr(cls, name), name
    assert inspect.iscoroutinefunction(cls.size)
    assert inspect.iscoroutinefunction(cls.fingerprint)


@pytest.mark.parametrize("cls", [LocalFile, StoredObject], ids=lambda c: c.__name__)
def test_every_location_has_what_the_formats_read_it_by(cls: type) -> None:
    """A local file and a stored object each open at an offset, describe themselves (label,
    fingerprint, size) and say whether reads block: the two formats read either."""
    for name in ("label", "fingerprint", "size", "open_at", "read", "blocking_reads"):
        assert hasattr(cls, name), name
    assert inspect.iscoroutinefunction(cls.size)
    assert inspect.iscoroutinefunction(cls.fingerprint)
    assert [LocalFile.blocking_reads, StoredObject.blocking_reads] == [False, True]


def test_a_path_is_local_and_an_s3_or_gs_url_is_an_object() -> None:
    """``location_for`` tells the two apart, and an object keeps its store settings."""
    store = StoreOptions("http://127.0.0.1:9000", "eu-west-1")
    assert location_for("data/c.jsonl", store) == LocalPath("data/c.jsonl")
    assert location_for("s3://b/c.jsonl", store) == ObjectPath("s3://b/c.jsonl", store)
    assert location_for("gs://b/*.csv", store) == ObjectPath("gs://b/*.csv", store)
    assert isinstance(location_for("s3-drops/c.jsonl", store), LocalPath)


async def test_a_plain_file_knows_its_size_and_a_gzip_file_does_not(tmp_path: Path) -> None:
    """Bytes to read for a plain file; None for gzip, whose uncompressed size is unknown."""
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b'{"id": "1"}\n' * 10)
    packed = tmp_path / "a.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    parts: list[SourcePart] = [JsonlPart(LocalFile(plain)), CsvPart(LocalFile(plain), CsvOptions())]
    assert [await p.size() for p in parts] == [120, 120]
    assert await JsonlPart(LocalFile(packed)).size() is None


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
