"""What every record needs, whatever its type: an object with a usable id, and a size Ometria
takes.

The engine applies these checks to every record; the full per-type schemas add to them. The
envelope comes before anything else is looked at. The 60 KB size rule needs the encoding the
engine sends, so it is applied where that encoding is made (``record_size_problem``).
"""

from __future__ import annotations

import re
from typing import Any

from ometria_sync.schemas.problems import Problem, show_value

_SPACE = re.compile(r"\s")

#: Ometria refuses records over 60 KB once serialised ("Record is too large").
MAX_RECORD_BYTES = 60 * 1024


def envelope_problems(record: Any) -> list[Problem]:
    """Problems with the record's shape or id; empty when it is an object with a string id
    that is non-empty and has no spaces (Ometria's rule for every id)."""
    if not isinstance(record, dict):
        kind = "null" if record is None else type(record).__name__
        return [Problem("", f"must be a JSON object, got {kind}")]
    if "id" not in record:
        return [Problem("id", "is required")]
    rid = record["id"]
    if not isinstance(rid, str):
        return [Problem("id", f"must be a string, got {show_value(rid)}")]
    if not rid or rid.isspace():
        return [Problem("id", "must not be empty")]
    if _SPACE.search(rid) is not None:
        return [Problem("id", f"must not contain spaces, got {show_value(rid)}")]
    return []


def record_size_problem(encoded_size: int) -> Problem | None:
    """The size rule, on the length of the record's JSON encoding."""
    if encoded_size <= MAX_RECORD_BYTES:
        return None
    return Problem("", f"record is too large: at most {MAX_RECORD_BYTES} bytes once encoded, "
                       f"got {encoded_size}")
