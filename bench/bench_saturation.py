"""Saturation: does the engine send at the rate limit, never over it, whatever the latency?

    .venv/bin/python bench/bench_saturation.py [--seconds 60] [--latencies 0.1,0.5,1,2] [--repeat 3]

For each answer latency, three clients push 100-contact batches for ``--seconds`` at the same
time, each against its OWN emulator (its own sliding-window limit of ``--rate``, default 4/s),
each emulator in a process of its own, so that its arrival stamps do not depend on the other
clients' work:

* ``ometria-sync``: the real engine (``ometria-sync run`` in a subprocess, default settings:
  8 dispatchers, the shared even pacer), on a file long enough to keep it busy;
* ``naive``: one request at a time, then a fixed sleep of 1/rate;
* ``aiolimiter``: ``AsyncLimiter(rate, 1)`` shared by ``--senders`` concurrent senders
  (a 429 is counted and the sender goes on).

Every push is logged on arrival by its emulator. Measured over the first ``--seconds`` after
each client's first request: the achieved rate = (n - 1) / (last arrival - first arrival), the
share of it answered 2xx, 429 answers, and the most arrivals inside any sliding second. Prints
medians of ``--repeat`` trials per latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiolimiter import AsyncLimiter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    KEY,
    PushLog,
    data_file,
    drop_bench_schemas,
    engine_command,
    engine_env,
    logged_emulator_process,
    write_job,
)

CLIENTS = ("ometria-sync", "naive", "aiolimiter")


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY,
                                          "Content-Type": "application/json"})


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with session.post(url + "/push", data=body) as resp:
        await resp.read()


async def naive_client(url: str, body: bytes, rate: float) -> None:
    async with _session() as session:
        while True:
            await _post(session, url, body)
            await asyncio.sleep(1 / rate)


async def aiolimiter_client(url: str, body: bytes, rate: float, senders: int) -> None:
    limiter = AsyncLimiter(rate, 1)

    async def sender(session: aiohttp.ClientSession) -> None:
        while True:
            async with limiter:
                pass
            await _post(session, url, body)

    async with _session() as session:
        await asyncio.gather(*(sender(session) for _ in range(senders)))


async def trial(latency: float, args: argparse.Namespace, work: Path) -> dict[str, PushLog]:
    """One run of the three clients side by side; their push logs, cut to the window."""
    records = int(args.rate * 100 * (args.seconds + 30))
    data = data_file("contact", records)
    lines = data.read_bytes().splitlines()[:100]
    body = b"[" + b",".join(lines) + b"]"
    shutil.rmtree(work, ignore_errors=True)
    job = write_job(work, data, "contact", rate_limit_per_second=args.rate,
                    state_url=args.state_url)
    emu = {"rate": args.rate, "latency": (latency, latency)}
    async with logged_emulator_process(**emu) as e1, logged_emulator_process(**emu) as e2, \
            logged_emulator_process(**emu) as e3:
        engine = await asyncio.create_subprocess_exec(
            *engine_command(job), env=engine_env(e1.url),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await asyncio.wait_for(e1.first_arrival(), 30)  # start the others with the engine
        others = [asyncio.create_task(naive_client(e2.url, body, args.rate)),
                  asyncio.create_task(aiolimiter_client(e3.url, body, args.rate, args.senders))]
        await asyncio.sleep(args.seconds + 0.5)
        engine.send_signal(signal.SIGTERM)
        for task in others:
            task.cancel()
        _, err = await engine.communicate()
        await asyncio.gather(*others, return_exceptions=True)
        if engine.returncode != 130:
            raise SystemExit(f"engine exited {engine.returncode}: {err.decode()[-2000:]}")
        await asyncio.sleep(latency + 0.2)  # answers in flight get their status
    # the push logs are read back as each emulator process stops, at the end of the block
    logs = {name: e.log.window(args.seconds) for name, e in zip(CLIENTS, (e1, e2, e3), strict=True)}
    if any(0 in log.statuses for log in logs.values()):
        raise SystemExit("a request in the window got no answer")
    return logs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latencies", default="0.1,0.5,1,2",
                        help="answer delays in seconds, comma-separated")
    parser.add_argument("--rate", type=float, default=4.0, help="the limit, requests/s")
    parser.add_argument("--senders", type=int, default=8,
                        help="concurrent senders behind the aiolimiter client")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--state-url", default=None,
                        help="the engine's state in PostgreSQL (a new schema per trial)")
    args = parser.parse_args()
    latencies = [float(x) for x in args.latencies.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-saturation-"))
    results: dict[float, list[dict[str, PushLog]]] = {lat: [] for lat in latencies}
    for round_ in range(args.repeat):
        for latency in latencies:
            logs = asyncio.run(trial(latency, args, work / "job"))
            results[latency].append(logs)
            print(f"(trial {round_ + 1}, latency {latency:g} s: "
                  + ", ".join(f"{n} {log.rate:.3f}/s {log.count(429)}x429"
                              for n, log in logs.items()) + ")", file=sys.stderr, flush=True)
    shutil.rmtree(work)
    if args.state_url:
        drop_bench_schemas(args.state_url)
    print(f"state: {'PostgreSQL' if args.state_url else 'SQLite'}")
    print(f"limit {args.rate:g} req/s, window {args.seconds:g} s, median of {args.repeat} "
          f"trials; each client against its own emulator, all three at once")
    print(f"{'latency':>7}  {'client':<12} {'req/s':>6} {'of limit':>8} {'2xx/s':>6} "
          f"{'429s':>5} {'max/any 1 s':>11}  {'requests':>8}")
    for latency, trials in results.items():
        for name in CLIENTS:
            runs = [t[name] for t in trials]
            rate = statistics.median(log.rate for log in runs)
            ok = statistics.median(log.rate * log.count(202) / len(log.arrivals) for log in runs)
            throttled = statistics.median(log.count(429) for log in runs)
            peak = max(log.max_in_any_second() for log in runs)
            n = statistics.median(len(log.arrivals) for log in runs)
            print(f"{latency:>6g}s  {name:<12} {rate:>6.3f} {rate / args.rate:>8.1%} {ok:>6.3f} "
                  f"{throttled:>5g} {peak:>11}  {n:>8g}")
    print("req/s = (n - 1) / (last - first arrival) in the window; 2xx/s = req/s x share "
          "answered 202; 429s = median count; max/any 1 s = worst over all trials")


if __name__ == "__main__":
    main()
