"""A first run against bare ``json.loads`` of the same lines, and memory by source size.

    .venv/bin/python bench/bench_first_run.py [--contacts 200000] [--orders 100000] [--repeat 3]
    .venv/bin/python bench/bench_first_run.py --memory [--sizes 1000000,10000000] \
        [--no-verify | --only-verify]

Speed (the default): in one process, alternating so that machine noise hits both alike, each
round times ``json.loads`` of every line of the file (the lines read into memory first), then a
first run of the same file: the real engine in-process, sending mode (not a dry run: checkpoints
and change hashes are written, on the state thread), change detection on, fresh state, the
pacer at 10,000 req/s so that it never waits, and a pusher that acknowledges every record.
Prints the medians of records per CPU second (process CPU time, all threads) and their ratio.
``--dry-run``: each round also runs a dry run of the same file (``RunOptions(dry_run=True)``:
nothing acknowledged, so no checkpoints and no change hashes written; lookups as in a first
run), the measure the issue's "today 0.21x and 0.18x" were taken with (``BENCHMARKS.md``).
``--state-cost``: each round also runs the same first run with the change index made free
(lookups find nothing at once, hash writes are done at once: ``free_change_index``); the
difference is what change detection's state side cost that run, in CPU seconds.

``--memory``: peak RSS (``VmHWM``, each a fresh child process) of change detection over ``N``
ids, a first run and then two unchanged reruns (the file touched before each: a new export of
the same lines, read from the top; the first rerun decodes every line and keeps its groups, the
second skips them undecoded), and of ``verify --all --method list`` over the same ids
against an emulator (a child process of its own) that holds every one of them, loaded straight
into its store. The ids are small contacts made by :func:`compact_file` (about 60 bytes a line).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import DATA_DIR, KEY, PEAK_SCRIPT, data_file, engine_env, write_job

from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.dry_run import NullPusher
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.state.sqlite_store import SqliteState

HERE = Path(__file__).resolve().parent


def loads_cpu(path: Path) -> tuple[int, float]:
    """(lines, CPU seconds) of ``json.loads`` of every line of ``path``."""
    lines = path.read_bytes().splitlines()
    loads = json.loads
    cpu = time.process_time()
    for line in lines:
        loads(line)
    return len(lines), time.process_time() - cpu


async def first_run(job_path: Path, dry_run: bool = False) -> tuple[int, float]:
    """(records sent, CPU seconds) of a first run with a pusher that acknowledges all (a dry
    run: that would be sent)."""
    job = load_job(job_path)
    cpu = time.process_time()
    result = await run_job(job, RunOptions(progress="off", dry_run=dry_run),
                           pusher_factory=lambda stream: NullPusher(), handle_signals=False)
    cpu = time.process_time() - cpu
    assert result.exit_code == 0, result
    return result.streams[0].sent, cpu


@contextlib.contextmanager
def free_change_index() -> Iterator[None]:
    """SQLite's change-index lookups find nothing and its hash writes are done at once."""
    saved = SqliteState.lookup, SqliteState.remember

    async def lookup(self: SqliteState, stream_id: int, id_hashes: list[int]) -> dict[int, int]:
        return {}

    def remember(self: SqliteState, *args: Any) -> concurrent.futures.Future[object]:
        done: concurrent.futures.Future[object] = concurrent.futures.Future()
        done.set_result(None)
        return done

    SqliteState.lookup = lookup  # type: ignore[method-assign]
    SqliteState.remember = remember  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SqliteState.lookup, SqliteState.remember = saved  # type: ignore[method-assign]


