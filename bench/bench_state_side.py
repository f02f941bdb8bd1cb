"""Change detection's state side alone: what a first run's change-index lookups and change-hash
writes cost, in process CPU (all threads), through the engine's own classes.

    .venv/bin/python bench/bench_state_side.py [--ids 200000] [--repeat 3] [--chunk 1000]
        [--pg postgresql://...]

Each round drives :class:`ChangeFilter` and :class:`AckedHashes` as a first run does (chunks of
new ids judged by ``unchanged``, then acknowledged 100 at a time, a checkpoint's
``before_checkpoint`` after each batch, ``keep_up`` as the dispatchers call it) against a fresh
state, then the same loop against a state that does nothing (lookups find nothing, writes are
done at once). The state side's cost is the difference. Run it from each checkout with that
checkout's own environment to compare two versions (the script uses only interfaces both
have).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ometria_sync.pipeline.batch import BatchRecord
from ometria_sync.pipeline.change_filter import ChangeFilter
from ometria_sync.pipeline.settle import AckedHashes
from ometria_sync.state import open_state


class NullState:
    """Lookups find nothing and writes are done at once: the loop's own cost."""

    async def lookup(self, stream_id: int, id_hashes: list[int]) -> dict[int, int]:
        return {}

    def remember(self, stream_id: int, pairs: list[tuple[int, int]],
                 groups: list[int] | None = None) -> concurrent.futures.Future[object]:
        done: concurrent.futures.Future[object] = concurrent.futures.Future()
        done.set_result(None)
        return done

    def forget_ids(self, stream_id: int, id_hashes: list[int]) -> None:
        pass

    async def keep_up(self, *args: Any) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def chunks(ids: int, chunk: int, seed: int) -> list[list[BatchRecord]]:
    """``ids`` new records (random id hashes, a small encoding each) in chunks."""
    rnd = random.Random(seed)
    out = []
    for start in range(0, ids, chunk):
        out.append([BatchRecord(b'{"id":"c%d","email":"u%d@example.com"}' % (i, i), i,
                                (i,), i, rnd.getrandbits(64) - 2**63)
                    for i in range(start, min(ids, start + chunk))])
    return out


async def drive(state: Any, stream_id: int, work: list[list[BatchRecord]]) -> float:
    """CPU seconds of one first run's change detection over ``work``."""
    changes = ChangeFilter(state, stream_id)
    hashes = AckedHashes(state, changes)
    cpu = time.process_time()
    for records in work:
        skip = await changes.unchanged(records)
        sent = [r for i, r in enumerate(records) if i not in skip]
        for start in range(0, len(sent), 100):
            hashes.remember(sent[start : start + 100])
            hashes.before_checkpoint()
            await state.keep_up()
    hashes.write()
    await state.flush()
    return time.process_time() - cpu


async def one_round(args: argparse.Namespace, seed: int) -> tuple[float, float]:
    work = chunks(args.ids, args.chunk, seed)
    root = Path(tempfile.mkdtemp(prefix="bench-state-side-"))
    try:
        if args.pg:
            schema = f"bench_state_{os.getpid()}_{seed}"
            state = await open_state(args.pg, schema)
        else:
            state = await open_state(f"sqlite:///{root}/state.db")
        try:
            stream_id = await state.stream_id("contacts")
            real = await drive(state, stream_id, work)
            if args.pg:
                await state.reset()
        finally:
            await state.aclose()
        for r in (r for c in work for r in c):
            r.replaces = False
        null = await drive(NullState(), 1, work)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return real, null


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", help="a PostgreSQL URL: the state there instead of SQLite")
    args = parser.parse_args()
    costs, reals, nulls = [], [], []
    for seed in range(args.repeat):
        real, null = asyncio.run(one_round(args, seed))
        reals.append(real)
        nulls.append(null)
        costs.append(real - null)
        print(f"round {seed + 1}: state {real:.3f} s, null state {null:.3f} s, "
              f"state side {real - null:.3f} s", flush=True)
    cost = statistics.median(costs)
    print(f"{args.ids:,} new ids, {'PostgreSQL' if args.pg else 'SQLite'}: state side "
          f"{cost:.3f} CPU-s ({cost / args.ids * 1e6:.2f} us an id), median of {args.repeat}; "
          f"with the state {statistics.median(reals):.3f} s, null {statistics.median(nulls):.3f}")


if __name__ == "__main__":
    main()
