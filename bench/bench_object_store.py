"""Reading a 1 GB JSON Lines object from S3 (moto's server on 127.0.0.1) against the same file
on disk: records/s through the JSONL source (parsed, positions and all), raw MB/s, and peak RSS
of each reader, each in a fresh child process.

    .venv/bin/python bench/bench_object_store.py [--mb 1024] [--repeat 3]

The data (bench/gen_data.py's contacts) is made once under $OMETRIA_BENCH_DATA. The S3 server
is Python (werkzeug): on one machine with two shared cores it competes with the reader for
CPU, so the bucket figures are a floor, not what S3 itself would give.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import data_file

MB = 1 << 20
BUCKET = "bench-drops"


async def _count(part: Any) -> int:
    n = 0
    async for chunk in part.read(None):
        n += len(chunk)
    return n


def child(mode: str, where: str, endpoint: str) -> dict[str, Any]:
    """One measurement: ``records`` (parsed) or ``bytes`` (raw), from ``local`` or ``s3``."""
    from ometria_sync.sources.files.jsonl import JsonlPart, JsonlSourceConfig
    from ometria_sync.sources.files.location import LocalFile
    from ometria_sync.sources.files.store import ObjectReader, ObjectUrl, StoreOptions, head

    started = time.perf_counter()
    if mode.endswith("records"):
        if mode.startswith("s3"):
            parts = asyncio.run(JsonlSourceConfig(path=where, endpoint_url=endpoint)
                                .open().parts())
            part: Any = parts[0]
        else:
            part = JsonlPart(LocalFile(Path(where)))
        count = asyncio.run(_count(part))
    else:
        fh: Any
        if mode.startswith("s3"):
            options = StoreOptions(endpoint)
            fh = ObjectReader(head(ObjectUrl.parse(where), options), options)
        else:
            fh = Path(where).open("rb")  # noqa: SIM115  (closed below, like the reader)
        count = 0
        while block := fh.read1(256 * 1024):
            count += len(block)
        fh.close()
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (the parent's size shows)
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    return {"count": count, "seconds": seconds, "peak_mb": peak}


#: the same raw read through fsspec's s3fs, run by another interpreter that has it installed
S3FS_CHILD = """
import json, sys, time
from pathlib import Path
import s3fs
url, endpoint = sys.argv[1], sys.argv[2]
started = time.perf_counter()
fs = s3fs.S3FileSystem(endpoint_url=endpoint)
count = 0
with fs.open(url, "rb", block_size=8 << 20, cache_type="readahead") as fh:
    while block := fh.read(256 * 1024):
        count += len(block)
seconds = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"count": count, "seconds": seconds, "peak_mb": peak}))
"""


def measure(mode: str, where: str, endpoint: str, s3fs_python: str = "") -> dict[str, Any]:
    command = ([s3fs_python, "-c", S3FS_CHILD, where, endpoint] if mode == "s3fs-bytes"
               else [sys.executable, __file__, "--child", mode, where, endpoint])
    out = subprocess.run(command,
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                              "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"})
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="size of the object")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--s3fs-python", default="",
                        help="an interpreter with s3fs installed: also read the object with it")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    path = data_file("contact", args.mb * 3700)  # about 283 bytes a contact
    size = path.stat().st_size
    from tests.s3 import S3Server

    server = S3Server(Path(tempfile.mkdtemp()) / "requests.log").start()
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        client.upload_file(str(path), BUCKET, path.name)
        print(f"object: {size / MB:.0f} MB, {args.mb * 3700} contacts "
              f"(uploaded in {time.perf_counter() - started:.0f} s)")
        url = f"s3://{BUCKET}/{path.name}"
        rows = []
        modes = ["local-bytes", "s3-bytes", "local-records", "s3-records"]
        if args.s3fs_python:
            modes.insert(2, "s3fs-bytes")
        for mode in modes:
            where = str(path) if mode.startswith("local") else url
            runs = [measure(mode, where, server.url, args.s3fs_python)
                    for _ in range(args.repeat)]
            seconds = statistics.median(r["seconds"] for r in runs)
            count = runs[0]["count"]
            peak = max(r["peak_mb"] for r in runs)
            rate = (f"{count / seconds / MB:7.0f} MB/s" if mode.endswith("bytes")
                    else f"{count / seconds:7.0f} rec/s")
            rows.append(f"{mode:14} {seconds:7.1f} s  {rate}  peak RSS {peak:5.0f} MB")
            print(rows[-1], flush=True)
    finally:
        server.stop()
    print(f"\nmedian of {args.repeat}; peak RSS is the worst run's")


if __name__ == "__main__":
    main()
