"""What every record needs before anything else is looked at: an object with a usable id.

The engine applies these checks to every record; the full per-type schemas add to them.
"""

from __future__ import annotations

from typing import Any

from ometria_sync.schemas.problems import Problem


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        return [Problem("id", f"must be a string, got {_show(rid)}")]
    if not rid or rid.isspace():
        return [Problem("id", "must not be empty")]
    if any(ch.isspace() for ch in rid):
        return [Problem("id", f"must not contain spaces, got {_show(rid)}")]
    return []
