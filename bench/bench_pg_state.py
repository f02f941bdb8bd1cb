"""Issue 34, goal 4: PostgreSQL state's side of a first run alone, without the pipeline.

    (cd TREE && .venv/bin/python /path/to/bench_pg_state.py [--ids 1000000] [--repeat 3])

The change-index traffic of a first run of ``--ids`` new ids, as the pipeline makes it: a
lookup per slice of 128 ids read, the acknowledged ids' hashes written 5,000 at a time (the
writer kept at most 15,000 hashes behind). Printed per run: wall seconds, this process's CPU
seconds, the state sessions' CPU seconds on the server (read from ``/proc``: the server must
run on this machine), and the lookups that reached the server. The store is imported from
the current directory's ``ometria_sync``, so the same script measures two trees side by side.
A fresh ``bench_*`` schema on ``$OMETRIA_SYNC_BENCH_PG_DSN`` per run, dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd()))

import asyncpg

from ometria_sync.state.pg_state import PostgresState

DSN = os.environ.get("OMETRIA_SYNC_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SLICE, WRITE = 128, 5_000


def _cpu(pids: list[int]) -> float:
    """CPU seconds of these server processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def one_run(n: int) -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    store = await PostgresState.open(DSN, schema, "bench")
    trips = 0
    run = store._run

    async def counted(role: str, op: Any, bounded: bool = True) -> Any:
        nonlocal trips
        trips += role == "reader"
        return await run(role, op, bounded)

    store._run = counted  # type: ignore[method-assign]
    try:
        stream = await store.stream_id("contacts")
        pids = [await store.call(lambda c: c.fetchval("SELECT pg_backend_pid()"))]
        pids.append(await run("reader", lambda c: c.fetchval("SELECT pg_backend_pid()")))
        rnd = random.Random(7)
        ids = [rnd.getrandbits(64) - 2**63 for _ in range(n)]
        wall, cpu, server = time.perf_counter(), time.process_time(), _cpu(pids)
        for start in range(0, n, WRITE):
            chunk = ids[start:start + WRITE]
            for at in range(0, len(chunk), SLICE):
                await store.lookup(stream, chunk[at:at + SLICE])
            store.remember(stream, [(h, h ^ 0x5A5A) for h in chunk])
            await store.keep_up()
        await store.flush()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = _cpu(pids) - server
    finally:
        await store.aclose()
        conn = await asyncpg.connect(DSN)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()
    return (f"{n:,} ids: wall {wall:.1f} s, client CPU {cpu:.1f} s, server CPU {server:.1f} s, "
            f"{trips:,} lookups reached the server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        print(asyncio.run(one_run(args.ids)), flush=True)


if __name__ == "__main__":
    main()
