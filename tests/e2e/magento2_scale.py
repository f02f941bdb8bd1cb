"""Issue 30's trial at scale, shared by the ``slow`` test and ``bench/bench_magento2.py``: a
seeded Magento database backfilled through the three preset streams (one job: products, then
contacts, then orders) by the real CLI against the emulator, then a second night.

Checked, and returned as figures:

* every valid record stored as the contract computes it (all of them, field by field, against
  ``tests/sources/magento2/expected.py``), every invalid one dead-lettered (exit 3);
* night 2, after 1% of the rows of each entity changed and 0.5% were touched (``updated_at``
  alone), sends exactly the changed records, plus the late order below;
* an order committed during night 1's orders read with an ``updated_at`` the read had already
  passed (inside the look back of the final checkpoint) is not sent by night 1 and is by night 2;
* peak RSS of each night's CLI process (``VmHWM`` from ``/proc``, read until it exits);
* transactions: ``information_schema.innodb_trx`` joined to the processlist, sampled every 0.2 s
  during night 1 for the job's database: how many were seen, the oldest age seen (its start is
  to the second, so ages carry up to 1 s of rounding), how often one was idle (``Sleep``);
* a short run at 4 requests/s: the emulator's most requests in any one-second window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import signal
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncmy
import msgspec

from ometria_sync.emulator import EmulatorOptions, running_emulator
from tests.e2e.conftest import KEY, CliResult, Workspace
from tests.magento2 import (
    PRODUCT_ATTRIBUTES,
    OrderItemRow,
    OrderRow,
    People,
    Shop,
    create_schema,
    seed_contacts,
    seed_orders,
    seed_products,
    seed_stores,
    write_orders,
)
from tests.mysql import Database, connect
from tests.sources.magento2.expected import (
    as_stored,
    contact_records,
    order_record,
    product_record,
)

JOB = """
[[streams]]
name = "products"
record_type = "product"
source = {{ kind = "magento2", entity = "products", dsn_env = "MAGENTO_DSN", page_size = {page} }}

[[streams]]
name = "contacts"
record_type = "contact"
source = {{ kind = "magento2", entity = "contacts", dsn_env = "MAGENTO_DSN", page_size = {page} }}

[[streams]]
name = "orders"
record_type = "order"
source = {{ kind = "magento2", entity = "orders", dsn_env = "MAGENTO_DSN", page_size = {page} }}
"""
#: every order's updated_at is before this (the generator's lie within 2024)
END = dt.datetime(2025, 1, 1)
#: the last orders are packed into this many seconds before END, so that the late order can
#: be written while the read is between them
PACKED_SECONDS = 250
CODES = {**{i: c for c, (i, _) in PRODUCT_ATTRIBUTES.items()}, 93: "color", 144: "size"}


def refused_contact(record: dict[str, Any]) -> bool:
    """Section 8: an email that is not an address, a country that is not ISO (case kept)."""
    email, country = record.get("email", "x@y.z"), record.get("country_id", "GB")
    return "@" not in email or not (country.isupper() and len(country) == 2)


def valid_orders(orders: dict[int, OrderRow], keep_invalid: bool = False
                 ) -> dict[str, dict[str, Any]]:
    """The orders as the contract computes them, by id, without those validation refuses
    (section 8: a NULL or spaced increment_id, a fractional quantity) unless
    ``keep_invalid`` (a NULL id is then keyed by the order's entity_id)."""
    records = {r.get("id", f"entity-{o.entity_id}"): r for o in orders.values()
               for r in [order_record(o, CODES)]}
    return {k: r for k, r in records.items() if keep_invalid or (
        " " not in r.get("id", " ") and all(
            li["quantity"] % 1 == 0 and li.get("quantity_refunded", 0) % 1 == 0
            for li in r["lineitems"]))}


class Model(msgspec.Struct):
    """What was seeded, and the records the contract says it holds."""

    shop: Shop
    people: People
    orders: dict[int, OrderRow]
    seed_seconds: float
    products: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    sales: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)

    def expect(self) -> None:
        self.products = {str(p.entity_id): {k: v for k, v in product_record(self.shop, p).items()
                                            if v is not None}
                         for p in self.shop.products.values()}
        self.contacts = {k: v for k, v in contact_records(self.shop, self.people).items()
                         if not refused_contact(v)}
        self.sales = valid_orders(self.orders)


