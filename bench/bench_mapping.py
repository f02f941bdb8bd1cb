"""Mapping cost: records per CPU-second mapping Magento-style exports, two code trees side by
side in one run.

    .venv/bin/python bench/bench_mapping.py [--old /tmp/old-mapping] [--scale 4] [--repeat 5]

The old tree is another checkout of the repository (``git archive 19fa656 | tar -x -C
/tmp/old-mapping``: the code before column options); each measurement runs in a fresh process
with that tree first on ``PYTHONPATH`` and the same interpreter and packages.

Files (made once under ``$OMETRIA_BENCH_DATA``, default ``/tmp/ometria-bench``, seed 7):
customers (5,000 x scale rows, 10 columns), products (300 x scale) and orders (8,000 x scale
line-item rows, 17 columns), the review's Magento shapes, with about 1% messy cells.

Jobs:

* ``plain``: field and type only (what both trees can do): the same job file for both.
* ``options``: the job a Magento export needs (values, defaults, field lists, expressions with
  ``e164``, ``country``, ``date``, ``on_error = "omit"``): the new tree only.

Two figures per job and file, medians of ``--repeat`` rounds (trees alternate within a round):
``map``: the rows are parsed first, then only the mapping is timed (``RowMapper.map_row`` on
every row, again until 0.3 CPU-s have passed: the per-record mapping cost; ``records`` then
counts the rows mapped, repeats included); ``read``: the whole CSV source (parse, map, group
orders), records handed over per CPU-second. CPU time is the worker's ``process_time``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("OMETRIA_BENCH_DATA", "/tmp/ometria-bench"))

CUSTOMERS_HEADER = ["entity_id", "email", "firstname", "lastname", "created_at", "dob",
                    "gender", "is_subscribed", "country", "phone"]
PRODUCTS_HEADER = ["entity_id", "sku", "name", "price", "status", "url_key", "image", "qty"]
ORDERS_HEADER = ["increment_id", "created_at", "status", "order_currency_code", "customer_id",
                 "customer_email", "subtotal", "discount_amount", "shipping_amount",
                 "tax_amount", "grand_total", "sku", "name", "qty_ordered", "price",
                 "row_total", "item_discount_amount"]


def _customers(n: int, rnd: random.Random) -> list[list[str]]:
    rows = []
    for i in range(1, n + 1):
        email = f"user{i}@example.com"
        stamp = (f"202{rnd.randint(0, 4)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} "
                 f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}")
        dob = f"{rnd.randint(1, 28):02d}/{rnd.randint(1, 12):02d}/{rnd.randint(1950, 2005)}"
        phone = rnd.choice([f"07700 {900000 + i % 1000}", f"+44 7700 {900000 + i % 1000}", ""])
        if rnd.random() < 0.01:  # the messy cells: padded emails, zero dates, odd phones
            email, stamp, phone = f" {email} ", "0000-00-00 00:00:00", "call me"
        rows.append([str(i), email, "Ann", "Lee", stamp, rnd.choice([dob, ""]),
                     rnd.choice(["1", "2", "3", ""]), rnd.choice(["0", "1"]),
                     rnd.choice(["UK", "GB", "United Kingdom", "uk", "France"]), phone])
    return rows


def _products(n: int, rnd: random.Random) -> list[list[str]]:
    return [[str(1000 + i), f"SKU-{i}", f"Product {i}", f"{rnd.randint(1, 200)}.0000",
             rnd.choice(["1", "1", "2"]), f"product-{i}", f"/p/r/product-{i}.jpg",
             f"{rnd.randint(0, 500)}.0000"] for i in range(n)]


def _orders(n: int, rnd: random.Random) -> list[list[str]]:
    rows: list[list[str]] = []
    order = 100000000
    while len(rows) < n:
        order += 1
        items = rnd.randint(1, 5)
        head = [str(order), "2023-04-01 10:22:13", "complete", "GBP", str(order % 5000),
                f"user{order % 5000}@example.com", "110.5000", "-4.9000", "4.9900", "0.0000",
                "110.5900"]
        for k in range(items):
            rows.append([*head, f"SKU-{k}", f"Product {k}", f"{rnd.randint(1, 3)}.0000",
                         "49.0000", "98.0000", rnd.choice(["0.0000", "4.9000"])])
    return rows[:n]


def data(name: str, scale: int) -> Path:
    """The Magento-style file ``name`` at ``scale``, made on first use."""
    size = {"customers": 5000, "products": 300, "orders": 8000}[name] * scale
    path = DATA_DIR / f"magento-{name}-{size}.csv"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        rnd = random.Random(7)
        header, rows = {"customers": (CUSTOMERS_HEADER, _customers),
                        "products": (PRODUCTS_HEADER, _products),
                        "orders": (ORDERS_HEADER, _orders)}[name]
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows(size, rnd))
    return path


def _number(field: str) -> dict[str, Any]:
    return {"field": field, "type": "number"}


PLAIN: dict[str, dict[str, Any]] = {
    "customers": {"columns": {
        "entity_id": "id", "created_at": {"field": "timestamp_acquired", "type": "timestamp"},
        "dob": "properties.dob", "gender": "gender", "is_subscribed": "properties.subscribed",
        "country": "country_id", "phone": "phone_number"},
        "constants": {"@collection": "magento"}, "timezone": "Europe/London"},
    "products": {"columns": {
        "entity_id": "id", "name": "title", "price": _number("price"),
        "status": "properties.status", "url_key": "properties.url_key", "image": "image_url",
        "qty": _number("properties.qty")}, "constants": {"currency": "GBP"}},
    "orders": {"columns": {
        "increment_id": "id", "created_at": {"field": "timestamp", "type": "timestamp"},
        "order_currency_code": "currency", "customer_id": "customer.id",
        "customer_email": "customer.email", "subtotal": _number("subtotal"),
        "discount_amount": _number("discount"), "shipping_amount": _number("shipping"),
        "tax_amount": _number("tax"), "grand_total": _number("grand_total"),
        "sku": "lineitems[].sku", "name": "lineitems[].properties.name",
        "qty_ordered": {"field": "lineitems[].quantity", "type": "integer"},
        "price": _number("lineitems[].unit_price"), "row_total": _number("lineitems[].subtotal"),
        "item_discount_amount": _number("lineitems[].properties.discount")},
        "timezone": "Europe/London"},
}

OPTIONS: dict[str, dict[str, Any]] = {
    "customers": {"columns": {
        "entity_id": {"field": ["id", "customer_id"]},
        "created_at": {"field": "timestamp_acquired", "type": "timestamp", "on_error": "omit"},
        "dob": {"field": "date_of_birth", "expr": "date(value, '%d/%m/%Y')",
                "on_error": "omit"},
        "gender": {"field": "gender", "values": {"1": "m", "2": "f", "3": ""}},
        "is_subscribed": {"field": "marketing_optin", "values": {"1": "EXPLICITLY_OPTEDIN"},
                          "default": "NOT_SPECIFIED"},
        "country": {"field": "country_id", "expr": "country(value)"},
        "phone": {"field": "phone_number", "expr": "e164(value, 'GB')", "on_error": "omit"}},
        "constants": {"@collection": "magento"}, "timezone": "Europe/London"},
    "products": {"columns": {
        "entity_id": "id", "name": "title", "price": _number("price"),
        "status": {"field": "is_active", "type": "boolean", "values": {"1": "true",
                                                                      "2": "false"}},
        "url_key": {"field": "url", "expr": "'https://shop.example/' + value + '.html'"},
        "image": {"field": "image_url",
                  "expr": "'https://shop.example/media/catalog/product' + value"}},
        "drop": ["qty"], "constants": {"currency": "GBP"}},
    "orders": {"columns": {
        **PLAIN["orders"]["columns"],
        "item_discount_amount": {"field": "lineitems[].discount", "type": "number",
                                 "expr": "-value"}}, "timezone": "Europe/London"},
}


def worker(job: str, name: str, path: str, mode: str) -> None:
    """In a fresh process, with the tree to measure first on sys.path: one measurement."""
    import asyncio

    import msgspec

    from ometria_sync.sources.files.csv import CsvOptions, CsvPart
    from ometria_sync.sources.files.location import LocalFile

    settings = (PLAIN if job == "plain" else OPTIONS)[name]
    options = msgspec.convert(settings, CsvOptions)
    if mode == "read":
        async def read() -> int:
            count = 0
            async for chunk in CsvPart(LocalFile(Path(path)), options).read(None):
                count += sum(item.record is not None for item in chunk)
            return count

        started = time.process_time()
        records = asyncio.run(read())
        cpu = time.process_time() - started
    else:
        from ometria_sync.sources.mapping import load_zone
        from ometria_sync.sources.rows import RowMapper

        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        header, rows = rows[0], rows[1:]
        zone = load_zone("timezone", options.timezone)
        try:  # the new tree plans in sources/columns.py, with the zone
            from ometria_sync.sources.columns import plan_columns
            columns = plan_columns("s", options, header, zone)
        except ImportError:
            from ometria_sync.sources import mapping
            columns = mapping.plan_columns("s", options, header)  # type: ignore[attr-defined]
        mapper = RowMapper(columns, options.constants, zone, len(header))
        map_row = mapper.map_row
        records = 0
        started = time.process_time()
        while True:  # small files are mapped again until the timing is long enough
            for cells in rows:
                try:
                    map_row(cells)
                    records += 1
                except ValueError:
                    pass
            cpu = time.process_time() - started
            if cpu >= 0.3:
                break
    import ometria_sync
    print(json.dumps({"records": records, "cpu": cpu, "tree": ometria_sync.__file__}))


def measure(tree: Path, job: str, name: str, path: Path, mode: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--worker", job, name, str(path), mode],
                         env=env, capture_output=True, text=True, check=True, cwd=tree)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.pop("tree").startswith(str(tree)), f"{tree} was not the tree measured"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, default=Path("/tmp/old-mapping"))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--files", default="customers,products,orders")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if not (args.old / "ometria_sync").is_dir():
        sys.exit(f"no old tree at {args.old}: git archive 19fa656 | tar -x -C {args.old}")
    trees = {"old": args.old, "new": HERE}
    print(f"old: {args.old}  new: {HERE}  scale {args.scale}  repeat {args.repeat}")
    print(f"{'file':10} {'mode':5} {'job':8} {'records':>8} {'old rec/CPU-s':>14} "
          f"{'new rec/CPU-s':>14} {'new/old':>8}")
    for name in args.files.split(","):
        path = data(name, args.scale)
        for mode in ("map", "read"):
            runs: dict[tuple[str, str], list[float]] = {}
            counts: dict[tuple[str, str], int] = {}
            for _ in range(args.repeat):
                for tree, job in (("old", "plain"), ("new", "plain"), ("new", "options")):
                    result = measure(trees[tree], job, name, path, mode)
                    runs.setdefault((tree, job), []).append(result["records"] / result["cpu"])
                    counts[(tree, job)] = int(result["records"])
            old = statistics.median(runs[("old", "plain")])
            for job in ("plain", "options"):
                new = statistics.median(runs[("new", job)])
                shown_old = f"{old:14,.0f}" if job == "plain" else f"{'-':>14}"
                print(f"{name:10} {mode:5} {job:8} {counts[('new', job)]:8} {shown_old} "
                      f"{new:14,.0f} {new / old:8.2f}", flush=True)
            if mode == "read" and counts[("old", "plain")] != counts[("new", "plain")]:
                print(f"  (old mapped {counts[('old', 'plain')]} records)")


if __name__ == "__main__":
    main()
