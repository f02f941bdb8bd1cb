"""``validate_record``: everything Ometria would object to in a record, before it is sent.

Order of work, cheapest first for valid records: the envelope (an object with a usable id),
one strict msgspec conversion into the type's Struct (every JSON type at once, in C), then one
walk for the value rules, unknown fields and ``"null"`` texts. Only when the conversion
fails is the record descended field by field, to name every wrongly typed field.

The record is never modified. The 60 KB size rule needs the encoding the engine sends, so it
is applied where that encoding is made (``record_size_problem``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ometria_sync.schemas.envelope import envelope_problems
from ometria_sync.schemas.findings import Findings, Mode
from ometria_sync.schemas.problems import Problem, Verdict, show
from ometria_sync.schemas.records import RECORD_STRUCTS, RECORD_TYPES
from ometria_sync.schemas.shape import type_problems
from ometria_sync.schemas.walk import Level, check_values

#: Ometria refuses records over 60 KB once serialised ("Record is too large").
MAX_RECORD_BYTES = 60 * 1024

_LEVELS = {name: Level(struct) for name, struct in RECORD_STRUCTS.items()}


def record_size_problem(encoded_size: int) -> Problem | None:
    """The size rule, on the length of the record's JSON encoding."""
    if encoded_size <= MAX_RECORD_BYTES:
        return None
    return Problem("", f"record is too large: at most {MAX_RECORD_BYTES} bytes once encoded, "
                       f"got {encoded_size}")


def validate_record(record_type: str, record: Any, *, mode: Mode = "update",
                    strict: bool = False) -> Verdict:
    """Check ``record`` against the schema of ``record_type``.

    Errors make the record invalid. Unknown fields are warnings (they are sent as they are),
    or errors with ``strict``. ``mode = "create"`` adds the fields a new record needs."""
    struct = RECORD_STRUCTS.get(record_type)
    if struct is None:
        return Verdict([Problem("@type", f"must be one of {', '.join(RECORD_TYPES)}, "
                                         f"got {show(record_type)}")])
    envelope = envelope_problems(record)
    if envelope:
        return Verdict(envelope)
    found = Findings()
    declared = record.get("@type", record_type)
    if declared != record_type:
        found.errors.append(Problem("@type", f"must be {show(record_type)}, got {show(declared)}"))
    try:
        msgspec.convert(record, struct)
    except msgspec.ValidationError:
        type_problems(record, struct, "", found.errors)
    unknown: list[Problem] = []
    check_values(record, _LEVELS[record_type], "", mode, found, unknown)
    if unknown:
        (found.errors if strict else found.warnings).extend(unknown)
    return Verdict(found.errors, found.warnings)