async def seed(db: Database, customers: int, products: int, orders: int) -> Model:
    """The schema, stores, and the three entities; the last orders packed before END."""
    started = time.perf_counter()
    await create_schema(db)
    shop = await seed_stores(db)
    await seed_products(db, shop, products)
    people = await seed_contacts(db, customers)
    sales = await seed_orders(db, orders)
    packed = min(20_000, orders // 10)
    await db.execute(f"UPDATE sales_order SET updated_at = %s - INTERVAL FLOOR(({orders} - "
                     f"entity_id) * {PACKED_SECONDS} / {packed}) SECOND WHERE entity_id > "
                     f"{orders - packed}", END)
    model = Model(shop, people, sales, time.perf_counter() - started)
    model.expect()
    return model


class TrxSampler:
    """Samples the transactions open on ``database`` (other than its own) every 200 ms."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.samples = self.open_seen = self.idle_seen = 0
        #: (thread, start second) -> [first seen, last seen, statements seen while open]
        self.transactions: dict[tuple[int, Any], list[Any]] = {}
        self.oldest = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="",
                                     autocommit=True)
        try:
            async with conn.cursor() as cursor:
                while not stop.is_set():
                    await cursor.execute(
                        "SELECT t.trx_mysql_thread_id, t.trx_started, p.COMMAND, p.INFO, "
                        "TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1e6 "
                        "FROM information_schema.innodb_trx t JOIN information_schema."
                        "PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = %s "
                        "AND p.ID <> CONNECTION_ID()", (self.database,))
                    self.samples += 1
                    now = time.perf_counter()
                    for thread, started, command, info, age in await cursor.fetchall():
                        self.open_seen += 1
                        self.idle_seen += command == "Sleep"
                        seen = self.transactions.setdefault((thread, started), [now, now, []])
                        seen[1] = now
                        seen[2].append((command, (info or "")[:80]))
                        self.oldest = max(self.oldest, float(age))
                    # InnoDB refreshes this table's cache only when it was not read for 0.1 s
                    # (trx0i_s.cc, CACHE_MIN_IDLE_TIME_US): read more often, it freezes
                    await asyncio.sleep(0.2)
        finally:
            conn.close()

    def figures(self) -> dict[str, Any]:
        longest = max((last - first for first, last, _ in self.transactions.values()),
                      default=0.0)
        return {"trx_longest_seen_seconds": longest, "trx_samples": self.samples,
                "trx_open_in_samples": self.open_seen,
                "trx_distinct": len(self.transactions), "trx_oldest_seconds": self.oldest,
                "trx_idle_in_samples": self.idle_seen}


async def _peak_rss(proc: asyncio.subprocess.Process) -> float:
    """The process's VmHWM (MB), read every 100 ms until it exits: the last value read."""
    peak = 0.0
    path = Path(f"/proc/{proc.pid}/status")
    while proc.returncode is None:
        try:
            for line in path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        await asyncio.sleep(0.1)
    return peak


async def run_watched(workspace: Workspace, url: str, timeout: float, database: str | None = None,
                      ) -> tuple[CliResult, float, dict[str, Any]]:
    """``run job.toml`` with its peak RSS, and (``database``) the transactions sampled."""
    started = time.perf_counter()
    proc = await workspace.start("run", "job.toml", url=url)
    stop = asyncio.Event()
    sampler = TrxSampler(database) if database else None
    sampling = asyncio.create_task(sampler.run(stop)) if sampler else None
    rss = asyncio.create_task(_peak_rss(proc))
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        stop.set()
        if sampling:
            await sampling
    assert proc.returncode is not None
    result = CliResult(proc.returncode, out.decode(), err.decode(),
                       time.perf_counter() - started)
    return result, await rss, sampler.figures() if sampler else {}


def _late_order(model: Model) -> OrderRow:
    """A new order, valid, whose updated_at the night-1 read has passed when it is written."""
    entity = max(model.orders) + 1
    stamp_ = END - dt.timedelta(seconds=PACKED_SECONDS - 20)
    item = OrderItemRow(10_000_000, entity, None, 7, None, "LATE-1", Decimal(1), None,
                        Decimal("9.5"), Decimal("9.5"), None, Decimal(0), None, None, None,
                        None, None)
    return OrderRow(entity, f"LATE{entity}", dt.datetime(2024, 12, 31), stamp_, "processing",
                    "processing", "GBP", Decimal("9.5"), Decimal("9.5"), None, None, None, 1,
                    None, None, None, None, 1, "late@example.com", "Lou", "Late",
                    [(10_000_000, "billing", "Leeds", None, "LS1", "GB", "Lou", "Late")],
                    [(10_000_000, "checkmo")], [item])


async def _write_late_order(db: Database, model: Model, seen: Any) -> OrderRow:
    """Once the first valid order packed 200 s before END has arrived (the read is past it):
    the late order, 230 s before END, behind the read and inside the final look back."""
    top = max(model.orders)
    after = top - min(20_000, len(model.orders) // 10) * 200 // PACKED_SECONDS
    marker = min(o.entity_id for o in model.orders.values()
                 if o.entity_id >= after and o.increment_id in model.sales)
    while f"order:{model.orders[marker].increment_id}" not in seen:
        await asyncio.sleep(0.01)
    late = _late_order(model)
    await write_orders(db, {late.entity_id: late}, "")
    return late


def _stored(store: Any, kind: str, keys: Any) -> dict[str, Any]:
    store.drain(len(store.queue))
    return {k: store.get(kind, f"default/{k}" if kind == "contact" else k) for k in keys}


def _wrong(store: Any, kind: str, expected: dict[str, dict[str, Any]]) -> list[str]:
    stored = _stored(store, kind, expected)
    return [k for k, v in expected.items() if stored[k] != as_stored(v)]


async def _night2_changes(db: Database, model: Model) -> int:
    """1% of each entity's rows changed, 0.5% touched (updated_at alone), in the database and
    in the model; the number of records that changed."""
    rng = random.Random(30)
    products = [p for p in model.shop.products.values() if 0 in p.values.get("price", {})]
    customers = [c for c in model.people.customers.values() if str(c.entity_id) in model.contacts]
    orders = [o for o in model.orders.values() if o.increment_id in model.sales]
    changed: list[list[Any]] = [rng.sample(products, len(model.shop.products) // 100),
               rng.sample(customers, len(model.people.customers) // 100),
               rng.sample(orders, len(model.orders) // 100)]
    touched: list[list[Any]] = [
        rng.sample(list(model.shop.products), len(model.shop.products) // 200),
        rng.sample(list(model.people.customers), len(model.people.customers) // 200),
        rng.sample(list(model.orders), len(model.orders) // 200)]

    def ids(rows: list[Any]) -> str:
        return ", ".join(str(getattr(r, "entity_id", r)) for r in rows)

    await db.execute("UPDATE catalog_product_entity_decimal SET value = value + 1 WHERE "
                     f"attribute_id = 77 AND store_id = 0 AND entity_id IN ({ids(changed[0])})")
    await db.execute("UPDATE customer_entity SET firstname = CONCAT('Changed', entity_id), "
                     f"updated_at = UTC_TIMESTAMP() WHERE entity_id IN ({ids(changed[1])})")
    await db.execute("UPDATE sales_order SET grand_total = grand_total + 1, updated_at = "
                     f"UTC_TIMESTAMP() WHERE entity_id IN ({ids(changed[2])})")
    for table, rows in zip(("catalog_product_entity", "customer_entity", "sales_order"),
                           touched, strict=True):
        await db.execute(f"UPDATE {table} SET updated_at = UTC_TIMESTAMP() WHERE entity_id "
                         f"IN ({ids(rows)})")
    for product in changed[0]:
        product.values["price"][0] += 1
        model.products[str(product.entity_id)] = {
            k: v for k, v in product_record(model.shop, product).items() if v is not None}
    for customer in changed[1]:
        customer.firstname = f"Changed{customer.entity_id}"
    model.contacts.update({k: v for k, v in contact_records(model.shop, model.people).items()
                           if k in {str(c.entity_id) for c in changed[1]}})
    for order in changed[2]:
        assert order.grand_total is not None
        order.grand_total += 1
        model.sales[str(order.increment_id)] = order_record(order, CODES)
    return sum(map(len, changed))


async def paced_run(db: Database, seconds: float = 8.0) -> dict[str, Any]:
    """The three streams at 4 requests/s (engine and emulator) for ``seconds`` from the
    first request, then SIGTERM: the emulator's arrival counts."""
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp), extra_env={"MAGENTO_DSN": db.dsn})
        workspace.job(JOB.format(page=500),
                      rate_limit_per_second=4)
        async with running_emulator(EmulatorOptions(api_key=KEY, port=0, seed=1, rate=4)
                                    ) as emu:
            proc = await workspace.start("run", "job.toml", url=emu.url)
            # from the first request on: a loaded machine may take seconds to start the CLI
            while emu.stats()["requests"] == 0 and proc.returncode is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(seconds)
            assert proc.returncode is None, "the paced run ended before it was stopped"
            proc.send_signal(signal.SIGTERM)
            await proc.communicate()
            stats = emu.stats()
    return {"paced_requests": stats["requests"], "paced_seconds": seconds,
            "paced_max_in_any_second": stats["max_requests_in_any_second"],
            "paced_exit": proc.returncode}


async def trial(db: Database, customers: int, products: int, orders: int, rate: int,
                page: int = 1000, timeout: float = 1800) -> dict[str, Any]:
    """The whole trial (see the module's docstring); asserts what it checks, returns figures."""
    from ometria_sync.emulator.behaviour import STORE

    model = await seed(db, customers, products, orders)
    figures: dict[str, Any] = {"seed_seconds": model.seed_seconds, "products": len(
        model.products), "contacts": len(model.contacts), "orders": len(model.sales)}
    total = len(model.products) + len(model.contacts) + len(model.sales)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp), extra_env={"MAGENTO_DSN": db.dsn})
        workspace.job(JOB.format(page=page), rate_limit_per_second=rate, request_timeout=30)
        async with running_emulator(EmulatorOptions(api_key=KEY, port=0, seed=1, rate=rate)
                                    ) as emu:
            store = emu.app[STORE]
            writing = asyncio.create_task(_write_late_order(db, model, store.stats.seen))
            night1, figures["rss_night1_mb"], trx = await run_watched(
                workspace, emu.url, timeout, db.name)
            figures.update(trx, night1_seconds=night1.seconds, night1_exit=night1.code)
            if not writing.done():
                writing.cancel()
                raise AssertionError("night 1 ended before the late order could be written")
            late = await writing
            first = emu.stats()
            assert night1.code == 3, night1.stderr[-3000:]
            assert first["distinct_ids"] == first["records_accepted"] == total, first
            assert f"order:{late.increment_id}" not in store.stats.seen
            started = time.perf_counter()
            wrong = {kind: _wrong(store, kind, expected)[:5] for kind, expected in (
                ("product", model.products), ("contact", model.contacts),
                ("order", model.sales))}
            figures["compare_seconds"] = time.perf_counter() - started
            assert not any(wrong.values()), wrong
            changed = await _night2_changes(db, model)
            model.sales[str(late.increment_id)] = order_record(late, CODES)
            night2, figures["rss_night2_mb"], _ = await run_watched(workspace, emu.url, timeout)
            second = emu.stats()
            assert night2.code in (0, 3), night2.stderr[-3000:]
            sent = second["records_accepted"] - first["records_accepted"]
            figures.update(night2_seconds=night2.seconds, night2_changed=changed,
                           night2_sent=sent, night1_rate=total / night1.seconds)
            assert sent == changed + 1, (sent, changed)
            wrong = {kind: _wrong(store, kind, expected)[:5] for kind, expected in (
                ("product", model.products), ("contact", model.contacts),
                ("order", model.sales))}
            assert not any(wrong.values()), wrong
    figures.update(await paced_run(db))
    assert figures["paced_max_in_any_second"] <= 4, figures
    assert figures["paced_requests"] >= 4 * (figures["paced_seconds"] - 3), figures
    return figures


async def in_new_database(customers: int, products: int, orders: int, rate: int,
                          page: int = 1000, then: Any = None) -> dict[str, Any]:
    """:func:`trial` in a database of its own (dropped afterwards); ``then(name)`` is awaited
    on the seeded database before it is dropped."""
    import uuid

    admin = await connect()
    name = f"m2scale_{uuid.uuid4().hex[:10]}"
    async with admin.cursor() as cursor:
        await cursor.execute(f"CREATE DATABASE {name}")
    db = Database(await connect(name), name)
    try:
        figures = await trial(db, customers, products, orders, rate, page)
        if then is not None:
            await then(name)
    finally:
        db.conn.close()
        async with admin.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE {name}")
        admin.close()
    return figures
