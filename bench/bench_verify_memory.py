"""Peak RSS of ``ometria-sync verify --all`` by source size: does memory grow with the source?

A contacts file (100,000 by default) is synced into an emulator running in a child process of
its own; then ``verify --all --method list --json`` runs in a fresh process, which reports its
own peak RSS (``VmHWM`` from ``/proc/self/status`` at exit: ``ru_maxrss`` of a child can show
its parent's size). ``--ledger-row`` puts a row in the job's ledger first, so that every
verify walks its verified ids for rows to drop. ``--engine name=DIR`` runs another source tree
side by side (e.g. a ``git worktree`` of an older commit) with the same interpreter and data. A
``--version`` row is the interpreter and imports alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import KEY, data_file, engine_env, logged_emulator_process

_PEAK = ("import atexit, runpy, sys\n"
         "def peak():\n"
         "    with open('/proc/self/status') as fh:\n"
         "        hwm = [l for l in fh if l.startswith('VmHWM')][0].split()[1]\n"
         "    sys.stderr.write(f'\\nVmHWM_KB {hwm}\\n')\n"
         "atexit.register(peak)\n"
         "sys.argv = ['ometria-sync', *sys.argv[1:]]\n"
         "runpy.run_module('ometria_sync', run_name='__main__')\n")


def _job(folder: Path, contacts: Path) -> Path:
    job = folder / "job.toml"
    job.write_text(
        "[ometria]\nrate_limit_per_second = 5000\n\n[report]\nprogress = \"off\"\n\n"
        f"[[streams]]\nname = \"contacts\"\nrecord_type = \"contact\"\n"
        f"source = {{ kind = \"jsonl\", path = \"{contacts}\" }}\n")
    return job


def _ledger_row(db_path: Path) -> None:
    """One undelivered row in the job's ledger, for a record no verify ever checks."""
    db = sqlite3.connect(db_path)
    try:
        db.execute("INSERT INTO ledger VALUES ('job', 'contacts', 'elsewhere/none', "
                   "'undelivered', 'bench', 1, 'r', 't', 'r', 't', 1, '{}')")
        db.commit()
    finally:
        db.close()


async def _cli(url: str, tree: str, *args: str) -> tuple[int, float, float]:
    """Exit code, peak RSS in MB, wall seconds."""
    started = time.monotonic()
    env = engine_env(url)
    env["PYTHONPATH"] = tree
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PEAK, *args, "--log-format", "json", "-q", env=env, cwd=tree,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    peak = [line for line in err.decode().splitlines() if line.startswith("VmHWM_KB ")]
    if proc.returncode not in (0, 3) or not peak:
        print(err.decode()[-2000:], file=sys.stderr)
    mb = int(peak[-1].split()[1]) / 1024 if peak else float("nan")
    return proc.returncode, mb, time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", action="append", default=[], metavar="NAME=DIR",
                        help="another source tree to measure (default: this one as 'this')")
    parser.add_argument("--ledger-row", action="store_true",
                        help="put one undelivered row (an id the file does not hold) in the "
                             "job's ledger first: every verify then walks its verified ids "
                             "for rows to drop (issue 31)")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    engines = [tuple(e.split("=", 1)) for e in args.engine] or [("this", here)]
    print(f"peak RSS of `verify --all --method list` (VmHWM), median of {args.repeat}")
    print(f"{'engine':>10} {'contacts':>9} {'file MB':>8} {'peak MB':>8} {'wall s':>7} "
          f"{'exit':>5}")
    for size in (int(s) for s in args.sizes.split(",")):
        contacts = data_file("contact", size)
        file_mb = os.path.getsize(contacts) / 1e6
        with tempfile.TemporaryDirectory(prefix="bench-verify-mem-") as tmp:
            job = str(_job(Path(tmp), contacts))
            async with logged_emulator_process(api_key=KEY, rate=5000) as emu:
                code, _, _ = await _cli(emu.url, here, "run", job)
                if code != 0:
                    raise SystemExit(f"run: exit {code}")
                await asyncio.sleep(2)  # the emulator's import queue drains
                if args.ledger_row:
                    _ledger_row(Path(tmp) / "state" / "checkpoints.db")
                for name, tree in engines:
                    peaks, walls, codes = [], [], set()
                    for _ in range(args.repeat):
                        code, peak, wall = await _cli(emu.url, tree, "verify", job, "--all",
                                                      "--method", "list", "--json")
                        peaks.append(peak)
                        walls.append(wall)
                        codes.add(code)
                    print(f"{name:>10} {size:>9} {file_mb:>8.1f} "
                          f"{statistics.median(peaks):>8.1f} {statistics.median(walls):>7.1f} "
                          f"{','.join(map(str, codes)):>5}", flush=True)
    for name, tree in engines:
        _, peak, _ = await _cli("http://127.0.0.1:9/v2", tree, "--version")
        print(f"{name:>10} {'imports':>9} {'-':>8} {peak:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
