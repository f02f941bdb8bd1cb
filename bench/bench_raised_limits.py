"""Raised limits: does the engine keep up with 50 and 200 requests/s, and at what CPU cost?

    .venv/bin/python bench/bench_raised_limits.py [--rates 50,200] [--seconds 60] [--repeat 3]
        [--change-detection on|off|both]

For each rate, the engine (``ometria-sync run`` in a subprocess) sends ``rate x 100 x seconds``
contacts to the emulator (``ometria-sync emulator`` in another subprocess) whose sliding-window
limit is that rate. The job sets ``rate_limit_per_second`` to the rate and leaves ``concurrency``
at its default (rate x 2, at most 256). The emulator answers after ``--latency-ms`` and its import
queue is made large and fast (``--queue-capacity 10**9 --drain-per-second 10**9``), so that only
the rate limit pushes back.

Measured: achieved rate = (requests - 1) / (last arrival - first arrival), from the emulator's
``/_emulator/stats``; the accepted (2xx) share of that rate; 429 answers; most requests inside
any sliding second; and CPU use, as CPU seconds / wall seconds over the engine's life (start
to exit): the engine's from ``wait4`` rusage, the emulator's from ``/proc/PID/stat`` over the
same interval.
Prints medians of ``--repeat`` trials. ``--change-detection both`` runs each trial with the
stream's change detection on and then off, side by side, to show what it costs.
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
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    KEY,
    cpu_seconds,
    data_file,
    drop_bench_schemas,
    start_engine,
    write_job,
)


def start_emulator(rate: float, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "ometria_sync", "emulator", "--port", "0", "--api-key", KEY,
           "--rate", str(rate), "--latency", str(latency_ms), "--queue-capacity", str(10**9),
           "--drain-per-second", str(10**9), "--log-format", "json", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def stats(url: str) -> dict[str, Any]:
    base = url.rsplit("/v2", 1)[0]
    with urllib.request.urlopen(f"{base}/_emulator/stats", timeout=10) as resp:
        result: dict[str, Any] = json.load(resp)
    return result


def trial(rate: float, change_detection: bool, args: argparse.Namespace,
          work: Path) -> dict[str, float]:
    data = data_file("contact", int(rate * 100 * args.seconds))
    shutil.rmtree(work, ignore_errors=True)
    job = write_job(work, data, "contact", rate_limit_per_second=rate,
                    change_detection=change_detection, state_url=args.state_url)
    emulator, url = start_emulator(rate, args.latency_ms)
    try:
        emu_cpu, started = cpu_seconds(emulator.pid), time.monotonic()
        engine = start_engine(job, url)
        _, status, usage = os.wait4(engine.pid, 0)
        wall = time.monotonic() - started
        emu_cpu = cpu_seconds(emulator.pid) - emu_cpu
        engine.returncode = os.waitstatus_to_exitcode(status)
        assert engine.stderr is not None
        if engine.returncode != 0:
            raise SystemExit(f"engine exited {engine.returncode}: {engine.stderr.read()[-2000:]!r}")
        seen = stats(url)
    finally:
        emulator.terminate()
        emulator.wait()
    requests = sum(seen["requests_by_status"].values())
    span = seen["last_request_at"] - seen["first_request_at"]
    throttled = seen["requests_by_status"].get("429", 0)
    rate_seen = (requests - 1) / span
    return {"rate": rate_seen, "accepted": rate_seen * (1 - throttled / requests),
            "requests": requests, "throttled": throttled,
            "peak": seen["max_requests_in_any_second"], "span": span, "wall": wall,
            "engine_cpu": (usage.ru_utime + usage.ru_stime) / wall, "emulator_cpu": emu_cpu / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,200", help="limits to try, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="records sized for this many seconds at the limit")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="emulator answer delay")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--state-url", default=None,
                        help="the engine's state in PostgreSQL (a new schema per trial)")
    parser.add_argument("--change-detection", choices=("on", "off", "both"), default="on",
                        help="the stream's change_detection setting; both: side by side")
    args = parser.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.change_detection]
    work = Path(tempfile.mkdtemp(prefix="bench-raised-"))
    results: dict[tuple[float, bool], list[dict[str, float]]] = {
        (r, m): [] for r in rates for m in modes}
    for round_ in range(args.repeat):
        for rate, mode in results:
            result = trial(rate, mode, args, work / "job")
            results[rate, mode].append(result)
            print(f"(trial {round_ + 1}, {rate:g}/s, change detection {'on' if mode else 'off'}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in result.items()) + ")",
                  file=sys.stderr, flush=True)
    shutil.rmtree(work)
    if args.state_url:
        drop_bench_schemas(args.state_url)
    print(f"state: {'PostgreSQL' if args.state_url else 'SQLite'}")
    print(f"emulator latency {args.latency_ms:g} ms, ~{args.seconds:g} s of records per rate, "
          f"median of {args.repeat} trials; 2 cores shared by engine and emulator")
    print(f"{'limit':>6} {'changes':>7} {'req/s':>8} {'of limit':>8} {'2xx/s':>7} {'429s':>5} "
          f"{'max/any 1 s':>11} {'requests':>8} {'engine CPU':>10} {'emulator CPU':>12}")
    for (rate, mode), trials in results.items():
        med = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
        peak = max(t["peak"] for t in trials)
        print(f"{rate:>6g} {'on' if mode else 'off':>7} {med['rate']:>8.2f} "
              f"{med['rate'] / rate:>8.1%} {med['accepted']:>7.2f} {med['throttled']:>5g} "
              f"{peak:>11g} {med['requests']:>8g} {med['engine_cpu']:>10.0%} "
              f"{med['emulator_cpu']:>12.0%}")
    print("changes = the stream's change detection; 2xx/s = req/s x share answered 2xx; "
          "CPU = CPU seconds / wall seconds of the engine's life (100% = one core busy)")


if __name__ == "__main__":
    main()
