"""Source speed and memory: CSV to validated records, PostgreSQL rows read, peak RSS by size.

    .venv/bin/python bench/bench_sources.py [--rows 500000] [--repeat 3]
    (PostgreSQL: OMETRIA_SYNC_BENCH_PG_DSN, default postgresql://postgres@127.0.0.1:5432/test)

* ``csv``: a contacts CSV (7 columns, typed cells) read by the CSV source and each record
  validated with ``validate_record``: rows/s.
* ``postgres``: an orders table read by the PostgreSQL source (keyset pages of 5,000, rows
  mapped to records): rows/s on loopback.
* memory: each reader runs in a fresh process over 10% and 100% of ``--rows``; peak RSS
  (ru_maxrss) shows whether memory grows with the input.
Medians of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import PG_DSN, make_pg_table, write_contacts_csv

from ometria_sync.schemas import validate_record
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.mapping import ColumnSpec
from ometria_sync.sources.postgres import PostgresQuery, PostgresSourceConfig

TABLE = "ometria_sync_bench_orders"
CSV_OPTIONS = CsvOptions(columns={
    "customer_id": "customer_id", "joined": ColumnSpec("timestamp_subscribed", "timestamp"),
    "score": ColumnSpec("properties.score", "number"),
    "vip": ColumnSpec("properties.vip", "boolean")}, constants={"@collection": "shop"})


async def read_csv(path: Path) -> int:
    valid = 0
    async for chunk in CsvPart(LocalFile(path), CSV_OPTIONS).read(None):
        for item in chunk:
            valid += validate_record("contact", item.record).ok
    return valid


async def fill_table(rows: int) -> None:
    await make_pg_table(TABLE, f"""
            SELECT n AS id, 'user' || n || '@example.com' AS email, (n % 500) + 0.99 AS total,
                   'GBP'::text AS currency, timestamptz '2024-01-01' + n * interval '1 second'
                   AS placed_at, timestamptz '2024-06-01' + n * interval '1 ms' AS updated_at
            FROM generate_series(1, {rows}) AS n""", key="id")


async def read_postgres(limit: int) -> int:
    os.environ["BENCH_DSN"] = PG_DSN
    config = PostgresSourceConfig(
        dsn_env="BENCH_DSN", cursor=["updated_at", "id"], drop=["updated_at"],
        query=f"SELECT id::text AS id, email AS \"customer.email\", total AS grand_total, "
              f"currency, placed_at AS timestamp, updated_at, id AS seq FROM {TABLE} "
              f"WHERE id <= {limit}")
    count = 0
    async for chunk in PostgresQuery(config).read(None):
        count += len(chunk)
    return count


def _timed(kind: str, arg: str) -> tuple[int, float]:
    started = time.perf_counter()
    if kind == "csv":
        count = asyncio.run(read_csv(Path(arg)))
    else:
        count = asyncio.run(read_postgres(int(arg)))
    return count, time.perf_counter() - started


def child(kind: str, arg: str) -> None:
    """Run one reader in this process and print rows, seconds and peak RSS in MB."""
    count, seconds = _timed(kind, arg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} {seconds:.3f} {peak:.1f}")


def run_child(kind: str, arg: str) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, arg], check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.csv", Path(tmp) / "big.csv"
        write_contacts_csv(small, args.rows // 10)
        write_contacts_csv(big, args.rows)
        asyncio.run(fill_table(args.rows))
        print(f"{'source':<10} {'rows':>9} {'rows/s (median)':>16} {'peak RSS MB':>12}")
        for kind, arg_small, arg_big in (("csv", str(small), str(big)),
                                         ("postgres", str(args.rows // 10), str(args.rows))):
            for arg, size in ((arg_small, args.rows // 10), (arg_big, args.rows)):
                runs = [run_child(kind, arg) for _ in range(args.repeat)]
                assert all(r[0] == size for r in runs), runs
                rate = statistics.median(size / r[1] for r in runs)
                peak = statistics.median(r[2] for r in runs)
                print(f"{kind:<10} {size:>9,} {rate:>16,.0f} {peak:>12.1f}")


if __name__ == "__main__":
    main()
