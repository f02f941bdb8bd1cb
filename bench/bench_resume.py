"""Resume: time from a restart to the first request after a crash at 90% of a 5M-record file.

    .venv/bin/python bench/bench_resume.py [--records 5000000] [--repeat 5]

1. Crash: ``ometria-sync run`` (a subprocess) sends the contacts file to the emulator (in this
   process; limit 10,000 req/s, no latency) and is killed with SIGKILL as soon as the emulator
   has accepted 90% of the records. The emulator keeps counts only in this phase (holding
   4.5M records would need gigabytes); its rate, key and body checks run as usual.
2. Restart, ``--repeat`` times, each from a copy of the state the crash left: spawn the same
   command against a fresh emulator and time from the spawn to the emulator's first request
   (both on this machine's monotonic clock), then SIGKILL it. The first record of that request
   shows where the file was resumed.
3. The same from an empty state (a fresh start at the top of the file), for comparison.

Prints medians. A resume that re-read the first 90% instead of seeking would take about as long
as sending it did (bench/bench_cpu.py gives the per-record cost).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import data_file, engine_command, engine_env, logged_emulator, write_job

from ometria_sync.emulator.behaviour import STORE
from ometria_sync.state.sqlite_sql import open_checkpoint_store

EMULATOR: dict[str, Any] = {"rate": 10_000, "queue_capacity": 10**9, "drain_per_second": 10**9}


def _count_only(records: list[dict[str, Any]], stats: Any) -> tuple[str, int, int]:
    stats.accepted += len(records)
    return str(uuid.uuid4()), len(records), 0


async def crash(job: Path, records: int) -> float:
    """Run until 90% of the records were accepted, then SIGKILL; returns the seconds it took."""
    async with logged_emulator(**EMULATOR) as emu:
        store = emu.app[STORE]
        store.accept = lambda records: _count_only(records, store.stats)  # type: ignore[method-assign]
        started = time.monotonic()
        engine = await asyncio.create_subprocess_exec(
            *engine_command(job), env=engine_env(emu.url), stdout=asyncio.subprocess.DEVNULL)
        while store.stats.accepted < 0.9 * records:
            if engine.returncode is not None:
                raise SystemExit(f"engine ended early with exit {engine.returncode}")
            await asyncio.sleep(0.05)
        engine.send_signal(signal.SIGKILL)
        await engine.wait()
        return time.monotonic() - started


async def first_request(job: Path) -> tuple[float, str]:
    """Seconds from spawning the engine to its first request, and that request's first id."""
    async with logged_emulator(**EMULATOR) as emu:
        spawned = time.monotonic()
        engine = await asyncio.create_subprocess_exec(
            *engine_command(job), env=engine_env(emu.url), stdout=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(emu.log.arrived.wait(), 600)
            while not emu.log.first_ids[0]:  # filled in when the answer is ready
                await asyncio.sleep(0.01)
        finally:
            engine.send_signal(signal.SIGKILL)
            await engine.wait()
        return emu.log.arrivals[0] - spawned, emu.log.first_ids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = data_file("contact", args.records)
    root = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    job = write_job(root / "job", data, "contact", rate_limit_per_second=10_000)
    state = job.parent / "state"
    took = asyncio.run(crash(job, args.records))
    store = open_checkpoint_store(f"sqlite:///{state / 'checkpoints.db'}", job.stem)
    (checkpoint,) = store.checkpoints("contacts")
    store.close()
    offset, line = checkpoint.position
    size = data.stat().st_size
    print(f"crash: SIGKILL after {took:.0f} s, checkpoint at line {line:,} of {args.records:,}, "
          f"byte {offset:,} of {size:,} ({offset / size:.1%})")
    crashed = root / "crashed-state"
    shutil.copytree(state, crashed)
    results: dict[str, list[tuple[float, str]]] = {"resume after crash": [], "fresh start": []}
    for _ in range(args.repeat):
        for name in results:
            shutil.rmtree(state, ignore_errors=True)
            if name == "resume after crash":
                shutil.copytree(crashed, state)
            results[name].append(asyncio.run(first_request(job)))
    shutil.rmtree(root)
    print(f"time from spawning `ometria-sync run` to the emulator's first request, "
          f"median of {args.repeat}")
    print(f"{'start':<20} {'median s':>8} {'min-max s':>11} {'first record of first request':>30}")
    for name, runs in results.items():
        times = [t for t, _ in runs]
        ids = sorted({i for _, i in runs})
        where = ", ".join(f"{i} (line {int(i[1:]) + 1:,})" for i in ids)
        print(f"{name:<20} {statistics.median(times):>8.2f} "
              f"{f'{min(times):.2f}-{max(times):.2f}':>11} {where:>30}")


if __name__ == "__main__":
    main()
