"""Memory: peak RSS of a whole run, for 100k, 1M and 5M contacts. It should stay flat.

    .venv/bin/python bench/bench_memory.py [--sizes 100000,1000000,5000000] [--repeat 3]

Each run is a fresh child process (this script with ``--child JOB``) that runs the real engine
in-process in sending mode: the jsonl source, validation, batching, the shared pacer (limit
10,000 req/s), the dispatchers, a checkpoint and change hashes written to SQLite after every
batch, with a pusher that accepts everything and keeps nothing in place of the network. Fresh
state each run. Peak RSS is the child's ``ru_maxrss`` from ``wait4``. The ``imports only`` row
is a child that imports the engine and exits: the floor every run pays.

Memory held by a run is mostly batches: up to one per dispatcher in flight plus as many queued,
so it is measured at ``--concurrency 8`` (the default at 4 req/s) and 256 (the maximum the
default gives, from 128 req/s up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(job_path: str) -> None:
    """Run the job with a null pusher (in the child process)."""
    from ometria_sync.config import load_job
    from ometria_sync.logs import configure_logging
    from ometria_sync.ometria.dry_run import NullPusher
    from ometria_sync.pipeline.job_run import RunOptions, run_job

    configure_logging("json", "error")
    if job_path == "-":  # imports only
        return
    job = load_job(job_path)
    result = asyncio.run(run_job(job, RunOptions(progress="off"), handle_signals=False,
                                 pusher_factory=lambda stream: NullPusher()))
    if result.exit_code != 0 or result.streams[0].sent == 0:
        raise SystemExit(f"run failed: {result}")


def measure(job: str) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--child", job])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child exited {proc.returncode}")
    return usage.ru_maxrss / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5000000",
                        help="records per run, comma-separated")
    parser.add_argument("--concurrency", default="8,256",
                        help="ometria.concurrency values, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # before importing the benchmark helpers: the child holds only the engine
        child(args.child)
        return
    from benchlib import data_file, write_job

    sizes = [int(x) for x in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    jobs = {f"{n:,} contacts, concurrency {c}": write_job(
        root / f"{n}-{c}", data_file("contact", n), "contact", rate_limit_per_second=10_000,
        concurrency=int(c)) for c in args.concurrency.split(",") for n in sizes}
    results: dict[str, list[tuple[float, float]]] = {"imports only": []}
    results.update({name: [] for name in jobs})
    for _ in range(args.repeat):
        results["imports only"].append(measure("-"))
        for name, job in jobs.items():
            shutil.rmtree(job.parent / "state", ignore_errors=True)
            results[name].append(measure(str(job)))
            print(f"({name}: {results[name][-1][0]:.1f} MB)", file=sys.stderr, flush=True)
    shutil.rmtree(root)
    print(f"peak RSS of the whole run (child process, ru_maxrss), median of {args.repeat}")
    print(f"{'run':<34} {'peak RSS MB':>11} {'min-max MB':>13} {'wall s':>7}")
    for name, runs in results.items():
        peaks = [peak for peak, _ in runs]
        print(f"{name:<34} {statistics.median(peaks):>11.1f} "
              f"{f'{min(peaks):.1f}-{max(peaks):.1f}':>13} "
              f"{statistics.median(w for _, w in runs):>7.1f}")
    sizes_mb = (data_file("contact", n).stat().st_size / 2**20 for n in sizes)
    print("input files: " + ", ".join(f"{n:,} contacts {mb:,.0f} MB"
                                      for n, mb in zip(sizes, sizes_mb, strict=True)))


if __name__ == "__main__":
    main()
