"""Jitter: with a busy source and a network's varying delay, does any second carry over the limit?

    .venv/bin/python bench/bench_jitter.py [--seconds 40] [--trials 3] [--jitter 5-20]
        [--engine new=. --engine old=/tmp/old-client]
    (PostgreSQL: OMETRIA_SYNC_BENCH_PG_DSN, default postgresql://postgres@127.0.0.1:5432/test)

Each trial runs, for each source, every ``--engine`` at the same time (``ometria-sync run`` in a
subprocess from that source tree, default settings, 8 dispatchers), each against its OWN strict
emulator (``--rate``, default 4/s, every arrival counted over any sliding second) in a process
of its own. The emulator delays each arrival by a uniform ``--jitter`` (ms) before it stamps and
counts it, as a network's varying one-way delay does; answers take ``--latency`` s more.

Sources, both busy for the event loop: ``postgres`` (a contacts table read by keyset pages of
5,000 rows, decoded and mapped) and ``csv`` (a contacts CSV with typed columns).

Measured at the server over ``--seconds`` from each engine's first arrival: windows over the
limit (arrivals after which the sliding second holds more than the limit: each one a 429),
the tightest span of ``limit + 1`` consecutive arrivals, and requests/s = (n - 1) / (last - first
arrival) as a share of the limit. Requirement: 0 windows over the limit in every trial, >= 97%.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    PG_DSN,
    EmulatorProcess,
    PushLog,
    engine_env,
    logged_emulator_process,
    make_pg_table,
    pg_execute,
    write_contacts_csv,
)
from gen_data import OPTIN

TABLE = "ometria_sync_bench_jitter_contacts"
SOURCES = ("postgres", "csv")

PG_SOURCE = f'''[streams.source]
kind = "postgres"
dsn_env = "BENCH_PG_DSN"
query = """SELECT id, 'shop' AS "@collection", customer_id, email, firstname, lastname,
  marketing_optin, timestamp_subscribed, score AS "properties.score", updated_at, n
  FROM {TABLE}"""
cursor = ["updated_at", "n"]
drop = ["updated_at", "n"]
page_size = 5000
'''

CSV_SOURCE = '''[streams.source]
kind = "csv"
path = "{path}"
constants = {{ "@collection" = "shop" }}
[streams.source.columns]
joined = {{ field = "timestamp_subscribed", type = "timestamp" }}
score = {{ field = "properties.score", type = "number" }}
vip = {{ field = "properties.vip", type = "boolean" }}
'''


async def fill_table(rows: int) -> None:
    await make_pg_table(TABLE, f"""
            SELECT n, 'c' || n AS id, 'cust' || n AS customer_id,
                   'user' || n || '@example.com' AS email, 'Ann' AS firstname,
                   'Lee' AS lastname, (ARRAY{list(OPTIN)})[n % 3 + 1] AS marketing_optin,
                   timestamptz '2024-01-01' + n * interval '1 minute' AS timestamp_subscribed,
                   (n % 97) + 0.5 AS score,
                   timestamptz '2024-06-01' + n * interval '1 ms' AS updated_at
            FROM generate_series(1, {rows}) AS n""", key="n")


def write_job(folder: Path, source: str, rate: float, csv_path: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    block = PG_SOURCE if source == "postgres" else CSV_SOURCE.format(path=csv_path)
    job = folder / "job.toml"
    job.write_text(
        f"[ometria]\nbase_url = \"http://127.0.0.1:9/v2\"\nrate_limit_per_second = {rate}\n\n"
        f"[report]\nprogress = \"off\"\n\n"
        f"[[streams]]\nname = \"contacts\"\nrecord_type = \"contact\"\n{block}"
    )
    return job


def over_limit(arrivals: list[float], limit: int) -> int:
    """Arrivals after which the sliding second (t - 1, t] holds more than ``limit``."""
    over, lo = 0, 0
    for hi, t in enumerate(arrivals):
        while arrivals[lo] <= t - 1.0:
            lo += 1
        over += hi - lo + 1 > limit
    return over


def tightest(arrivals: list[float], limit: int) -> float:
    """The shortest span of ``limit + 1`` consecutive arrivals (s)."""
    spans = [arrivals[i + limit] - arrivals[i] for i in range(len(arrivals) - limit)]
    return min(spans) if spans else math.inf


async def trial(source: str, engines: dict[str, Path], args: argparse.Namespace,
                work: Path, csv_path: Path, slack: dict[str, float]) -> dict[str, PushLog]:
    emu = {"rate": args.rate, "latency": (args.latency, args.latency),
           "arrival_jitter": args.jitter}
    names = list(engines)
    async with contextlib.AsyncExitStack() as stack:
        emulators: list[EmulatorProcess] = [
            await stack.enter_async_context(logged_emulator_process(**emu)) for _ in names]
        procs = []
        for name, emulator in zip(names, emulators, strict=True):
            job = write_job(work / name, source, args.rate, csv_path)
            env = engine_env(emulator.url)
            env.update(BENCH_PG_DSN=PG_DSN, PYTHONPATH=str(engines[name]))
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ometria_sync", "run", str(job), "--log-format", "json",
                "-q", env=env, cwd=engines[name], stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE))
        await asyncio.gather(*(asyncio.wait_for(e.first_arrival(), 60) for e in emulators))
        await asyncio.sleep(args.seconds + 0.5)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for name, proc in zip(names, procs, strict=True):
            _, err = await proc.communicate()
            if proc.returncode not in (0, 130):
                raise SystemExit(f"{name} exited {proc.returncode}: {err.decode()[-2000:]}")
        await asyncio.sleep(args.latency + 0.2)
    for name in names:  # the slack the engine reports (the old engine reports none)
        slack[name] = max((json.loads(r.read_text())["streams"][0].get("pacing_slack_seconds_max")
                           or 0.0 for r in (work / name).glob("**/reports/*.json")), default=0.0)
    return {name: e.log.window(args.seconds) for name, e in zip(names, emulators, strict=True)}


def _jitter(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low) / 1000, float(high or low) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--jitter", type=_jitter, default=(0.005, 0.020), metavar="MS-MS")
    parser.add_argument("--latency", type=float, default=0.1, help="answer delay, seconds")
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--engine", action="append", metavar="NAME=DIR",
                        help="an engine source tree (default: new=this checkout)")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    engines = {k: Path(v).resolve() for k, _, v in
               (e.partition("=") for e in (args.engine or [f"new={here}"]))}
    sources = args.sources.split(",")
    limit = math.floor(args.rate)
    rows = int(args.rate * 100 * (args.seconds + 30))
    work = Path(tempfile.mkdtemp(prefix="bench-jitter-"))
    csv_path = work / "contacts.csv"
    write_contacts_csv(csv_path, rows)
    asyncio.run(fill_table(rows))
    table: list[tuple[int, str, str, PushLog, float]] = []
    try:
        for t in range(args.trials):
            for source in sources:
                shutil.rmtree(work / "jobs", ignore_errors=True)
                slack: dict[str, float] = {}
                logs = asyncio.run(trial(source, engines, args, work / "jobs", csv_path, slack))
                for name, log in logs.items():
                    table.append((t + 1, source, name, log, slack[name]))
                    print(f"(trial {t + 1} {source} {name}: {log.rate:.3f}/s, "
                          f"{over_limit(log.arrivals, limit)} over, {log.count(429)}x429)",
                          file=sys.stderr, flush=True)
    finally:
        asyncio.run(pg_execute(f"DROP TABLE IF EXISTS {TABLE}"))
        shutil.rmtree(work)
    print(f"limit {args.rate:g} req/s, strict server, arrival jitter "
          f"{args.jitter[0] * 1000:g}-{args.jitter[1] * 1000:g} ms, answers after "
          f"{args.latency:g} s, {args.seconds:g} s per trial, engines side by side")
    print(f"{'trial':>5}  {'source':<8} {'engine':<6} {'req/s':>6} {'of limit':>8} "
          f"{'over':>4} {'429s':>4} {f'tightest {limit + 1}':>10}  {'requests':>8}  slack")
    for t, source, name, log, widest in table:
        print(f"{t:>5}  {source:<8} {name:<6} {log.rate:>6.3f} {log.rate / args.rate:>8.1%} "
              f"{over_limit(log.arrivals, limit):>4} {log.count(429):>4} "
              f"{tightest(log.arrivals, limit):>9.3f}s  {len(log.arrivals):>8}  "
              + (f"{widest * 1000:.0f} ms" if widest else "-"))
    print("over = arrivals after which the server's sliding second held more than the limit; "
          f"tightest {limit + 1} = shortest span of {limit + 1} consecutive arrivals; slack = "
          "the widest pacing slack the engine's run report shows (- : none reported)")


if __name__ == "__main__":
    main()
