"""The record as it is sent: the validator seam, and :func:`prepare_record` (transform,
envelope, the stream's validation, the canonical encoding, the size check).

The batcher prepares every record through it (or through its clean check's short way, which a
property test holds to the same result), and ``verify`` calls it too, so what is verified is
what was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ometria_sync.config import StreamSettings
from ometria_sync.pipeline.transform import Transform
from ometria_sync.schemas import (
    RECORD_TYPES,
    Problem,
    Verdict,
    clean_check,
    envelope_problems,
    record_size_problem,
    validate_record,
)

#: a stream's schema check: ``(record_type, record) -> Verdict``
Validator = Callable[[str, Any], Verdict]

# sorted keys: the canonical encoding, so that change hashes ignore key order
canonical_encode = msgspec.json.Encoder(order="sorted").encode


class SchemaValidator:
    """``validate_record`` bound to a stream's ``mode`` and ``strict`` settings, with the clean
    check of each record type at hand (``clean``): one call for a record with no problem."""

    __slots__ = ("clean", "mode", "strict")

    def __init__(self, mode: Literal["update", "create"], strict: bool) -> None:
        self.mode, self.strict = mode, strict
        self.clean: dict[str, Callable[[Any], bool]] = {
            t: clean_check(t, mode) for t in RECORD_TYPES}

    def __call__(self, record_type: str, record: Any) -> Verdict:
        return validate_record(record_type, record, mode=self.mode, strict=self.strict)


def schema_validator(stream: StreamSettings) -> Validator:
    """``validate_record`` bound to the stream's ``mode`` and ``strict`` settings."""
    return SchemaValidator(stream.mode, stream.strict)


def prepare_record(
    record_type: str, record: Any, validate: Validator, transform: Transform | None = None
) -> tuple[bytes | None, list[Problem], list[Problem]]:
    """The record as it is sent: ``(encoded, problems, warnings)``; ``encoded`` is None when it
    is refused, ``problems`` say why (and when the stream's ``transform`` skipped it, with no
    problem). The transform, the envelope check (what the engine itself needs: an object with
    a usable id whose ``@type`` matches the stream, added when missing), the stream's
    validation, the canonical encoding and the size check, in that order; the validator's
    ``warnings`` are given whenever it ran. The batcher and ``verify`` both call it, so what is
    verified is what was sent."""
    if transform is not None and record.__class__ is dict:
        record, failed = transform.apply(record)
        if record is None:
            return None, [Problem("", failed)] if failed else [], []
    problems = envelope_problems(record)
    if problems:
        return None, problems, []
    declared = record.get("@type")
    if declared is None:
        record["@type"] = record_type
    elif declared != record_type:
        return None, [Problem("@type", f"must be {record_type!r} (the stream's record_type), "
                                       f"got {declared!r}")], []
    verdict = validate(record_type, record)
    if verdict.errors:
        return None, verdict.errors, verdict.warnings
    try:
        encoded = canonical_encode(record)
    except (TypeError, ValueError, OverflowError) as exc:  # what validation let through
        return None, [Problem("", f"cannot be encoded as JSON: {exc}")], verdict.warnings
    too_large = record_size_problem(len(encoded))
    if too_large is not None:
        return None, [too_large], verdict.warnings
    return encoded, [], verdict.warnings