def speed(args: argparse.Namespace) -> None:
    configure_logging("json", "error")
    os.environ["OMETRIA_API_KEY"] = KEY
    root = Path(tempfile.mkdtemp(prefix="bench-first-run-"))
    jobs: dict[str, tuple[Path, Path]] = {}
    for record_type, n in (("contact", args.contacts), ("order", args.orders)):
        if n:
            data = data_file(record_type, n)
            jobs[record_type] = (data, write_job(root / record_type, data, record_type,
                                                 rate_limit_per_second=10_000))
    loads: dict[str, list[float]] = {t: [] for t in jobs}
    runs: dict[str, list[float]] = {t: [] for t in jobs}
    costs: dict[str, list[float]] = {t: [] for t in jobs}
    dry: dict[str, list[float]] = {t: [] for t in jobs}
    for _ in range(args.repeat):
        for record_type, (data, job) in jobs.items():
            n, cpu = loads_cpu(data)
            loads[record_type].append(n / cpu)
            shutil.rmtree(job.parent / "state", ignore_errors=True)
            sent, cpu = asyncio.run(first_run(job))
            assert sent == n, (sent, n)
            runs[record_type].append(sent / cpu)
            if args.dry_run:
                shutil.rmtree(job.parent / "state", ignore_errors=True)
                would, dry_cpu = asyncio.run(first_run(job, dry_run=True))
                assert would == n, (would, n)
                dry[record_type].append(would / dry_cpu)
            if args.state_cost:
                shutil.rmtree(job.parent / "state", ignore_errors=True)
                with free_change_index():
                    _, free = asyncio.run(first_run(job))
                costs[record_type].append(cpu - free)
    shutil.rmtree(root)
    print(f"first run (change detection on, null pusher, in-process) against json.loads of the "
          f"same lines; median of {args.repeat}, alternating")
    print(f"{'type':<8} {'records':>9} {'json.loads/CPU-s':>17} {'first run/CPU-s':>16} "
          f"{'ratio':>6}")
    for record_type, (data, _) in jobs.items():
        base, run = statistics.median(loads[record_type]), statistics.median(runs[record_type])
        ratios = [r / b for r, b in zip(runs[record_type], loads[record_type], strict=True)]
        n = sum(1 for _ in data.open("rb"))
        print(f"{record_type:<8} {n:>9,} {base:>17,.0f} {run:>16,.0f} "
              f"{statistics.median(ratios):>5.2f}x", end="")
        if dry[record_type]:
            dry_ratios = [r / b for r, b in zip(dry[record_type], loads[record_type], strict=True)]
            print(f"   dry run {statistics.median(dry[record_type]):,.0f}/CPU-s "
                  f"{statistics.median(dry_ratios):.2f}x", end="")
        if costs[record_type]:
            print(f"   state side {statistics.median(costs[record_type]):.2f} CPU-s "
                  f"({' '.join(f'{c:.2f}' for c in costs[record_type])})", end="")
        print()
    print("ratio = median over rounds of (first run records/CPU-s) / (json.loads lines/CPU-s), "
          "each pair measured back to back")


# --- memory -----------------------------------------------------------------------------------

def compact_file(n: int) -> Path:
    """``n`` small contacts (an id, a collection, an email) as JSON Lines, made once."""
    path = DATA_DIR / f"ids-{n}.jsonl"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"(making {path}, once)", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        step = 100_000
        for start in range(0, n, step):
            fh.write("".join(
                f'{{"@collection":"shop","id":"c{i}","email":"u{i}@example.com"}}\n'
                for i in range(start, min(n, start + step))))
    tmp.replace(path)
    return path


def _peak_mb() -> float:
    """This process's peak RSS so far (``VmHWM``), in MB."""
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith("VmHWM")).split()[1]) / 1024


def _child_run(job_path: str) -> None:
    """(In a child) a run of the job with a pusher that acknowledges all; prints peak MB."""
    configure_logging("json", "error")
    os.environ["OMETRIA_API_KEY"] = KEY
    if job_path != "-":  # "-": imports only
        sent, _ = asyncio.run(first_run(Path(job_path)))
        print(f"sent {sent}", file=sys.stderr)
    print(f"{_peak_mb():.1f}", flush=True)


