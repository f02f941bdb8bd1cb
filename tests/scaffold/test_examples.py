"""The jobs ``init`` writes for config/examples/' sample exports map each column as the
hand-written example does: the same fields, value maps, expressions and error handling."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.scaffold import JobPlan, job_text, match_header
from ometria_sync.schemas import RecordType

EXAMPLES = Path(__file__).parents[2] / "config" / "examples"
#: example -> its record type
TYPES: dict[str, RecordType] = {
    "magento2/customers": "contact", "magento2/products": "product",
    "magento2/orders": "order", "shopify/customers": "contact",
    "shopify/products": "product",
}


def written_columns(name: str) -> dict[str, Any]:
    """The ``columns`` table of the job ``init`` writes for the example's sample."""
    with (EXAMPLES / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    plan = JobPlan(TYPES[name], f"{name}.csv", ",", match_header(TYPES[name], header, rows),
                   "init")
    columns: dict[str, Any] = tomllib.loads(job_text(plan))["streams"][0]["source"]["columns"]
    return columns


def meaning(spec: str | dict[str, Any]) -> dict[str, Any]:
    """A column's options, compared by what they do: fields as a set, value map targets as
    text (``true`` and ``"true"`` read as one boolean), the default type a string."""
    if isinstance(spec, str):
        spec = {"field": spec}
    fields = spec["field"]
    values = spec.get("values", {})
    kind = spec.get("type", "string")
    if values and all(isinstance(v, bool) for v in values.values()):
        kind = "boolean"  # TOML booleans are taken as they are, whatever the type
    return {
        "fields": set(fields if isinstance(fields, list) else [fields]),
        "type": kind,
        "values": {k: str(v).lower() for k, v in values.items()},
        "expr": spec.get("expr"), "on_error": spec.get("on_error", "refuse"),
    }


@pytest.mark.parametrize("name", sorted(TYPES))
def test_each_column_init_maps_is_mapped_as_the_example_maps_it(name: str) -> None:
    example = tomllib.loads((EXAMPLES / f"{name}.toml").read_text())
    source = example["streams"][0]["source"]
    written = written_columns(name)
    assert written, name
    for column, spec in written.items():
        assert column not in source.get("drop", []), (name, column)
        # a column the example does not name is sent under its header name
        assert meaning(spec) == meaning(source["columns"].get(column, column)), (name, column)


def test_the_examples_conventions_are_all_written() -> None:
    """The conversions that make each sample go in: none may silently stop being written."""
    customers = written_columns("magento2/customers")
    assert customers["gender"]["values"] == {"1": "m", "2": "f", "3": ""}
    assert customers["dob"]["on_error"] == customers["created_at"]["on_error"] == "omit"
    assert customers["email"] == {"field": ["email", "id"], "expr": "lower(value)"}
    orders = written_columns("magento2/orders")
    assert orders["item_discount_amount"]["expr"] == "-value"
    assert "expr" not in orders["discount_amount"]  # Magento's order discount is negative
    magento = written_columns("magento2/products")
    assert magento["product_online"]["values"] == {"1": True, "2": False}
    assert magento["url_key"]["expr"] == "'https://shop.example/' + value + '.html'"
    shopify = written_columns("shopify/customers")
    assert shopify["Accepts Email Marketing"]["values"] == {
        "yes": "EXPLICITLY_OPTEDIN", "no": "NOT_SPECIFIED"}
    assert shopify["Phone"]["expr"] == "e164(value.lstrip(\"'\"), 'GB')"
    assert shopify["Default Address Country Code"]["expr"] == "country(value)"
    products = written_columns("shopify/products")
    assert products["Status"]["values"] == {"active": True, "draft": False, "archived": False}
    assert products["url"] == {  # computed from the Handle: no column of the export fills it
        "field": "url", "expr": "'https://shop.example/products/' + row['Handle']"}
