"""The MySQL source's read rate against a bare ``SELECT`` of the same rows, same driver.

    .venv/bin/python bench/bench_mysql.py [--rows 200000] [--repeat 5] [--page-size 5000]
    (MariaDB at 127.0.0.1:3306 as root without a password; a database of its own, dropped)

* ``source``: the orders query read through ``kind = "mysql"`` (keyset pages of
  ``--page-size``, each its own read-only snapshot, rows mapped to records with the zero-date,
  DECIMAL and timezone rules): rows/s.
* ``bare SELECT``: the same query, the same columns, one unbuffered asyncmy cursor
  (``SSCursor``) fetched in chunks of ``--page-size``, tuples left as they come: rows/s.
* ``bare pages``: the source's own keyset statements run with asyncmy and nothing else (no
  mapping): what the paging costs apart from the mapping.

The three run in turn within each round (so drift hits them alike); medians of ``--repeat``.
Then the source's peak RSS (ru_maxrss), each read in a fresh process, over 10% and 100% of
``--rows``: whether memory grows with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncmy
from asyncmy.cursors import SSCursor

from ometria_sync.sources.mysql import MysqlQuery, MysqlSourceConfig

QUERY = ("SELECT CAST(id AS CHAR) AS id, email AS `customer.email`, total AS grand_total, "
         "currency, placed_at AS timestamp, updated_at, id AS seq FROM orders")


async def connect(database: str | None = None) -> Any:
    return await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="",
                                 database=database, autocommit=True, charset="utf8mb4")


async def fill(database: str, rows: int) -> None:
    conn = await connect()
    async with conn.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE {database}")
        await cursor.execute(f"USE {database}")
        await cursor.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, email VARCHAR(120) NOT NULL, "
            "total DECIMAL(12,4) NOT NULL, currency CHAR(3) NOT NULL, placed_at DATETIME "
            "NOT NULL, updated_at TIMESTAMP(6) NOT NULL, KEY by_update (updated_at, id))")
        await cursor.execute(
            "INSERT INTO orders SELECT seq, CONCAT('user', seq, '@example.com'), "
            "(seq % 500) + 0.99, 'GBP', '2024-01-01' + INTERVAL seq SECOND, "
            f"'2024-06-01' + INTERVAL seq * 1000 MICROSECOND FROM seq_1_to_{rows}")
    conn.close()


async def drop(database: str) -> None:
    conn = await connect()
    async with conn.cursor() as cursor:
        await cursor.execute(f"DROP DATABASE {database}")
    conn.close()


async def through_source(page_size: int, limit: int | None = None) -> int:
    query = QUERY if limit is None else f"{QUERY} WHERE id <= {limit}"
    config = MysqlSourceConfig(dsn_env="BENCH_MYSQL_DSN", query=query, page_size=page_size,
                               cursor=["updated_at", "seq"], drop=["updated_at", "seq"])
    count = 0
    async for chunk in MysqlQuery(config).read(None):
        count += len(chunk)
    return count


async def bare_select(database: str, page_size: int) -> int:
    conn = await connect(database)
    count = 0
    cursor = conn.cursor(SSCursor)
    await cursor.execute(QUERY + " ORDER BY updated_at, id")
    while rows := await cursor.fetchmany(page_size):
        count += len(rows)
    await cursor.close()
    conn.close()
    return count


async def bare_pages(database: str, page_size: int) -> int:
    """The keyset statements the source sends, with nothing done to the rows."""
    conn = await connect(database)
    wrapped = f"SELECT * FROM ({QUERY}) AS src"
    order = f" ORDER BY `updated_at`, `seq` LIMIT {page_size}"
    count, last = 0, None
    async with conn.cursor() as cursor:
        while True:
            if last is None:
                await cursor.execute(wrapped + order)
            else:
                await cursor.execute(wrapped + " WHERE (`updated_at` > %s OR (`updated_at` = "
                                     "%s AND (`seq` > %s)))" + order, (last[0], *last))
            rows = await cursor.fetchall()
            count += len(rows)
            if len(rows) < page_size:
                break
            last = (rows[-1][5], rows[-1][6])
    conn.close()
    return count


def peak_rss(database: str, page_size: int, limit: int) -> tuple[int, float]:
    """Rows read and peak RSS (MB) of the source reading ``limit`` rows in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--child", database, str(page_size),
                          str(limit)], check=True, capture_output=True, text=True).stdout
    rows, peak = out.split()
    return int(rows), float(peak)


def child(database: str, page_size: int, limit: int) -> None:
    os.environ["BENCH_MYSQL_DSN"] = f"mysql://root@127.0.0.1:3306/{database}"
    count = asyncio.run(through_source(page_size, limit))
    print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    database = f"bench_{uuid.uuid4().hex[:10]}"
    os.environ["BENCH_MYSQL_DSN"] = f"mysql://root@127.0.0.1:3306/{database}"
    asyncio.run(fill(database, args.rows))
    readers: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
               "source": lambda: through_source(args.page_size),
               "bare SELECT": lambda: bare_select(database, args.page_size),
               "bare pages": lambda: bare_pages(database, args.page_size)}
    rates: dict[str, list[float]] = {name: [] for name in readers}
    try:
        for _ in range(args.repeat):
            for name, read in readers.items():
                started = time.perf_counter()
                count = asyncio.run(read())
                rates[name].append(count / (time.perf_counter() - started))
                assert count == args.rows, (name, count)
        memory = {size: peak_rss(database, args.page_size, size)
                  for size in (args.rows // 10, args.rows)}
    finally:
        asyncio.run(drop(database))
    bare = statistics.median(rates["bare SELECT"])
    print(f"{args.rows:,} rows, page size {args.page_size}, median of {args.repeat} rounds")
    print(f"{'reader':<12} {'rows/s':>10} {'min':>10} {'max':>10} {'of bare SELECT':>15}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<12} {median:>10,.0f} {min(values):>10,.0f} {max(values):>10,.0f} "
              f"{median / bare:>14.0%}")
    for size, (count, peak) in memory.items():
        assert count == size, (size, count)
        print(f"source peak RSS reading {size:,} rows in a fresh process: {peak:.1f} MB")


if __name__ == "__main__":
    main()
