"""Validation and encoding speed on one core, side by side with a json.loads baseline.

    .venv/bin/python bench/bench_validation.py [--records 100000] [--repeat 5]

For contacts and for orders with three line items (bench/gen_data.py's shapes), times:

* ``engine``: what the batcher does per record: ``validate_record`` + the sorted-key msgspec
  encoding of the payload (the record already decoded, as the source hands it over);
* ``engine+decode``: the same, starting from the JSON line (msgspec decode first);
* ``baseline``: ``json.loads`` + hand-written checks of the same main rules + ``json.dumps``.

Prints the median records/s of ``--repeat`` rounds for each, interleaved in one process so
that machine noise hits all three alike, and the ratio engine+decode / baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_data import contact, order

from ometria_sync.schemas import validate_record
from ometria_sync.schemas.rules import CURRENCIES

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_OPTIN = {"EXPLICITLY_OPTEDIN", "EXPLICITLY_OPTEDOUT", "NOT_SPECIFIED"}


def _baseline_errors(record: dict[str, Any]) -> list[str]:
    """The hand-written checks a careful script would do: ids, email, opt-in, timestamps,
    currency, money types, discounts, line items."""
    errors = []
    rid = record.get("id")
    if not isinstance(rid, str) or not rid or " " in rid:
        errors.append("id")
    email = record.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
        errors.append("email")
    optin = record.get("marketing_optin")
    if optin is not None and optin not in _OPTIN:
        errors.append("marketing_optin")
    for key in ("timestamp", "timestamp_subscribed"):
        value = record.get(key)
        if value is not None and not _has_offset(value):
            errors.append(key)
    currency = record.get("currency")
    if currency is not None and currency not in CURRENCIES:
        errors.append("currency")
    errors.extend(_baseline_money_errors(record))
    return errors


def _has_offset(value: Any) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except (TypeError, ValueError):
        return False


def _baseline_money_errors(record: dict[str, Any]) -> list[str]:
    errors: list[str] = [key for key in ("grand_total", "subtotal", "shipping", "discount")
              if key in record and type(record[key]) not in (int, float)]
    if isinstance(record.get("discount"), (int, float)) and record["discount"] > 0:
        errors.append("discount")
    for item in record.get("lineitems") or ():
        if not (item.get("product_id") or item.get("sku")):
            errors.append("lineitems.product")
        if type(item.get("quantity")) is not int or item["quantity"] < 0:
            errors.append("lineitems.quantity")
        errors.extend(f"lineitems.{key}" for key in ("unit_price", "subtotal")
                      if type(item.get(key)) not in (int, float, type(None)))
    return errors


def _engine(record_type: str) -> Callable[[list[Any]], int]:
    encode = msgspec.json.Encoder(order="sorted").encode

    def run(records: list[Any]) -> int:
        size = 0
        for record in records:
            if validate_record(record_type, record).ok:
                size += len(encode(record))
        return size
    return run


def _engine_from_lines(record_type: str) -> Callable[[list[Any]], int]:
    encode = msgspec.json.Encoder(order="sorted").encode
    decode = msgspec.json.Decoder().decode

    def run(lines: list[Any]) -> int:
        size = 0
        for line in lines:
            record = decode(line)
            if validate_record(record_type, record).ok:
                size += len(encode(record))
        return size
    return run


def _baseline(lines: list[Any]) -> int:
    size = 0
    for line in lines:
        record = json.loads(line)
        if not _baseline_errors(record):
            size += len(json.dumps(record, sort_keys=True, separators=(",", ":")))
    return size


def _rate(fn: Callable[[list[Any]], int], data: list[Any]) -> float:
    started = time.perf_counter()
    fn(data)
    return len(data) / (time.perf_counter() - started)


def bench(record_type: str, records: list[dict[str, Any]], repeat: int) -> dict[str, float]:
    lines = [msgspec.json.encode(r) for r in records]
    assert all(validate_record(record_type, r).ok for r in records[:1000])
    assert not any(_baseline_errors(json.loads(line)) for line in lines[:1000])
    runs: dict[str, list[float]] = {"engine": [], "engine+decode": [], "baseline": []}
    engine, engine_lines = _engine(record_type), _engine_from_lines(record_type)
    for _ in range(repeat):
        runs["engine"].append(_rate(engine, records))
        runs["engine+decode"].append(_rate(engine_lines, lines))
        runs["baseline"].append(_rate(_baseline, lines))
    return {name: statistics.median(values) for name, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rnd = random.Random(7)
    data = {
        "contact": [contact(i, rnd) for i in range(args.records)],
        "order": [order(i, args.records, 500, rnd) for i in range(args.records // 2)],
    }
    print(f"records/s, median of {args.repeat} rounds, one core")
    print(f"{'type':<8} {'engine':>10} {'engine+decode':>14} {'baseline':>10} {'ratio':>6}")
    for record_type, records in data.items():
        result = bench(record_type, records, args.repeat)
        ratio = result["engine+decode"] / result["baseline"]
        print(f"{record_type:<8} {result['engine']:>10,.0f} {result['engine+decode']:>14,.0f} "
              f"{result['baseline']:>10,.0f} {ratio:>5.2f}x")


if __name__ == "__main__":
    main()
