"""Issue 34, side by side in one run: an unchanged nightly rerun against bare parsing, and a
first run with PostgreSQL state against SQLite state.

    .venv/bin/python bench/bench_unchanged.py [--records 200000] [--first-run-records 1000000]
        [--repeat 3] [--skip-first-run] [--csv-only | --orders-csv-only]

Runs the real engine in-process (sources, validation, batching, change index, checkpoints)
with an in-memory pusher that acknowledges everything, so the network is out of the way.

* **Unchanged rerun** (contacts and orders as JSON Lines, contacts as CSV with a mapping): a
  first run stores what Ometria acknowledged; then the same bytes are read again with a new
  modification time (a new file to the checkpoint store: read from the top), ``--repeat``
  times. Printed: records per CPU second of the rerun (process CPU time, every thread), and of
  the baseline over the same file, ``json.loads`` of each line, and their ratio (the goal:
  >= 2.0). The CSV is measured against two baselines in the same run: ``csv.reader`` of each
  row, and ``json.loads`` of the same records (the mapping's output) as JSON Lines; once as
  written, once with a quoted cell in every tenth row (``contacts csv "1"``), once with every
  cell quoted (``contacts csv ""``). Then ``orders csv``: the JSON Lines orders (``--records``
  / 3, three line items each) as a CSV export of one row per line item, folded into orders
  by its mapping; records are orders, against ``json.loads`` of the same orders (the
  mapping's output) as JSON Lines, and ``csv.reader`` of its rows (per order: rows / 3).
* **First run, PostgreSQL against SQLite state** (``--first-run-records`` contacts, fresh
  state each time): median wall time of ``--repeat`` runs of each, alternated, and their ratio
  (the goal: <= 1.2). PostgreSQL state goes to ``bench_*`` schemas on
  ``$OMETRIA_SYNC_BENCH_PG_DSN``, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from benchlib import KEY, PG_DSN, data_file, drop_bench_schemas, write_contacts_csv, write_job

from ometria_sync.config import load_job
from ometria_sync.logs import configure_logging
from ometria_sync.ometria.push import PushResult, SentHook
from ometria_sync.pipeline.job_run import run_job

#: no pacing worth the name: the pusher answers at once
UNPACED = 10_000


class AckingPusher:
    """Acknowledges every batch, counting the records."""

    def __init__(self) -> None:
        self.records = 0

    async def push(self, body: bytes, count: int, on_sent: SentHook | None = None) -> PushResult:
        self.records += count
        return PushResult(202, accepted=count)

    async def aclose(self) -> None:
        return None


async def _run(job_path: Path) -> tuple[int, float, float]:
    """(records sent, wall seconds, CPU seconds) of one run."""
    pusher = AckingPusher()
    job = load_job(job_path)
    wall, cpu = time.perf_counter(), time.process_time()
    result = await run_job(job, pusher_factory=lambda stream: pusher, handle_signals=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.exit_code == 0, result
    return pusher.records, wall, cpu


def run(job_path: Path) -> tuple[int, float, float]:
    return asyncio.run(_run(job_path))


def _touch(path: Path) -> None:
    """A new modification time: the same bytes are a new file to the checkpoint store."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def json_loads_rate(path: Path) -> float:
    """Lines per CPU second of reading ``path`` and ``json.loads`` of each line."""
    cpu = time.process_time()
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
    return n / (time.process_time() - cpu)


def csv_reader_rate(path: Path) -> float:
    """Rows per CPU second of reading ``path`` with the csv module (header row excluded)."""
    cpu = time.process_time()
    n = -1
    with path.open(newline="", encoding="utf-8") as fh:
        for _ in csv.reader(fh):
            n += 1
    return n / (time.process_time() - cpu)


def quote_every_cell(data: Path, target: Path) -> Path:
    """``data`` written again with every cell quoted (``csv.QUOTE_ALL``, as some exports do):
    every line then holds the quote, and the fast path scans each one."""
    with data.open(newline="", encoding="utf-8") as src, target.open("w", newline="") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(src))
    return target


def quote_some_cells(data: Path, target: Path, every: int = 10) -> Path:
    """``data`` with the first name of every ``every``-th row holding a comma, so quoted (as
    ``csv.QUOTE_MINIMAL`` writes it, the usual way): a few lines hold the quote."""
    with data.open(newline="", encoding="utf-8") as src, target.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for n, row in enumerate(csv.reader(src)):
            if n and n % every == 0:
                row[2] += ", Jr"
            writer.writerow(row)
    return target


