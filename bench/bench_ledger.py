"""The ledger's CPU per record on a run that refuses nothing: this tree against the code before
the ledger, side by side.

    .venv/bin/python bench/bench_ledger.py [--records 100000] [--repeat 5] [--before 19fa656]

Each run is a child process running the real engine in-process on a sending run's path
(``run_job`` with checkpoints, change hashes and the ledger written to a fresh SQLite state) with
an unbounded pacer and a pusher that acknowledges everything and keeps nothing, over a JSON Lines
file of valid contacts. CPU is process CPU time around ``run_job`` (all threads, the state
thread's SQLite work included), so start-up and imports are left out. Three variants alternate,
in an order that rotates each round, so that machine noise hits them alike:

* ``before``: the tree of commit ``--before`` (extracted with ``git archive``: no ledger;
  ``--before-rows 1000`` seeds its ledger too, for a baseline that has one);
* ``ledger empty``: this tree, a first run (nothing in the ledger, nothing refused);
* ``ledger 1,000 rows``: this tree, with 1,000 refused records of earlier runs in the ledger
  (ids the file does not hold), so every record is looked up in it.

Prints the median records per CPU second and microseconds per record of each, and the ratio to
``before``. On a shared host those swing by several percent between runs; ``--callgrind``
counts instructions instead (``valgrind --tool=callgrind``, deterministic up to the state's
time-based hash writes) at two sizes, the difference being the per-record work:

    .venv/bin/python bench/bench_ledger.py --callgrind [--sizes 500,2500]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import KEY, data_file, write_job

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.dry_run import NullPusher
from ometria_sync.pacing import Pacer
from ometria_sync.pipeline.job_run import RunOptions, run_job

async def seed(job, rows):
    from ometria_sync.state import LedgerEntry, open_state
    state = await open_state(job.settings.state.checkpoint_url, job=job.name,
                             streams=job.stream_names)
    state.put_ledger([LedgerEntry("contacts", f"old{n}", "email: bad", n, "r0", "t0", "r0",
                                  "t0") for n in range(rows)])
    await state.aclose()

async def main():
    configure_logging("json", "error")
    job = load_job(sys.argv[2])
    if int(sys.argv[3]):
        await seed(job, int(sys.argv[3]))
    wall, cpu = time.perf_counter(), time.process_time()
    result = await run_job(job, RunOptions(progress="off"), pacer=Pacer(1e9),
                           pusher_factory=lambda stream: NullPusher(), handle_signals=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.exit_code == 0, result
    print(json.dumps([result.streams[0].sent, wall, cpu]))

asyncio.run(main())
"""


def one_run(tree: Path, job: Path, seed: int) -> tuple[int, float, float]:
    """(records sent, wall seconds, CPU seconds) of one run in a child process."""
    shutil.rmtree(job.parent / "state", ignore_errors=True)
    env = {**os.environ, "OMETRIA_API_KEY": KEY}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(job), str(seed)],
                         check=True, capture_output=True, text=True, env=env, cwd=job.parent)
    sent, wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    return int(sent), float(wall), float(cpu)


def instructions(tree: Path, job: Path, seed: int, out: Path) -> int:
    """Instructions (every thread) of one run in a child process under callgrind."""
    shutil.rmtree(job.parent / "state", ignore_errors=True)
    env = {**os.environ, "OMETRIA_API_KEY": KEY}
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, "-c", CHILD, str(tree), str(job), str(seed)],
                   check=True, capture_output=True, text=True, env=env, cwd=job.parent)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction count in {out}")


def by_instructions(root: Path, variants: dict[str, tuple[Path, int]],
                    sizes: list[int]) -> None:
    counts: dict[str, list[int]] = {name: [] for name in variants}
    for size in sizes:
        data = data_file("contact", size)
        for i, (name, (tree, seed)) in enumerate(variants.items()):
            job = write_job(root / f"cg{size}-{i}", data, "contact")
            counts[name].append(instructions(tree, job, seed, root / f"cg{size}-{i}.out"))
    small, large = sizes
    print(f"callgrind instructions of a whole run (every thread), {small:,} and {large:,} "
          "valid contacts; per record = the difference / the records between")
    print(f"{'variant':<18} {small:>14,} {large:>14,} {'per record':>11} {'vs before':>9}")
    base = (counts["before"][1] - counts["before"][0]) / (large - small)
    for name, (at_small, at_large) in counts.items():
        per_record = (at_large - at_small) / (large - small)
        print(f"{name:<18} {at_small:>14,} {at_large:>14,} {per_record:>11,.0f} "
              f"{per_record / base - 1:>+9.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default="19fa656",
                        help="the commit before the ledger (its tree is the baseline)")
    parser.add_argument("--before-rows", type=int, default=0,
                        help="rows in the baseline's ledger (a baseline that has one)")
    parser.add_argument("--callgrind", action="store_true",
                        help="count instructions under valgrind at two --sizes instead")
    parser.add_argument("--sizes", default="500,2500")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    before = root / "before"
    before.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "ometria_sync"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    variants = {
        "before": (before, args.before_rows),
        "ledger empty": (ROOT, 0),
        "ledger 1,000 rows": (ROOT, 1000),
    }
    if args.callgrind:
        by_instructions(root, variants, [int(n) for n in args.sizes.split(",")])
        shutil.rmtree(root)
        return
    data = data_file("contact", args.records)
    jobs = {name: write_job(root / f"job{i}", data, "contact")
            for i, name in enumerate(variants)}
    runs: dict[str, list[tuple[int, float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for round_no in range(args.repeat):  # the order rotates: no variant always goes first
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            tree, seed = variants[name]
            runs[name].append(one_run(tree, jobs[name], seed))
    shutil.rmtree(root)
    print(f"sending run (checkpoints, change hashes, ledger in SQLite), null pusher, unbounded "
          f"pacer, {args.records:,} valid contacts; median of {args.repeat} runs, rotating")
    print(f"{'variant':<18} {'records':>8} {'records/CPU-s':>13} {'us/record':>9} "
          f"{'CPU vs before':>13}")
    base = statistics.median(cpu / sent for sent, _, cpu in runs["before"])
    for name, results in runs.items():
        per_record = statistics.median(cpu / sent for sent, _, cpu in results)
        print(f"{name:<18} {results[0][0]:>8,} {1 / per_record:>13,.0f} "
              f"{per_record * 1e6:>9.2f} {per_record / base - 1:>+12.1%}")


if __name__ == "__main__":
    main()
