"""Change detection at scale: a second run over an unchanged export, and over a 1% changed one.

    .venv/bin/python bench/bench_change_detection.py [--records 1000000] [--repeat 3]
        [--store sqlite|postgres|both] [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Runs the real engine in-process (sources, validation, batching, change index, checkpoints) with
an in-memory pusher that counts requests, so the network is out of the way. Prints, for each
store and scenario, the median wall time of ``--repeat`` runs, the requests and records sent,
and the bytes per tracked id (the SQLite file after VACUUM; the PostgreSQL table with its
primary key index, ``pg_total_relation_size``). PostgreSQL state goes to a schema of its own,
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.push import PushResult, SentHook
from ometria_sync.pipeline.job_run import run_job
from ometria_sync.state.sqlite_sql import open_checkpoint_store

PG_URL = os.environ.get("OMETRIA_SYNC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class CountingPusher:
    def __init__(self) -> None:
        self.requests = 0
        self.records = 0

    async def push(self, body: bytes, count: int, on_sent: SentHook | None = None) -> PushResult:
        self.requests += 1
        self.records += count
        return PushResult(202, accepted=count)

    async def aclose(self) -> None:
        return None


def write_export(path: Path, n: int, changed: set[int]) -> None:
    with path.open("w") as fh:
        for i in range(n):
            email = f"changed{i}@example.com" if i in changed else f"user{i}@example.com"
            fh.write(json.dumps({"@type": "contact", "@collection": "shop", "id": f"c{i}",
                                 "email": email, "firstname": "Ann", "lastname": "Lee",
                                 "marketing_optin": "EXPLICITLY_OPTEDIN",
                                 "properties": {"tier": "gold"}}, separators=(",", ":")))
            fh.write("\n")


async def one_run(job_path: Path) -> tuple[float, CountingPusher]:
    pusher = CountingPusher()
    job = load_job(job_path)
    started = time.perf_counter()
    result = await run_job(job, pusher_factory=lambda s: pusher, handle_signals=False)
    assert result.exit_code == 0, result
    return time.perf_counter() - started, pusher


class SqliteBench:
    """The state as a SQLite file under the job's folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.section = ""

    def size(self) -> tuple[int, int]:
        db = self.root / "state" / "checkpoints.db"
        store = open_checkpoint_store(f"sqlite:///{db}", "job")  # the job of job.toml
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store._db.execute("VACUUM")
        tracked = store.changes.count("contacts")
        store.close()
        return db.stat().st_size, tracked

    def keep_base(self) -> None:
        shutil.copytree(self.root / "state", self.root / "base-state")

    def restore_base(self) -> None:
        shutil.rmtree(self.root / "state")
        shutil.copytree(self.root / "base-state", self.root / "state")

    def drop(self) -> None:
        return None


class PostgresBench:
    """The state in a PostgreSQL schema of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.section = f'[state]\ncheckpoint_url = "{url}"\nschema = "{self.schema}"\n'

    def _sql(self, *statements: str) -> list[object]:
        async def run() -> list[object]:
            conn = await asyncpg.connect(self.url)
            try:
                return [await conn.fetchval(q) for q in statements]
            finally:
                await conn.close()

        return asyncio.run(run())

    def size(self) -> tuple[int, int]:
        s = self.schema
        self._sql(f"VACUUM ANALYZE {s}.record_hashes")
        size, tracked = self._sql(f"SELECT pg_total_relation_size('{s}.record_hashes')",
                                  f"SELECT count(*) FROM {s}.record_hashes")
        return int(size), int(tracked)  # type: ignore[call-overload]

    def keep_base(self) -> None:
        s = self.schema
        self._sql(f"CREATE TABLE {s}.base_hashes AS SELECT * FROM {s}.record_hashes")

    def restore_base(self) -> None:
        s = self.schema
        self._sql(f"DELETE FROM {s}.checkpoints", f"TRUNCATE {s}.record_hashes",
                  f"INSERT INTO {s}.record_hashes SELECT * FROM {s}.base_hashes",
                  f"VACUUM ANALYZE {s}.record_hashes")

    def drop(self) -> None:
        self._sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def bench_store(name: str, n: int, repeat: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-changes-"))
    state = SqliteBench(root) if name == "sqlite" else PostgresBench(PG_URL)
    data = root / "contacts.jsonl"
    job_path = root / "job.toml"
    job_path.write_text(
        '[ometria]\nbase_url = "http://127.0.0.1:9/v2"\nrate_limit_per_second = 10000\n'
        + state.section +
        '[[streams]]\nname = "contacts"\nrecord_type = "contact"\n'
        f'source = {{ kind = "jsonl", path = "{data}" }}\n'
    )
    try:
        write_export(data, n, set())
        first, pusher = asyncio.run(one_run(job_path))
        print(f"[{name}] first run: {n:,} records, {pusher.requests:,} requests in {first:.1f} s")
        size, tracked = state.size()
        print(f"[{name}] state: {size:,} bytes for {tracked:,} tracked ids = "
              f"{size / tracked:.1f} bytes/id")
        rnd = random.Random(1)
        changed = set(rnd.sample(range(n), n // 100))
        scenarios = {"unchanged": set(), "1% changed": changed}
        state.keep_base()
        for scenario, edits in scenarios.items():
            times, sent = [], set()
            for _ in range(repeat):
                state.restore_base()
                write_export(data, n, edits)  # a new file: new fingerprint, read from the top
                took, pusher = asyncio.run(one_run(job_path))
                times.append(took)
                sent.add((pusher.requests, pusher.records))
            (requests, records), = sent
            print(f"[{name}] second run, {scenario}: median {statistics.median(times):.1f} s "
                  f"(runs: {', '.join(f'{t:.1f}' for t in times)}), {requests:,} requests, "
                  f"{records:,} records sent (expected {len(edits):,})")
    finally:
        state.drop()
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    args = parser.parse_args()
    configure_logging("json", "error")
    os.environ.setdefault("OMETRIA_API_KEY", "bench")
    for name in ("sqlite", "postgres") if args.store == "both" else (args.store,):
        bench_store(name, args.records, args.repeat)


if __name__ == "__main__":
    main()
