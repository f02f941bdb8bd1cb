"""Ometria's record schemas: Structs for each push record type, and ``validate_record``."""

from ometria_sync.schemas.check import validate_record
from ometria_sync.schemas.envelope import MAX_RECORD_BYTES, record_size_problem
from ometria_sync.schemas.problems import Problem, Verdict
from ometria_sync.schemas.records import (
    RECORD_TYPES,
    Contact,
    CustomEvent,
    Order,
    OrderAddress,
    OrderCustomer,
    OrderLineItem,
    OrderLineItemVariantOption,
    Product,
)

__all__ = [
    "MAX_RECORD_BYTES",
    "RECORD_TYPES",
    "Contact",
    "CustomEvent",
    "Order",
    "OrderAddress",
    "OrderCustomer",
    "OrderLineItem",
    "OrderLineItemVariantOption",
    "Problem",
    "Product",
    "Verdict",
    "record_size_problem",
    "validate_record",
]
