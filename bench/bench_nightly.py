"""Issue 34's four goals in one run, each figure beside its baseline, and a verdict for each.

    .venv/bin/python bench/bench_nightly.py [--repeat 3] [--sizes 1000000,10000000] \
        [--verify-sizes 1000000]

Runs, one after the other (each prints its own table as it goes):

1. ``bench_unchanged.py --skip-first-run``: unchanged reruns of six sources (contacts and
   orders as JSON Lines, contacts as CSV three ways, orders as CSV) against ``json.loads`` of
   the same records; goal >= 2.0x each.
2. ``bench_first_run.py --dry-run``: a first run with change detection of 200,000 contacts and
   100,000 orders against ``json.loads`` of the same lines, as a dry run (the issue's own
   measure: its "today 0.21x and 0.18x") and as a sending run (checkpoints and change hashes
   written on every acknowledgement); goal >= 0.5x, judged on the dry run.
3. ``bench_unchanged.py --skip-unchanged``: a first run of 1,000,000 contacts with PostgreSQL
   state against the same with SQLite state (wall time); goal <= 1.2x.
4. ``bench_first_run.py --memory``: peak RSS of change detection (first run, two unchanged
   reruns) over each size of ``--sizes`` ids, and of ``verify --all`` over each of
   ``--verify-sizes`` (at 10 million ids it reads for 40 minutes: 96.9 MB in
   ``BENCHMARKS.md``, flat from a million on); goal < 150 MB.

Then a summary: each goal's figures and whether it is met. Exit 0 when every goal is met, 1
otherwise (2: a figure could not be read from a script's output). Takes about 10 minutes
with ``--sizes 1000000`` on a quiet machine, and 20 minutes more with 10 million ids.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
#: the goals: ratio of an unchanged rerun, of a first run, PostgreSQL over SQLite; peak MB
UNCHANGED_AT_LEAST = 2.0
FIRST_RUN_AT_LEAST = 0.5
POSTGRES_AT_MOST = 1.2
PEAK_MB_BELOW = 150.0


class Verdict(msgspec.Struct, frozen=True):
    goal: str
    figure: str
    met: bool


def _run(script: str, *args: str) -> str:
    """Run a bench script, echoing its output as it comes; its whole output."""
    print(f"\n$ {Path(sys.executable).name} bench/{script} {' '.join(args)}", flush=True)
    proc = subprocess.Popen([sys.executable, str(HERE / script), *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"bench/{script} failed (exit {proc.returncode})")
    return "".join(lines)


class Unreadable(Exception):
    """A figure is missing from a script's output (its format changed): exit 2."""


def unchanged(out: str) -> list[Verdict]:
    """Each source's rerun against ``json.loads`` of the same records."""
    found = re.findall(r"^(\S.{15}) .*?(\d+\.\d+)x .* vs json\.loads$", out, re.MULTILINE)
    if len(found) != 6:
        raise Unreadable(f"unchanged reruns: {len(found)} sources read, 6 expected")
    return [Verdict(f"unchanged rerun, {name.strip()}", f"{float(r):.2f}x json.loads",
                    float(r) >= UNCHANGED_AT_LEAST) for name, r in found]


def first_runs(out: str) -> list[Verdict]:
    """The dry run's ratio decides; the sending run's is shown beside it."""
    verdicts = []
    for kind in ("contact", "order"):
        m = re.search(rf"^{kind}\s.*?(\d+\.\d+)x\s+dry run [\d,]+/CPU-s (\d+\.\d+)x", out,
                      re.MULTILINE)
        if m is None:
            raise Unreadable(f"first run of {kind}s not read")
        sending, dry = float(m[1]), float(m[2])
        verdicts.append(Verdict(f"first run, {kind}s", f"{dry:.2f}x json.loads dry run "
                                f"({sending:.2f}x sending)", dry >= FIRST_RUN_AT_LEAST))
    return verdicts


def postgres(out: str) -> list[Verdict]:
    m = re.search(r"SQLite ([\d.]+) s, PostgreSQL ([\d.]+) s, ratio (\d+\.\d+)x", out)
    if m is None:
        raise Unreadable("PostgreSQL against SQLite not read")
    return [Verdict("first run of 1M, PostgreSQL state", f"{float(m[3]):.2f}x SQLite's "
                    f"({m[2]} s against {m[1]} s)", float(m[3]) <= POSTGRES_AT_MOST)]


def memory(out: str, sizes: list[int], rows_each: int) -> list[Verdict]:
    """The peak of the ``rows_each`` rows (runs, or verify) at each size."""
    verdicts = []
    for n in sizes:
        rows = re.findall(rf"^\s*{n:,}\s+[\d.]+ (.+?)\s+([\d.]+|nan)\s+[\d.]+$", out, re.MULTILINE)
        if len(rows) != rows_each:
            raise Unreadable(f"memory at {n:,} ids: {len(rows)} rows read, {rows_each} expected")
        peak = max(float(mb) for _, mb in rows)
        worst = next(what for what, mb in rows if float(mb) == peak)
        what = "verify --all" if rows_each == 1 else "change detection"
        verdicts.append(Verdict(f"peak RSS, {what}, {n:,} ids", f"{peak:.1f} MB ({worst.strip()})",
                                peak < PEAK_MB_BELOW))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="ids of the memory runs, comma-separated")
    parser.add_argument("--verify-sizes", default="1000000",
                        help="ids of the verify --all memory runs, comma-separated")
    args = parser.parse_args()
    repeat = ("--repeat", str(args.repeat))
    sizes = [int(s) for s in args.sizes.split(",")]
    verify_sizes = [int(s) for s in args.verify_sizes.split(",")]
    outputs = (_run("bench_unchanged.py", "--skip-first-run", *repeat),
               _run("bench_first_run.py", "--dry-run", *repeat),
               _run("bench_unchanged.py", "--skip-unchanged", *repeat),
               _run("bench_first_run.py", "--memory", "--sizes", args.sizes, "--no-verify"),
               _run("bench_first_run.py", "--memory", "--sizes", args.verify_sizes,
                    "--only-verify"))
    try:
        verdicts = (unchanged(outputs[0]) + first_runs(outputs[1]) + postgres(outputs[2])
                    + memory(outputs[3], sizes, 3) + memory(outputs[4], verify_sizes, 1))
    except Unreadable as exc:
        print(f"\ncannot read a figure: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print("\nissue 34's goals")
    width = max(len(v.goal) for v in verdicts)
    for v in verdicts:
        print(f"  {v.goal:<{width}}  {v.figure:<48} {'met' if v.met else 'NOT MET'}")
    raise SystemExit(0 if all(v.met for v in verdicts) else 1)


if __name__ == "__main__":
    main()