def mapped_jsonl(data: Path, target: Path) -> Path:
    """The records the CSV job maps ``data`` to, as JSON Lines (the ``json.loads`` baseline of
    the same records)."""
    fields = ("id", "email", "firstname", "marketing_optin", "customer_id")
    with data.open(newline="", encoding="utf-8") as src, target.open("w") as out:
        for row in csv.DictReader(src):
            record = {"@collection": "shop", **{f: row[f] for f in fields}}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return target


#: an order's own columns (repeated on each of its rows) and a line item's, with their mapping
ORDER_COLUMNS = {
    "id": '"id"', "timestamp": '"timestamp"', "status": '"status"',
    "is_valid": '{ field = "is_valid", type = "boolean" }', "currency": '"currency"',
    "subtotal": '{ field = "subtotal", type = "number" }',
    "discount": '{ field = "discount", type = "number" }',
    "shipping": '{ field = "shipping", type = "number" }',
    "grand_total": '{ field = "grand_total", type = "number" }', "channel": '"channel"',
    "store": '"store"', "customer_id": '"customer.id"', "customer_email": '"customer.email"',
    "product_id": '"lineitems[].product_id"', "sku": '"lineitems[].sku"',
    "quantity": '{ field = "lineitems[].quantity", type = "integer" }',
    "unit_price": '{ field = "lineitems[].unit_price", type = "number" }',
    "item_subtotal": '{ field = "lineitems[].subtotal", type = "number" }'}


def write_orders_csv(path: Path, n: int) -> None:
    """The ``n`` orders of the JSON Lines benchmark file (3 line items each) as a CSV export
    with one row per line item, the order's own columns repeated on each."""
    order_fields = list(ORDER_COLUMNS)[:11]
    with data_file("order", n).open("rb") as src, path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(ORDER_COLUMNS)
        for line in src:
            order = json.loads(line)
            own = [str(order[f]).lower() if isinstance(order[f], bool) else order[f]
                   for f in order_fields]
            for item in order["lineitems"]:
                writer.writerow([*own, order["customer"]["id"], order["customer"]["email"],
                                 item["product_id"], item["sku"], item["quantity"],
                                 item["unit_price"], item["subtotal"]])


