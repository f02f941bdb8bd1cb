"""Many processes, one account: the rate budget shared through Redis.

    .venv/bin/python bench/bench_shared_budget.py [--processes 1,2,3,8] [--rates 4,50]
        [--seconds 25] [--redis redis://127.0.0.1:6379/0]

For each limit and each number of processes N, N ``ometria-sync run`` processes (each its own job
folder and state, one contact stream, batches of 100, default dispatchers, ``rate_limit_url``
pointing at the machine's Redis) push to ONE emulator with the strict sliding-window limit, in
a process of its own (answers take ``--latency`` seconds, uniformly). After ``--seconds`` every
process gets SIGTERM and writes its run report. Measured, over the window from 2 s after the
first arrival (every process started) to the end:

* the aggregate rate at the emulator, (n - 1) / (last - first arrival), against the limit, the
  most arrivals inside any sliding second, and 429 answers;
* from the run reports: the wait for the slot (asking Redis to the slot granted) and the
  lateness after it (slot to the departure Redis confirmed: sleep overshoot plus one round
  trip), p50/p99 over the processes' samples (medians of the per-process figures), Redis round
  trips per request, and milliseconds spent in Redis calls per request (the latency the shared
  budget adds; one of the round trips, the confirmation, is on the departure's path);
* each process's share (requests/s), min and max, to see fairness.

First, on an otherwise idle event loop: the time one ``acquire`` spends in Redis (the
reservation and the confirmation, 2 round trips) at a limit too high to wait, p50/p99 of
``--calls`` acquires: the latency the shared budget adds to a request with nothing else running.

With ``--baseline`` (the default), each limit also gets a row ``local``: one process with the
in-process pacer (no ``rate_limit_url``), measured the same way, for comparison on the same
host at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    PushLog,
    data_file,
    engine_command,
    engine_env,
    logged_emulator_process,
    write_job,
)

WARM_UP = 2.0


def _window(log: PushLog, start: float, end: float) -> PushLog:
    pairs = [(t, s) for t, s in zip(log.arrivals, log.statuses, strict=True) if start <= t < end]
    return PushLog([t for t, _ in pairs], [s for _, s in pairs], [""] * len(pairs))


async def trial(rate: float, processes: int, args: argparse.Namespace,
                work: Path, *, shared: bool = True) -> dict[str, Any]:
    records = int(rate * 100 * (args.seconds + 10))
    data = data_file("contact", records)
    shutil.rmtree(work, ignore_errors=True)
    budget = {"rate_limit_url": args.redis} if shared else {}
    jobs = [write_job(work / f"p{i}", data, "contact", rate_limit_per_second=rate,
                      change_detection=False, **budget)
            for i in range(processes)]
    latency = tuple(float(x) for x in args.latency.split(","))
    async with logged_emulator_process(rate=rate, latency=latency) as emu:
        engines = [await asyncio.create_subprocess_exec(
            *engine_command(job), env=engine_env(emu.url), cwd=job.parent,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            for job in jobs]
        await asyncio.wait_for(emu.first_arrival(), 60)
        await asyncio.sleep(args.seconds + WARM_UP)
        for engine in engines:
            engine.send_signal(signal.SIGTERM)
        errors = [(await engine.communicate())[1] for engine in engines]
        for engine, err in zip(engines, errors, strict=True):
            if engine.returncode != 130:
                raise SystemExit(f"engine exited {engine.returncode}: {err.decode()[-2000:]}")
        await asyncio.sleep(max(latency) + 0.2)
    first = emu.log.arrivals[0]
    log = _window(emu.log, first + WARM_UP, first + WARM_UP + args.seconds)
    reports = []
    for job in jobs:
        (path,) = (job.parent / "state" / "reports").glob("*.json")
        report = json.loads(path.read_text())
        reports.append(report["shared_budget"] or {
            "requests_per_second": report["streams"][0]["requests_per_second"]})
    return {"log": log, "reports": reports}


async def redis_cost(url: str, calls: int) -> tuple[float, float]:
    """p50 and p99 (ms) of the Redis time of one acquire, nothing else on the loop."""
    import redis.asyncio as aioredis

    from ometria_sync.pacing.shared_budget import SharedBudget

    prefix = f"ometria-sync-bench:{uuid.uuid4().hex[:12]}:"
    budget = SharedBudget(aioredis.from_url(url), prefix, 10_000.0, url=url)
    costs = []
    try:
        for _ in range(calls):
            before = budget.stats.redis_seconds
            await budget.acquire()
            costs.append((budget.stats.redis_seconds - before) * 1000)
    finally:
        await budget.aclose()
    costs.sort()
    return costs[len(costs) // 2], costs[int(len(costs) * 0.99)]


def _median(reports: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in reports if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,3,8")
    parser.add_argument("--rates", default="4,50")
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--latency", default="0.3,0.8", help="answer delay range, seconds")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also one process with the in-process pacer, per limit")
    args = parser.parse_args()
    p50, p99 = asyncio.run(redis_cost(args.redis, args.calls))
    cost = (f"Redis time per request (reserve + confirm), idle loop, {args.calls} acquires: "
            f"p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(cost, file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-shared-budget-"))
    rows = []
    for rate in (float(x) for x in args.rates.split(",")):
        runs: list[int | str] = ["local"] if args.baseline else []
        runs += [int(x) for x in args.processes.split(",")]
        for n in runs:
            local = n == "local"
            result = asyncio.run(trial(rate, 1 if local else int(n), args, work,
                                       shared=not local))
            log: PushLog = result["log"]
            reports: list[dict[str, Any]] = result["reports"]
            shares = [r["requests_per_second"] or 0.0 for r in reports]
            row = (f"{rate:>5g}  {n:>5}  {log.rate:>7.3f} {log.rate / rate:>8.1%} "
                   f"{log.max_in_any_second():>6} {log.count(429):>5}  "
                   f"{_median(reports, 'wait_for_slot_ms_p50'):>7.1f} "
                   f"{_median(reports, 'wait_for_slot_ms_p99'):>7.1f}  "
                   f"{_median(reports, 'late_after_slot_ms_p50'):>6.2f} "
                   f"{_median(reports, 'late_after_slot_ms_p99'):>6.2f}  "
                   f"{_median(reports, 'redis_round_trips_per_request'):>5.2f} "
                   f"{_median(reports, 'redis_ms_per_request'):>6.3f}  "
                   f"{min(shares):>6.2f} {max(shares):>6.2f}")
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"one emulator (strict sliding second), answers in {args.latency.replace(',', '-')} s, "
          f"window {args.seconds:g} s after a {WARM_UP:g} s warm-up; Redis {args.redis}")
    print(f"{'limit':>5}  {'procs':>5}  {'req/s':>7} {'of limit':>8} {'max/1s':>6} {'429s':>5}  "
          f"{'wait ms':>7} {'p99':>7}  {'late ms':>6} {'p99':>6}  {'trips':>5} {'ms/req':>6}  "
          f"{'share min':>6} {'max':>6}")
    for row in rows:
        print(row)
    print(cost)
    print("wait = asking Redis -> slot granted; late = slot -> departure confirmed by Redis; "
          "trips and ms/req = Redis round trips and time in Redis calls per request (per "
          "process, median); share = requests/s each process got")


if __name__ == "__main__":
    main()
