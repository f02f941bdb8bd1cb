"""What a checkpoint is, and the rule every store (SQLite or PostgreSQL) applies to saving one.

Guarantees, kept by :func:`checked_total` for both stores:

* a checkpoint is the position of the last record before which *everything* was acknowledged by
  Ometria or dead-lettered (the engine's watermark); it is written after acknowledgement, never
  before;
* for the same content (same fingerprint) a checkpoint never moves backwards and is never
  replaced by an empty one: an attempt to do so is a bug and raises :class:`StateError`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from ometria_sync.errors import StateError


class Checkpoint(msgspec.Struct, frozen=True):
    """Where one part of one stream stands."""

    stream: str
    part: str
    position: Any
    fingerprint: str | None
    delivered: int
    updated_at: str


class StreamRun(msgspec.Struct, frozen=True):
    """The last run of a stream: when, how it ended, how many records it delivered."""

    stream: str
    started_at: str
    finished_at: str | None
    outcome: str
    delivered: int


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _is_behind(new: Any, old: Any) -> bool:
    """True when ``new`` is an earlier position than ``old`` (comparable kinds only)."""
    try:
        return bool(new < old)
    except TypeError:
        return False


def comparable(position: Any) -> Any:
    """A position in a form that compares by order: JSON lists (as a stored checkpoint comes
    back) become tuples at every depth, so a stored ``[5, [2, 9]]`` compares with the source's
    ``(5, (2, 9))``. ``checked_total`` and ``verify --last-run`` both compare with it."""
    return tuple(comparable(p) for p in position) if isinstance(position, list) else position


def checked_total(
    stream: str, old: Checkpoint | None, position: Any, fingerprint: str | None, delivered: int
) -> int:
    """The delivered count to store for a new checkpoint over ``old``; StateError when the
    checkpoint is empty or would move backwards for the same content (a bug either way)."""
    if position is None or position == [] or position == "":
        raise StateError(f"refusing to save an empty checkpoint for stream {stream!r}")
    same_content = old is not None and old.fingerprint == fingerprint
    if same_content and old is not None and _is_behind(
        comparable(position), comparable(old.position)
    ):
        raise StateError(
            f"checkpoint of stream {stream!r} would move backwards "
            f"({old.position} -> {position}); not saved"
        )
    return (old.delivered if same_content and old else 0) + delivered
