"""CPU per record with the network out of the way: records/s from file to encoded payloads.

    .venv/bin/python bench/bench_cpu.py [--contacts 500000] [--orders 200000] [--repeat 5]

Runs the real engine in-process: ``run_job`` with ``RunOptions(dry_run=True)`` (no pacing, no
checkpoint writes) and a pusher that keeps nothing. Every record is read from a JSON Lines file
and decoded (the jsonl source), validated against the Ometria schema and encoded with sorted keys
(the batcher), hashed and looked up for change detection (a first run: nothing is known yet),
cut into batches of 100, and joined into request bodies (the dispatchers). Fresh state each run.

Prints, per record type and with change detection on and off, the median over ``--repeat``
runs of records per wall second and per CPU second (process CPU time, all threads; the file is
decoded on the event loop's thread too, so CPU/wall near 1.0 means one core).
Runs of all four variants alternate, so that machine noise hits them alike. Profile with e.g.
``py-spy record -r 500 -f raw -o /tmp/cpu.txt -- .venv/bin/python bench/bench_cpu.py --repeat 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import KEY, data_file, write_job

from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.dry_run import NullPusher
from ometria_sync.pipeline.job_run import RunOptions, run_job


async def one_run(job_path: Path) -> tuple[int, float, float]:
    """(records sent, wall seconds, CPU seconds) of one dry run with a null pusher."""
    job = load_job(job_path)
    wall, cpu = time.perf_counter(), time.process_time()
    result = await run_job(job, RunOptions(dry_run=True, progress="off"),
                           pusher_factory=lambda stream: NullPusher(), handle_signals=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.exit_code == 0, result
    return result.streams[0].sent, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=500_000, help="0 to skip")
    parser.add_argument("--orders", type=int, default=200_000, help="0 to skip")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("json", "error")
    os.environ["OMETRIA_API_KEY"] = KEY
    root = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    variants: dict[tuple[str, bool], Path] = {}
    for record_type, n in (("contact", args.contacts), ("order", args.orders)):
        if n:
            data = data_file(record_type, n)
            for detect in (True, False):
                folder = root / f"{record_type}-{detect}"
                variants[(record_type, detect)] = write_job(folder, data, record_type,
                                                            change_detection=detect)
    runs: dict[tuple[str, bool], list[tuple[int, float, float]]] = {v: [] for v in variants}
    for _ in range(args.repeat):
        for variant, job in variants.items():
            shutil.rmtree(job.parent / "state", ignore_errors=True)
            runs[variant].append(asyncio.run(one_run(job)))
    shutil.rmtree(root)
    print(f"dry run, null pusher, in-process; median of {args.repeat} runs")
    print(f"{'type':<8} {'change detection':<16} {'records':>9} {'records/s':>10} "
          f"{'records/CPU-s':>13} {'us/record':>9} {'CPU/wall':>8}")
    for (record_type, detect), results in runs.items():
        n = results[0][0]
        per_wall = statistics.median(sent / wall for sent, wall, _ in results)
        per_cpu = statistics.median(sent / cpu for sent, _, cpu in results)
        busy = statistics.median(cpu / wall for _, wall, cpu in results)
        print(f"{record_type:<8} {'on' if detect else 'off':<16} {n:>9,} {per_wall:>10,.0f} "
              f"{per_cpu:>13,.0f} {1e6 / per_cpu:>9.1f} {busy:>8.2f}")


if __name__ == "__main__":
    main()
