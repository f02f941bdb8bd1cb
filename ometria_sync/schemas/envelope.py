"""What every record needs before anything else is looked at: an object with a usable id.

The engine applies these checks to every record; the full per-type schemas add to them.
"""

from __future__ import annotations

import re
from typing import Any

from ometria_sync.schemas.problems import Problem, show

_SPACE = re.compile(r"\s")


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
        return [Problem("id", f"must be a string, got {show(rid)}")]
    if not rid or rid.isspace():
        return [Problem("id", "must not be empty")]
    if _SPACE.search(rid) is not None:
        return [Problem("id", f"must not contain spaces, got {show(rid)}")]
    return []