def _measure_run(job: str) -> tuple[float, float]:
    """(peak RSS MB, wall seconds) of one run in a fresh child."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, __file__, "--child-run", job], capture_output=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {proc.stderr.decode()[-2000:]}")
    return float(proc.stdout.decode().split()[-1]), time.monotonic() - started


def _measure_verify(url: str, job: str) -> tuple[int, float, float]:
    """``verify --all --method list`` in a fresh process: (exit code, peak MB, wall s)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, "verify", job, "--all", "--method",
                           "list", "--json", "--log-format", "json", "-q"],
                          env=engine_env(url), capture_output=True, check=False)
    err = proc.stderr.decode()
    peak = [line for line in err.splitlines() if line.startswith("VmHWM_KB ")]
    if proc.returncode not in (0, 3) or not peak:
        print(err[-2000:], file=sys.stderr)
    mb = int(peak[-1].split()[1]) / 1024 if peak else float("nan")
    return proc.returncode, mb, time.monotonic() - started


def _loaded_emulator(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """An emulator in a child process whose store holds every contact of ``data``."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(data)],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"emulator did not start: {url!r}")
    return proc, url


async def _serve(data: Path) -> None:
    """(In the emulator child) every contact of ``data`` put straight into the store, as
    imported; then the URL printed, and served until SIGTERM."""
    import gc
    import signal

    import msgspec
    from aiohttp import web

    from ometria_sync.emulator import EmulatorOptions
    from ometria_sync.emulator.app import create_app
    from ometria_sync.emulator.behaviour import STORE

    # as fast as the job (10,000 req/s): verify is measured, not Ometria's read limit
    app = create_app(EmulatorOptions(host="127.0.0.1", port=0, api_key=KEY, seed=1,
                                     rate=10_000))
    store = app[STORE]
    table: dict[str, bytes] = {}
    decode, encode = msgspec.json.decode, msgspec.json.encode
    with data.open("rb") as fh:
        for line in fh:
            record = decode(line)
            record["@type"] = "contact"
            table[f"{record['@collection']}/{record['id']}"] = encode(record)
    store._tables["contact"] = table
    store.version += 1
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gc.freeze()
    print(f"http://127.0.0.1:{port}/v2", flush=True)
    await stop.wait()
    await runner.cleanup()


def memory(args: argparse.Namespace) -> None:
    print("peak RSS (VmHWM) of one fresh process each; ids: small contacts (id, collection, "
          "email)")
    print(f"{'ids':>11} {'file MB':>8} {'what':<34} {'peak MB':>8} {'wall s':>7}")
    mb, wall = _measure_run("-")
    print(f"{'-':>11} {'-':>8} {'imports only':<34} {mb:>8.1f} {wall:>7.1f}", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        data = compact_file(n)
        file_mb = data.stat().st_size / 1e6
        with tempfile.TemporaryDirectory(prefix="bench-first-run-mem-") as tmp:
            job = str(write_job(Path(tmp), data, "contact", rate_limit_per_second=10_000))
            for what in () if args.only_verify else (
                    "change detection, first run", "change detection, unchanged rerun",
                    "unchanged again (groups kept)"):
                os.utime(data)  # a new export of the same lines: read again from the top
                mb, wall = _measure_run(job)
                print(f"{n:>11,} {file_mb:>8.1f} {what:<34} {mb:>8.1f} {wall:>7.1f}",
                      flush=True)
            if args.no_verify:
                continue
            emulator, url = _loaded_emulator(data)
            try:
                code, mb, wall = _measure_verify(url, job)
            finally:
                emulator.terminate()
                emulator.wait()
            print(f"{n:>11,} {file_mb:>8.1f} {'verify --all (exit ' + str(code) + ')':<34} "
                  f"{mb:>8.1f} {wall:>7.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200_000, help="0 to skip")
    parser.add_argument("--orders", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true",
                        help="also a dry run of the same file (the issue's own measure)")
    parser.add_argument("--state-cost", action="store_true",
                        help="also the first run with the change index made free")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--no-verify", action="store_true", help="only the runs")
    parser.add_argument("--only-verify", action="store_true", help="only verify --all")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_run:
        _child_run(args.child_run)
    elif args.serve:
        asyncio.run(_serve(args.serve))
    elif args.memory:
        memory(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
