"""Every example object in Ometria's documents validates (tests/data/seed_examples.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ometria_sync.schemas import RECORD_TYPES, records, validate_record

_DATA = json.loads((Path(__file__).parent.parent / "data" / "seed_examples.json").read_text())
EXAMPLES: list[dict[str, Any]] = _DATA["examples"]
#: Documented partial updates: valid as updates, not as new records.
PARTIAL = {"reference 3.1 cancel order", "reference 5.3 product stock update (Magento extension)"}

#: Where a part of a record sits, to validate a part example inside a record.
_PLACES = {
    "OrderAddress": lambda part: {"shipping_address": part},
    "OrderCustomer": lambda part: {"customer": part},
    "OrderTotal": lambda part: {"totals": {"base": part}},
    "OrderTotals": lambda part: {"totals": part},
    "OrderLineItem": lambda part: {"lineitems": [part]},
    "OrderLineItemVariantOption": lambda part: {"lineitems": [
        {"product_id": "p1", "quantity": 1, "unit_price": 1.0, "variant_options": [part]}]},
    "LineItemTotal": lambda part: {"lineitems": [
        {"product_id": "p1", "quantity": 1, "unit_price": 1.0, "totals": {"base": part}}]},
    "LineItemTotals": lambda part: {"lineitems": [
        {"product_id": "p1", "quantity": 1, "unit_price": 1.0, "totals": part}]},
}


def test_the_examples_cover_every_documented_object() -> None:
    """The file holds the 15 objects of seed 003 (one list) and the reference's examples."""
    kinds = {e["kind"] for e in EXAMPLES}
    assert kinds >= {"order", "contact", "custom_event", "product", *_PLACES}
    assert len(EXAMPLES) == 20


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["kind"] in RECORD_TYPES],
                         ids=lambda e: e["name"])
def test_record_examples_validate(example: dict[str, Any]) -> None:
    """No errors and no warnings; full records pass as new records too."""
    record = example["example"]
    verdict = validate_record(example["kind"], record)
    assert verdict.errors == [] and verdict.warnings == []
    if example["name"] not in PARTIAL:
        assert validate_record(example["kind"], record, mode="create").errors == []


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["kind"] in _PLACES],
                         ids=lambda e: e["name"])
def test_part_examples_convert_to_their_struct_and_validate_in_place(
        example: dict[str, Any]) -> None:
    """Each object example converts to its Struct and validates inside an order."""
    msgspec.convert(example["example"], getattr(records, example["kind"]))
    order = {"@type": "order", "id": "o1", **_PLACES[example["kind"]](example["example"])}
    assert validate_record("order", order).errors == []