def orders_csv_job(folder: Path, data: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    columns = ", ".join(f"{name} = {spec}" for name, spec in ORDER_COLUMNS.items())
    job.write_text(
        '[ometria]\nbase_url = "http://127.0.0.1:9/v2"\nrate_limit_per_second = 10000\n\n'
        '[report]\nprogress = "off"\n\n'
        '[[streams]]\nname = "orders"\nrecord_type = "order"\n[streams.source]\n'
        f'kind = "csv"\npath = "{data}"\ncolumns = {{ {columns} }}\n')
    return job


def mapped_orders_jsonl(job: Path, target: Path) -> Path:
    """The orders the CSV job maps its file to (read with the job's own source), as JSON
    Lines: the ``json.loads`` baseline of the same orders."""
    source = load_job(job).streams[0].source

    async def write() -> None:
        with target.open("wb") as out:
            for part in await source.open().parts():
                async for items in part.read(None):
                    out.writelines(msgspec.json.encode(i.record) + b"\n" for i in items)

    asyncio.run(write())
    return target


def csv_job(folder: Path, data: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    job.write_text(
        '[ometria]\nbase_url = "http://127.0.0.1:9/v2"\nrate_limit_per_second = 10000\n\n'
        '[report]\nprogress = "off"\n\n'
        '[[streams]]\nname = "contacts"\nrecord_type = "contact"\n[streams.source]\n'
        f'kind = "csv"\npath = "{data}"\nconstants = {{ "@collection" = "shop" }}\n'
        'columns = { id = "id", email = "email", firstname = "firstname", '
        'marketing_optin = "marketing_optin", customer_id = "customer_id" }\n')
    return job


def unchanged_rerun(name: str, data: Path, job: Path,
                    baselines: list[tuple[str, Callable[[], float]]], repeat: int) -> str:
    """Lines of the table: a first run, then ``repeat`` unchanged reruns against each
    baseline, alternated (one line per baseline, the same reruns)."""
    sent, _, _ = run(job)
    rates: list[float] = []
    bases: dict[str, list[float]] = {label: [] for label, _ in baselines}
    resent = 0
    for _ in range(repeat):
        _touch(data)
        again, _, cpu = run(job)
        resent += again
        rates.append(sent / cpu)
        for label, baseline in baselines:
            bases[label].append(baseline())
    rate = statistics.median(rates)
    lines = []
    for label, _ in baselines:
        base = statistics.median(bases[label])
        lines.append(f"{name:<16} {sent:>9,} {rate:>14,.0f} {base:>14,.0f} {rate / base:>6.2f}x "
                     f"{resent:>7,}  vs {label}")
    return "\n".join(lines)


def first_runs(root: Path, n: int, repeat: int) -> str:
    data = data_file("contact", n)
    walls: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    try:
        for i in range(repeat):
            for store in walls:
                folder = root / f"first-{store}-{i}"
                job = write_job(folder, data, "contact", rate_limit_per_second=UNPACED,
                                state_url=PG_DSN if store == "postgres" else None)
                sent, wall, _ = run(job)
                assert sent == n, (store, sent)
                walls[store].append(wall)
                shutil.rmtree(folder)
    finally:
        drop_bench_schemas(PG_DSN)
    sqlite, pg = (statistics.median(walls[s]) for s in ("sqlite", "postgres"))
    runs = "; ".join(f"{s}: {', '.join(f'{t:.1f}' for t in w)}" for s, w in walls.items())
    return (f"first run, {n:,} contacts, median of {repeat} (wall s): SQLite {sqlite:.1f} s, "
            f"PostgreSQL {pg:.1f} s, ratio {pg / sqlite:.2f}x  ({runs})")


def contacts_csv_cases(root: Path, data: Path) -> list[tuple[str, Path, Path, Path]]:
    """The contacts CSV as written, with a quoted cell in every tenth row, and with every
    cell quoted: (name, file, job, the same records as JSON Lines)."""
    same = mapped_jsonl(data, root / "contacts-mapped.jsonl")
    some = quote_some_cells(data, root / "contacts-some.csv")
    quoted = quote_every_cell(data, root / "contacts-quoted.csv")
    return [("contacts csv", data, csv_job(root / "csv", data), same),
            ('contacts csv "1"', some, csv_job(root / "csvs", some),
             mapped_jsonl(some, root / "contacts-some.jsonl")),
            ('contacts csv ""', quoted, csv_job(root / "csvq", quoted), same)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000,
                        help="records of each unchanged rerun")
    parser.add_argument("--first-run-records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-first-run", action="store_true")
    parser.add_argument("--skip-unchanged", action="store_true")
    parser.add_argument("--csv-only", action="store_true",
                        help="of the unchanged reruns, only the CSV ones")
    parser.add_argument("--orders-csv-only", action="store_true",
                        help="of the unchanged reruns, only the orders CSV one")
    args = parser.parse_args()
    configure_logging("json", "error")
    os.environ["OMETRIA_API_KEY"] = KEY
    root = Path(tempfile.mkdtemp(prefix="bench-unchanged-"))
    try:
        if not args.skip_unchanged:
            print(f"unchanged rerun, median of {args.repeat}; records/CPU-s of the rerun and of "
                  "the baseline over the same file")
            print(f"{'source':<16} {'records':>9} {'rerun/CPU-s':>14} {'baseline/CPU-s':>14} "
                  f"{'ratio':>7} {'resent':>7}")
            jsonl = not (args.csv_only or args.orders_csv_only)
            for record_type in ("contact", "order") if jsonl else ():
                data = root / f"{record_type}s.jsonl"
                shutil.copyfile(data_file(record_type, args.records), data)
                job = write_job(root / record_type, data, record_type,
                                rate_limit_per_second=UNPACED)
                print(unchanged_rerun(f"{record_type}s jsonl", data, job,
                                      [("json.loads", partial(json_loads_rate, data))],
                                      args.repeat), flush=True)
            data = root / "contacts.csv"
            write_contacts_csv(data, args.records)
            for name, path, csv_case, baseline in (
                    () if args.orders_csv_only else contacts_csv_cases(root, data)):
                print(unchanged_rerun(name, path, csv_case,
                                      [("csv.reader", partial(csv_reader_rate, path)),
                                       ("json.loads", partial(json_loads_rate, baseline))],
                                      args.repeat), flush=True)
            orders = root / "orders.csv"
            write_orders_csv(orders, args.records // 3)
            job = orders_csv_job(root / "orders-csv", orders)
            same = mapped_orders_jsonl(job, root / "orders-mapped.jsonl")
            print(unchanged_rerun("orders csv", orders, job,
                                  [("csv.reader (rows / 3)",
                                    lambda: csv_reader_rate(orders) / 3),
                                   ("json.loads", partial(json_loads_rate, same))],
                                  args.repeat), flush=True)
            print("baseline: json.loads of each line; for CSV, csv.reader of each row and "
                  "json.loads of the same records as JSON Lines; goal: ratio >= 2.0")
        if not args.skip_first_run:
            print(first_runs(root, args.first_run_records, args.repeat) + "; goal: <= 1.2x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
