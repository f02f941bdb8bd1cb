"""Ometria's record schemas: Structs for each push record type, and ``validate_record``."""

from ometria_sync.schemas.check import validate_record
from ometria_sync.schemas.clean import clean_check
from ometria_sync.schemas.envelope import MAX_RECORD_BYTES, envelope_problems, record_size_problem
from ometria_sync.schemas.guide import FieldDoc, Need, field_guide, record_needs
from ometria_sync.schemas.problems import Problem, Verdict, field_path, show_value
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
    RecordType,
)
from ometria_sync.schemas.typed_lane import TypedLane, typed_lane

__all__ = [
    "MAX_RECORD_BYTES",
    "RECORD_TYPES",
    "Contact",
    "CustomEvent",
    "FieldDoc",
    "Need",
    "Order",
    "OrderAddress",
    "OrderCustomer",
    "OrderLineItem",
    "OrderLineItemVariantOption",
    "Problem",
    "Product",
    "RecordType",
    "TypedLane",
    "Verdict",
    "clean_check",
    "envelope_problems",
    "field_guide",
    "field_path",
    "record_needs",
    "record_size_problem",
    "show_value",
    "typed_lane",
    "validate_record",
]
