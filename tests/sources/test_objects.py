"""s3:// sources against a real S3 API on 127.0.0.1 (moto's server): the same items as the
same bytes on disk, ranged resumes, breaks mid-stream, overwrites, preflight errors."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.errors import ConfigError, SourceError
from ometria_sync.sources.base import SourceItem, SourcePart
from ometria_sync.sources.files.csv import CsvPart, CsvSourceConfig
from ometria_sync.sources.files.glob import GlobSourceConfig
from ometria_sync.sources.files.jsonl import JsonlPart, JsonlSourceConfig
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.files.store import (
    STREAM_CHUNK_BYTES,
    ObjectInfo,
    ObjectReader,
    ObjectUrl,
    StoreOptions,
    head,
    store_for,
)
from tests.s3 import Bucket, Proxy, S3Server


def _records(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"@type": "contact", "id": f"c{i}",
                                "email": f"u{i}@example.com"}).encode() + b"\n"
                    for i in range(start, start + n))


async def _items(part: SourcePart, start: Any = None) -> list[SourceItem]:
    return [item async for chunk in part.read(start) for item in chunk]


def _same(a: list[SourceItem], b: list[SourceItem]) -> None:
    """The same items at the same positions (the object's last one is marked as its end)."""
    assert [(i.record, tuple(i.position)[:2], i.line, i.error) for i in a] == \
           [(i.record, tuple(i.position), i.line, i.error) for i in b]
    assert not a or a[-1].position[2:] == ("end",)


async def _object_part(config: Any) -> SourcePart:
    parts = await config.open().parts()
    assert len(parts) == 1
    return parts[0]


def _store(s3: Bucket) -> dict[str, str]:
    return {"endpoint_url": s3.server.url}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_an_object_reads_like_the_same_file_on_disk(
        s3: Bucket, tmp_path: Path, compress: bool) -> None:
    body = _records(3000) + b"not json\n" + _records(5, 3000)
    body = gzip.compress(body) if compress else body
    local = tmp_path / "c.jsonl"
    local.write_bytes(body)
    url = s3.put("drops/c.jsonl", body)
    part = await _object_part(JsonlSourceConfig(path=url, **_store(s3)))
    assert part.label == url
    expected = await _items(JsonlPart(LocalFile(local)))
    _same(await _items(part), expected)
    # resumed from a checkpoint in the middle: the same items as the file from there
    middle = expected[1500].position
    _same(await _items(part, middle), await _items(JsonlPart(LocalFile(local)), middle))


async def test_a_resume_of_an_uncompressed_object_is_one_ranged_get(s3: Bucket) -> None:
    url = s3.put("c.jsonl", _records(2000))
    part = await _object_part(JsonlSourceConfig(path=url, **_store(s3)))
    offset = (await _items(part))[999].position
    mark = s3.server.mark()
    rest = await _items(part, offset)
    assert rest[0].record["id"] == "c1000" and len(rest) == 1000
    gets = [r for r in s3.server.requests(mark) if r[0] == "GET" and r[1].endswith("/c.jsonl")]
    # the part looked at its gzip magic on the first read: now one GET, from the offset
    assert [status for _, _, status in gets] == [206]


async def test_a_resume_of_a_gzip_object_decompresses_from_the_top(s3: Bucket) -> None:
    body = _records(2000)
    url = s3.put("c.jsonl.gz", gzip.compress(body))
    part = await _object_part(JsonlSourceConfig(path=url, **_store(s3)))
    offset = (await _items(part))[1499].position
    assert offset[0] == len(_records(1500))  # positions count uncompressed bytes
    rest = await _items(part, offset)
    assert [i.record["id"] for i in rest] == [f"c{n}" for n in range(1500, 2000)]


@pytest.mark.parametrize("cuts", [2, 9], ids=["within-obstore-retries", "beyond-them"])
async def test_a_break_mid_stream_resumes_from_where_it_broke(s3: Bucket, cuts: int) -> None:
    """Connections reset mid-body: obstore retries them itself with ranged GETs; past its
    retries the reader backs off and resumes with a ranged GET of its own. Never from 0."""
    body = _records(40000)  # about 2.7 MB
    s3.put("big.jsonl", body)
    proxy = Proxy(s3.server.port, cut_after=250_000, cuts=cuts)
    try:
        options = StoreOptions(proxy.url)
        info = head(ObjectUrl.parse(f"s3://{s3.name}/big.jsonl"), options)
        sleeps: list[float] = []
        reader = ObjectReader(info, options, sleep=sleeps.append)
        data = reader.read()
        gets = proxy.gets("big.jsonl")
    finally:
        proxy.close()
    assert data == body  # nothing lost, nothing read twice
    assert len(gets) == cuts + 1
    assert gets[0].range in (None, "bytes=0-")
    starts = [int(g.range.split("=")[1].split("-")[0]) for g in gets[1:] if g.range]
    assert len(starts) == cuts and min(starts) > 0  # every retry a ranged read
    assert bool(sleeps) == (cuts > 4)  # obstore retries 4 times, then the reader backs off
    assert reader.requests == (2 if cuts > 4 else 1)


async def test_a_break_in_a_gzip_object_resumes_on_the_compressed_bytes(s3: Bucket,
                                                                        tmp_path: Path) -> None:
    import random

    rnd = random.Random(3)
    body = b"".join(json.dumps({"id": f"c{i}", "r": rnd.random()}).encode() + b"\n"
                    for i in range(60000))
    packed = gzip.compress(body)
    s3.put("big.jsonl.gz", packed)
    proxy = Proxy(s3.server.port, cut_after=300_000, cuts=1)
    try:
        config = JsonlSourceConfig(path=f"s3://{s3.name}/big.jsonl.gz", endpoint_url=proxy.url)
        items = await _items(await _object_part(config))
        gets = proxy.gets("big.jsonl.gz")
    finally:
        proxy.close()
    assert len(items) == 60000 and items[-1].record["id"] == "c59999"
    ranges = [g.range for g in gets]
    assert ranges[0] == "bytes=0-1"  # the gzip probe
    assert ranges[-1] is not None and int(ranges[-1].split("=")[1].split("-")[0]) > 0
    # re-read at most the chunk being filled when it broke (obstore hands out whole chunks)
    assert sum(g.served for g in gets) < len(packed) + STREAM_CHUNK_BYTES + 5 * 2000


async def test_an_object_overwritten_while_read_is_an_error_not_a_mix(s3: Bucket) -> None:
    url = s3.put("c.jsonl", _records(100))
    part = await _object_part(JsonlSourceConfig(path=url, **_store(s3)))
    s3.put("c.jsonl", _records(100, 5000))
    with pytest.raises(SourceError, match="changed while being read"):
        await _items(part)


async def test_a_csv_object_reads_like_the_file(s3: Bucket, tmp_path: Path) -> None:
    text = "id,email\n" + "".join(f"c{i},u{i}@example.com\n" for i in range(1200))
    body = gzip.compress(text.encode())
    (tmp_path / "c.csv.gz").write_bytes(body)
    url = s3.put("c.csv.gz", body)
    columns = {"id": "id", "email": "email"}
    config = CsvSourceConfig(path=url, columns=columns, **_store(s3))
    config.check("streams[0].source")
    await config.preflight("streams[0].source")
    part = await _object_part(config)
    local = CsvPart(LocalFile(tmp_path / "c.csv.gz"), CsvSourceConfig(path="", columns=columns))
    expected = await _items(local)
    _same(await _items(part), expected)
    _same(await _items(part, expected[700].position),
          await _items(local, expected[700].position))


async def test_a_glob_lists_matching_objects_in_order_with_fingerprints(s3: Bucket) -> None:
    for key in ("d/c-2.jsonl", "d/c-1.jsonl", "d/x-1.jsonl", "d/sub/c-3.jsonl", "c-0.jsonl"):
        s3.put(key, _records(2))
    config = GlobSourceConfig(pattern=f"s3://{s3.name}/d/c-*.jsonl", **_store(s3))
    config.check("streams[0].source")
    await config.preflight("streams[0].source")
    parts = await config.open().parts()
    assert [p.key for p in parts] == [f"s3://{s3.name}/d/c-1.jsonl",
                                      f"s3://{s3.name}/d/c-2.jsonl"]  # "*" stays in a folder
    before = await parts[0].fingerprint()
    s3.put("d/c-1.jsonl", _records(2, 100))  # same size, new content
    after = await (await config.open().parts())[0].fingerprint()
    assert before and after and before != after


@pytest.mark.parametrize(("pattern", "expect"), [
    ("s3://{bucket}/nothing-*.jsonl", "matches no object: s3://"),
    ("s3://no-such-bucket-x1/c-*.jsonl", "s3://no-such-bucket-x1/c-\\*.jsonl: "),
])
async def test_preflight_names_the_key_and_the_url(s3: Bucket, pattern: str,
                                                   expect: str) -> None:
    config = GlobSourceConfig(pattern=pattern.format(bucket=s3.name), **_store(s3))
    with pytest.raises(ConfigError, match=expect) as caught:
        await config.preflight("streams[2].source")
    assert caught.value.key == "streams[2].source.pattern"


async def test_preflight_of_a_missing_object(s3: Bucket) -> None:
    config = JsonlSourceConfig(path=f"s3://{s3.name}/none.jsonl", **_store(s3))
    with pytest.raises(ConfigError, match="not found") as caught:
        await config.preflight("streams[0].source")
    assert caught.value.key == "streams[0].source.path"


async def test_preflight_checks_the_csv_header_of_the_first_object(s3: Bucket) -> None:
    s3.put("o-1.csv", b"order_id,total\no1,2\n")
    config = GlobSourceConfig(pattern=f"s3://{s3.name}/o-*.csv", columns={"email": "email"},
                              **_store(s3))
    with pytest.raises(ConfigError, match="email"):
        await config.preflight("streams[0].source")


@pytest.mark.parametrize(("url", "problem"), [
    ("s3://", "no bucket"),
    ("s3://bucket/", "no object name"),
    ("s3://buck*/x.jsonl", "the bucket cannot be a pattern"),
    ("s3://key:secret@bucket/x.jsonl", "credentials or a port"),
])
def test_bad_urls_are_config_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        JsonlSourceConfig(path=url).check("streams[0].source")
    assert caught.value.key == "streams[0].source.path"


def test_gs_urls_parse_and_make_a_gcs_client() -> None:
    """No GCS server runs here: gs:// is checked as far as its URL and its client."""
    config = GlobSourceConfig(pattern="gs://acme-exports/ometria/contacts-*.csv.gz")
    config.check("streams[0].source")
    assert config.file_format == "csv"
    assert ObjectUrl.parse("gs://acme-exports/a/b.jsonl") == ("gs", "acme-exports", "a/b.jsonl")
    store = store_for(ObjectUrl.parse("gs://acme-exports/a.jsonl"),
                      StoreOptions("http://127.0.0.1:4443"))
    assert type(store).__name__ == "GCSStore"
    assert ObjectInfo(ObjectUrl("gs", "b", "k"), 5, None, "1700").fingerprint == "5::1700"


def test_store_settings_only_go_with_urls(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(_records(1))
    with pytest.raises(ConfigError, match="only applies to s3:// and gs://") as caught:
        JsonlSourceConfig(path=str(path), region="eu-west-2").check("streams[0].source")
    assert caught.value.key == "streams[0].source.region"
    with pytest.raises(ConfigError, match="credentials never go in the job file"):
        JsonlSourceConfig(path="s3://b/c.jsonl", endpoint_url="http://ak:sk@127.0.0.1:9000"
                          ).check("streams[0].source")


@pytest.mark.parametrize("setting", ["aws_secret_access_key", "aws_access_key_id",
                                     "aws_session_token", "service_account_key"])
def test_a_secret_in_the_job_file_is_refused(make_job: Any, setting: str) -> None:
    streams = f"""
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "glob"
pattern = "s3://acme/c-*.jsonl"
{setting} = "AKIAXXXXXXXX"
"""
    with pytest.raises(ConfigError, match="credentials never go in the job file") as caught:
        make_job(streams=streams)
    assert caught.value.key == f"streams[0].source.{setting}"
    assert "AKIAXXXXXXXX" not in str(caught.value)


@pytest.fixture(scope="module")
def strict_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A server that checks credentials (moto's IAM): the test ones are unknown to it."""
    server = S3Server(tmp_path_factory.mktemp("s3auth") / "requests.log",
                      env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    try:
        yield server
    finally:
        server.stop()


async def test_preflight_of_a_refused_credential(s3: Bucket, strict_s3: S3Server) -> None:
    config = GlobSourceConfig(pattern="s3://acme-exports/ometria/c-*.csv",
                              endpoint_url=strict_s3.url, columns={"id": "id"})
    with pytest.raises(ConfigError, match="access refused") as caught:
        await config.preflight("streams[1].source")
    assert caught.value.key == "streams[1].source.pattern"
    assert "s3://acme-exports/ometria/c-*.csv" in str(caught.value)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_a_finished_object_is_skipped_without_a_get(s3: Bucket, compress: bool) -> None:
    body = _records(500)
    url = s3.put("c.jsonl.gz" if compress else "c.jsonl",
                 gzip.compress(body) if compress else body)
    part = await _object_part(JsonlSourceConfig(path=url, **_store(s3)))
    items = await _items(part)
    assert [tuple(i.position) for i in items[-2:]] == [
        (len(_records(499)), 499), (len(body), 500, "end")]
    mark = s3.server.mark()
    # as the checkpoint store gives it back (JSON): a list
    assert await _items(part, list(items[-1].position)) == []
    assert [r for r in s3.server.requests(mark) if r[0] == "GET"] == []
    # a checkpoint before the end still reads the rest
    assert len(await _items(part, items[-2].position)) == 1


async def test_a_header_longer_than_the_preflight_probe_is_read_from_the_object(
        s3: Bucket) -> None:
    wide = ",".join(f"column_with_a_long_name_{n}" for n in range(4000))  # about 120 KB
    s3.put("wide.csv", f"{wide},email\n{',' * 4000}u@example.com\n".encode())
    config = CsvSourceConfig(path=f"s3://{s3.name}/wide.csv", columns={"email": "email"},
                             max_line_bytes=1 << 20, **_store(s3))
    await config.preflight("streams[0].source")  # found "email" past the first 64 KB
    bad = CsvSourceConfig(path=config.path, columns={"mail": "email"}, **_store(s3))
    with pytest.raises(ConfigError, match="mail"):
        await bad.preflight("streams[0].source")


async def test_throttling_is_retried_with_backoff(s3: Bucket) -> None:
    """503 SlowDown on the first GETs (as S3 answers when throttling): retried, not fatal."""
    body = _records(3000)
    url = s3.put("c.jsonl", body)
    proxy = Proxy(s3.server.port, throttle=3)
    try:
        config = JsonlSourceConfig(path=url, endpoint_url=proxy.url)
        items = await _items(await _object_part(config))
        statuses = [g.served == -503 for g in proxy.gets("c.jsonl")]
    finally:
        proxy.close()
    assert len(items) == 3000
    assert statuses[:3] == [True, True, True] and not any(statuses[3:])
