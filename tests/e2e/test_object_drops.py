"""Nightly drops in a bucket on a real S3 API (moto's server on 127.0.0.1), synced by the real
CLI: each night sends only what is new, an overwritten object is read again, and a run killed
in the middle of an object resumes with a ranged read and loses nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import KEY, Workspace
from tests.e2e.crash_trials import kill_mid_run, once, sqlite_position
from tests.s3 import Bucket, Proxy

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]

DROPS = """
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "glob"
pattern = "s3://{bucket}/ometria/contacts-*.csv.gz"
format = "csv"
endpoint_url = "{endpoint}"
[streams.source.columns]
customer_id = "id"
email = "email"
first_name = "firstname"
"""

BIG = """
[[streams]]
name = "contacts"
record_type = "contact"
[streams.source]
kind = "jsonl"
path = "s3://{bucket}/big/contacts.jsonl"
endpoint_url = "{endpoint}"
"""


def _drop(s3: Bucket, night: int, ids: range, name: str = "Ann") -> None:
    rows = "".join(f"c{n},user{n}@example.com,{name}\n" for n in ids)
    s3.put(f"ometria/contacts-2026-11-{night:02d}.csv.gz",
           gzip.compress(("customer_id,email,first_name\n" + rows).encode()))


async def _settled(emu: Any) -> dict[str, Any]:
    for _ in range(200):  # the emulator imports asynchronously, like Ometria
        if emu.stats()["queue_depth"] == 0:
            break
        await asyncio.sleep(0.05)
    return dict(emu.stats())


async def test_nightly_gzip_csv_drops_in_a_bucket(workspace: Workspace, emulator: Emulator,
                                                  s3: Bucket) -> None:
    workspace.job(DROPS.format(bucket=s3.name, endpoint=s3.server.url))
    for night, ids in ((1, range(0, 200)), (2, range(200, 350)), (3, range(350, 400))):
        _drop(s3, night, ids)
    async with emulator(rate=50) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url)
        assert first.code == 0, first.stdout + first.stderr
        night_one = await _settled(emu)
        assert night_one["distinct_ids"] == 400 and night_one["records_accepted"] == 400

        _drop(s3, 4, range(400, 460))  # night two: one new object
        mark = s3.server.mark()
        second = await workspace.run("run", "job.toml", url=emu.url)
        # the finished objects were not read again: one GET for the preflight's look at the
        # first object's first bytes, the rest for the new one
        read = [path.rsplit("-", 1)[1] for method, path, _ in s3.server.requests(mark)
                if method == "GET" and "?" not in path]
        assert read.count("01.csv.gz") == 1 and set(read) == {"01.csv.gz", "04.csv.gz"}
        assert second.code == 0, second.stdout + second.stderr
        night_two = await _settled(emu)
        assert night_two["records_accepted"] == 460  # only the new object's 60 records

        _drop(s3, 2, range(200, 350), name="Bea")  # night 2's object overwritten
        third = await workspace.run("run", "job.toml", url=emu.url)
        assert third.code == 0, third.stdout + third.stderr
        night_three = await _settled(emu)
        async with (aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as http,
                    http.get(f"{emu.url}/contacts/c300") as answer):
            contact = await answer.json()
    assert night_three["records_accepted"] == 460 + 150  # read again, whole
    assert night_three["distinct_ids"] == 460
    assert night_three["import_errors"] == 0
    assert contact["firstname"] == "Bea"  # the overwritten object's version


def _checkpoint(root: Path) -> tuple[int, int] | None:
    saved = sqlite_position(root)
    return (saved[0], saved[1]) if saved else None


def _big_object(n: int) -> bytes:
    pad = "x" * 1900
    return b"".join(json.dumps({"@type": "contact", "id": f"c{i}",
                                "email": f"user{i}@example.com", "firstname": "Ann",
                                "properties": {"note": pad}}).encode() + b"\n"
                    for i in range(n))


async def _kill_mid_object_and_resume(workspace: Workspace, emulator: Emulator, s3: Bucket,
                                      megabytes: int) -> None:
    body = _big_object(megabytes * 512)  # about 2 KB a record
    s3.put("big/contacts.jsonl", body)
    total = body.count(b"\n")
    proxy = Proxy(s3.server.port)
    try:
        workspace.job(BIG.format(bucket=s3.name, endpoint=proxy.url),
                      rate_limit_per_second=40)
        async with emulator(rate=40) as emu:
            def in_the_middle() -> bool:  # a checkpoint in the middle of the object
                saved = _checkpoint(workspace.root)
                return saved is not None and saved[0] >= len(body) // 4

            await kill_mid_run(workspace, emu.url, once(in_the_middle))
            saved = _checkpoint(workspace.root)
            assert saved is not None and len(body) // 4 <= saved[0] < len(body), saved
            before = len(proxy.exchanges)
            mark = s3.server.mark()
            result = await workspace.run("run", "job.toml", url=emu.url, timeout=600)
            stats = await _settled(emu)
    finally:
        proxy.close()
    assert result.code == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert stats["distinct_ids"] == total  # nothing lost
    reads = [e for e in proxy.exchanges[before:] if e.request.startswith("GET ")
             and e.request.split(" ")[1].endswith("/big/contacts.jsonl")
             and not (e.range or "").startswith("bytes=0-")]  # not the preflight's probes
    # the rerun read the object once, with a ranged GET from the checkpoint's byte offset
    assert [e.range for e in reads] == [f"bytes={saved[0]}-"]
    assert reads[0].served < len(body) - saved[0] + 4096
    logged = [status for method, path, status in s3.server.requests(mark)
              if method == "GET" and path.endswith("/big/contacts.jsonl")]
    # in the server's own log: the preflight's probe, the gzip probe, the read: all partial
    assert len(logged) == 3 and set(logged) == {206}
    print(f"\nkilled at byte {saved[0]} of {len(body)}; the rerun read "
          f"{reads[0].served} bytes from there; {total} records, none lost")


async def test_kill_mid_object_resumes_with_a_ranged_read(
        workspace: Workspace, emulator: Emulator, s3: Bucket) -> None:
    await _kill_mid_object_and_resume(workspace, emulator, s3, megabytes=24)


@pytest.mark.slow
async def test_kill_mid_200mb_object_resumes_with_a_ranged_read(
        workspace: Workspace, emulator: Emulator, s3: Bucket) -> None:
    await _kill_mid_object_and_resume(workspace, emulator, s3, megabytes=200)


async def test_preflight_refuses_a_missing_bucket_and_an_empty_pattern(
        workspace: Workspace, emulator: Emulator, s3: Bucket) -> None:
    _drop(s3, 1, range(0, 5))
    good = DROPS.format(bucket=s3.name, endpoint=s3.server.url)
    empty = good.replace('name = "contacts"', 'name = "later"').replace("contacts-*", "none-*")
    async with emulator(rate=50) as emu:
        missing = DROPS.format(bucket="no-such-bucket-22", endpoint=s3.server.url)
        workspace.job(missing)
        first = await workspace.run("run", "job.toml", url=emu.url)
        workspace.job(good + empty)
        second = await workspace.run("run", "job.toml", url=emu.url)
        sent = emu.stats()["records_accepted"]
    assert first.code == 1
    assert ("streams[0].source.pattern: s3://no-such-bucket-22/ometria/contacts-*.csv.gz: "
            "not found (404 Not Found, NoSuchBucket)") in first.stderr
    assert second.code == 1
    assert (f"streams[1].source.pattern: matches no object: s3://{s3.name}/ometria/none-*"
            in second.stderr)
    assert sent == 0  # nothing is sent before every stream passed its preflight
