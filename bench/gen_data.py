"""Make Ometria-shaped sample data: products, contacts and orders as JSON Lines.

    python bench/gen_data.py OUT_DIR --contacts 10000 --orders 2000 --products 200 [--seed 7]

Deterministic for a given seed. Used for the sample job in config/ and by the benchmarks.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIRST = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo"]
LAST = ["Lee", "Patel", "Smith", "Nguyen", "Garcia", "Okafor", "Kowalski", "Brown"]
OPTIN = ["EXPLICITLY_OPTEDIN", "NOT_SPECIFIED", "EXPLICITLY_OPTEDOUT"]


def product(i: int) -> dict[str, object]:
    return {"@type": "product", "id": f"p{i}", "sku": f"SKU-{i:05d}", "title": f"Product {i}",
            "price": round(5 + (i % 40) * 2.5, 2), "currency": "GBP",
            "url": f"https://shop.example.com/p/{i}", "is_active": True, "is_in_stock": i % 9 != 0}


def contact(i: int, rnd: random.Random) -> dict[str, object]:
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i * 7)
    return {"@type": "contact", "@collection": "shop", "id": f"c{i}", "customer_id": f"cust{i}",
            "email": f"{first.lower()}.{last.lower()}{i}@example.com", "firstname": first,
            "lastname": last, "marketing_optin": rnd.choice(OPTIN),
            "timestamp_subscribed": when.isoformat(),
            "properties": {"loyalty_tier": rnd.choice(["bronze", "silver", "gold"])}}


def order(i: int, contacts: int, products: int, rnd: random.Random) -> dict[str, object]:
    cust = rnd.randrange(max(contacts, 1))
    items = []
    for _ in range(3):
        p = rnd.randrange(max(products, 1))
        qty = rnd.randint(1, 3)
        unit = round(5 + (p % 40) * 2.5, 2)
        items.append({"product_id": f"p{p}", "sku": f"SKU-{p:05d}", "quantity": qty,
                      "unit_price": unit, "subtotal": round(unit * qty, 2)})
    subtotal = round(sum(float(str(it["subtotal"])) for it in items), 2)
    when = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=i * 13)
    return {"@type": "order", "id": f"o{i}", "timestamp": when.isoformat(), "status": "complete",
            "is_valid": True, "currency": "GBP", "subtotal": subtotal, "discount": 0,
            "shipping": 3.95, "grand_total": round(subtotal + 3.95, 2), "channel": "online",
            "store": "shop.example.com/uk",
            "customer": {"id": f"cust{cust}", "email": f"user{cust}@example.com"},
            "lineitems": items}


def write(path: Path, rows: object) -> None:
    with path.open("w") as fh:
        for row in rows:  # type: ignore[attr-defined]
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "products.jsonl", (product(i) for i in range(args.products)))
    write(args.out / "contacts.jsonl", (contact(i, rnd) for i in range(args.contacts)))
    write(args.out / "orders.jsonl",
          (order(i, args.contacts, args.products, rnd) for i in range(args.orders)))


if __name__ == "__main__":
    main()
