"""The validator a stream uses: the Ometria schemas, with the stream's mode and strictness.

The batcher always applies the envelope checks (an object, a string id without spaces, the
stream's ``@type``); this adds the per-type schema rules of :mod:`ometria_sync.schemas`.
"""

from __future__ import annotations

from typing import Any

import ometria_sync.schemas as schemas
from ometria_sync.config import StreamSettings
from ometria_sync.pipeline.batcher import Validator
from ometria_sync.schemas.problems import Verdict


def schema_validator(stream: StreamSettings) -> Validator:
    """``validate_record`` bound to the stream's ``mode`` and ``strict`` settings."""
    mode, strict = stream.mode, stream.strict
    validate_record = getattr(schemas, "validate_record", None)
    if validate_record is None:  # per-type schemas not installed: envelope checks only
        return _no_schema

    def validate(record_type: str, record: Any) -> Verdict:
        result: Verdict = validate_record(record_type, record, mode=mode, strict=strict)
        return result

    return validate


def _no_schema(record_type: str, record: Any) -> Verdict:
    return Verdict()
