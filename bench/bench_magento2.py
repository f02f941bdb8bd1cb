"""Issue 30's trial at scale, and the magento2 preset's read rate against a bare ``SELECT``.

    .venv/bin/python bench/bench_magento2.py [--customers 50000] [--products 20000]
        [--orders 200000] [--rate 200] [--small 0.1] [--repeat 3] [--page-size 1000]
    (MariaDB at 127.0.0.1:3306 as root without a password; databases of its own, dropped)

1. **The trial** (``tests/e2e/magento2_scale.py``, which asserts each point), at ``--small`` of
   the sizes and then at the full sizes: seed, backfill the three preset streams in one job
   through the real CLI against the emulator at ``--rate`` requests/s (engine and emulator),
   compare every record field by field with the contract's expectation, night 2 after 1% of
   the rows changed and 0.5% touched, a late order, peak RSS of each night, transactions
   sampled, and a short run at 4 requests/s. Figures for both sizes.
2. **Read rate** on the full database, per entity, the three run in turn within each round,
   medians of ``--repeat``:

   * ``preset``: every part of the entity read by ``kind = "magento2"`` (keyset pages of
     ``--page-size``, each its own snapshot, the entity's other tables read with each page,
     records built): records/s;
   * ``bare main``: ``SELECT *`` of the entity's main table(s) (``catalog_product_entity``;
     ``customer_entity`` and ``newsletter_subscriber``; ``sales_order``), one unbuffered
     asyncmy cursor (``SSCursor``), tuples as they come: rows/s;
   * ``bare all``: the same for every table the entity reads, one after the other: the rows of
     all of them per second, and the time to read them, against the preset's time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncmy
from asyncmy.cursors import SSCursor

from ometria_sync.sources.magento2 import Magento2SourceConfig
from tests.e2e.magento2_scale import in_new_database

#: entity -> (main tables, every table it reads)
TABLES = {
    "products": (["catalog_product_entity"],
                 ["catalog_product_entity", "catalog_product_entity_varchar",
                  "catalog_product_entity_int", "catalog_product_entity_decimal",
                  "catalog_product_entity_datetime", "cataloginventory_stock_item",
                  "catalog_product_super_link", "catalog_product_website"]),
    "contacts": (["customer_entity", "newsletter_subscriber"],
                 ["customer_entity", "customer_address_entity", "newsletter_subscriber"]),
    "orders": (["sales_order"],
               ["sales_order", "sales_order_item", "sales_order_address",
                "sales_order_payment"]),
}


async def through_preset(entity: str, page_size: int) -> int:
    config = Magento2SourceConfig(entity=entity, dsn_env="MAGENTO_DSN",  # type: ignore[arg-type]
                                  page_size=page_size)
    count = 0
    for part in await config.open().parts():
        async for chunk in part.read(None):
            count += len(chunk)
    return count


async def bare(database: str, tables: list[str], page_size: int) -> int:
    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="",
                                 database=database, autocommit=True, charset="utf8mb4")
    count = 0
    for table in tables:
        cursor = conn.cursor(SSCursor)
        await cursor.execute(f"SELECT * FROM {table}")
        while rows := await cursor.fetchmany(page_size):
            count += len(rows)
        await cursor.close()
    conn.close()
    return count


async def read_rates(database: str, repeat: int, page_size: int) -> None:
    print(f"\nread rate per entity, page size {page_size}, median of {repeat} rounds")
    print(f"{'entity':<9} {'preset rec/s':>13} {'bare main rows/s':>17} {'preset/bare main':>17}"
          f" {'bare all rows/s':>16} {'preset s':>9} {'bare all s':>11}")
    for entity, (main, every) in TABLES.items():
        times: dict[str, list[float]] = {"preset": [], "main": [], "all": []}
        counts: dict[str, int] = {}
        for _ in range(repeat):
            for name in times:
                started = time.perf_counter()
                counts[name] = await (through_preset(entity, page_size) if name == "preset"
                                      else bare(database, main if name == "main" else every,
                                                page_size))
                times[name].append(time.perf_counter() - started)
        t = {name: statistics.median(values) for name, values in times.items()}
        rate = {name: counts[name] / t[name] for name in t}
        print(f"{entity:<9} {rate['preset']:>13,.0f} {rate['main']:>17,.0f} "
              f"{rate['preset'] / rate['main']:>16.0%} {rate['all']:>16,.0f} "
              f"{t['preset']:>9.2f} {t['all']:>11.2f}   ({counts['preset']:,} records, "
              f"{counts['main']:,} main rows, {counts['all']:,} rows in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--small", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    full = (args.customers, args.products, args.orders)
    sizes = ([(round(args.customers * args.small), round(args.products * args.small),
               round(args.orders * args.small)), full] if args.small else [full])
    results = []
    for index, size in enumerate(sizes):
        os.environ["MAGENTO_DSN"] = "unset"  # the trial gives the CLI its own

        async def rates(name: str) -> None:
            os.environ["MAGENTO_DSN"] = f"mysql://root@127.0.0.1:3306/{name}"
            await read_rates(name, args.repeat, args.page_size)

        figures = asyncio.run(in_new_database(
            size[0], size[1], size[2], args.rate, args.page_size,
            then=rates if index == len(sizes) - 1 else None))
        results.append((size, figures))
    print(f"\ntrial: engine and emulator at {args.rate} requests/s, page size "
          f"{args.page_size}")
    for (customers, products, orders), figures in results:
        print(f"\n{customers:,} customers, {products:,} products, {orders:,} orders seeded "
              f"({figures['seed_seconds']:.0f} s); valid records: {figures['products']:,} "
              f"products, {figures['contacts']:,} contacts, {figures['orders']:,} orders")
        for key, value in figures.items():
            print(f"  {key:<24} {value:,.2f}" if isinstance(value, float)
                  else f"  {key:<24} {value:,}")


if __name__ == "__main__":
    main()
