"""Change detection at scale: a second run over an unchanged export, and over a 1% changed one.

    .venv/bin/python bench/bench_change_detection.py [--records 1000000] [--repeat 3]

Runs the real engine in-process (sources, validation, batching, change index, checkpoints) with
an in-memory pusher that counts requests, so the network is out of the way. Prints, for each
scenario, the median wall time of ``--repeat`` runs, the requests and records sent, and the
SQLite bytes per tracked id.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.push import PushResult, SentHook
from ometria_sync.pipeline.job_run import run_job
from ometria_sync.state.checkpoints import open_checkpoint_store


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    configure_logging("json", "error")
    n = args.records
    root = Path(tempfile.mkdtemp(prefix="bench-changes-"))
    data = root / "contacts.jsonl"
    job_path = root / "job.toml"
    job_path.write_text(
        '[ometria]\nbase_url = "http://127.0.0.1:9/v2"\nrate_limit_per_second = 10000\n'
        '[[streams]]\nname = "contacts"\nrecord_type = "contact"\n'
        f'source = {{ kind = "jsonl", path = "{data}" }}\n'
    )
    os.environ.setdefault("OMETRIA_API_KEY", "bench")
    write_export(data, n, set())
    first, pusher = asyncio.run(one_run(job_path))
    print(f"first run: {n:,} records, {pusher.requests:,} requests in {first:.1f} s")
    db = root / "state" / "checkpoints.db"
    store = open_checkpoint_store(f"sqlite:///{db}")
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("VACUUM")
    tracked = store.changes.count("contacts")
    store.close()
    size = db.stat().st_size
    print(f"state: {size:,} bytes for {tracked:,} tracked ids = {size / tracked:.1f} bytes/id")

    rnd = random.Random(1)
    changed = set(rnd.sample(range(n), n // 100))
    scenarios = {"unchanged": set(), "1% changed": changed}
    base = root / "base-state"
    shutil.copytree(root / "state", base)
    for name, edits in scenarios.items():
        times, sent = [], set()
        for _ in range(args.repeat):
            shutil.rmtree(root / "state")
            shutil.copytree(base, root / "state")
            write_export(data, n, edits)  # a new file: new fingerprint, read from the top
            took, pusher = asyncio.run(one_run(job_path))
            times.append(took)
            sent.add((pusher.requests, pusher.records))
        (requests, records), = sent
        print(f"second run, {name}: median {statistics.median(times):.1f} s "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)}), {requests:,} requests, "
              f"{records:,} records sent (expected {len(edits):,})")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
