"""The validator a stream uses: the Ometria schemas, with the stream's mode and strictness.

The batcher always applies the envelope checks (an object, a string id without spaces, the
stream's ``@type``); this adds the per-type schema rules of :mod:`ometria_sync.schemas`.
"""

from __future__ import annotations

from typing import Any

from ometria_sync.config import StreamSettings
from ometria_sync.pipeline.batcher import Validator
from ometria_sync.schemas import Verdict, validate_record


def schema_validator(stream: StreamSettings) -> Validator:
    """``validate_record`` bound to the stream's ``mode`` and ``strict`` settings."""
    mode, strict = stream.mode, stream.strict

    def validate(record_type: str, record: Any) -> Verdict:
        return validate_record(record_type, record, mode=mode, strict=strict)

    return validate
