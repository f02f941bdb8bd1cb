"""The batcher's short way for a record the schemas' clean check passes (``Batcher._prepare``)
gives what :func:`prepare_record` gives, byte for byte, problem for problem."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ometria_sync.pipeline.batch import PartScope
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.prepare import SchemaValidator, prepare_record
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.schemas import MAX_RECORD_BYTES
from ometria_sync.state.deadletter import DeadLetterWriter
from tests.schemas.test_clean import mutated


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[DeadLetterWriter]:
    out = DeadLetterWriter(tmp_path / "dl.jsonl")
    yield out
    out.close()


def _same(writer: DeadLetterWriter, record_type: str, record: Any, mode: Any,
          strict: bool) -> None:
    validator = SchemaValidator(mode, strict)
    batcher = Batcher(PartScope("s", "in.jsonl", StreamStats(stream="s"), writer),
                      record_type=record_type, validator=validator)
    short, long = copy.deepcopy(record), copy.deepcopy(record)
    assert batcher._prepare(short) == prepare_record(record_type, long, validator)
    assert repr(short) == repr(long)  # "@type" added alike


@settings(max_examples=800, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated(), st.sampled_from(["update", "create"]), st.booleans(), st.booleans())
def test_any_record_is_prepared_as_prepare_record_does(
        writer: DeadLetterWriter, case: tuple[str, dict[str, Any]], mode: str,
        strict: bool, typeless: bool) -> None:
    record_type, record = case
    if typeless:
        record.pop("@type", None)
    _same(writer, record_type, record, mode, strict)


@pytest.mark.parametrize("record", [
    {"id": "c1"},
    {"id": "c1", "@type": "contact"},
    {"id": "c1", "@type": "order"},  # not clean: prepare_record refuses it
    {"id": "big", "properties": {"blob": "x" * MAX_RECORD_BYTES}},  # clean, too large
    {"id": "c1", "properties": {"n": 2**70}},  # clean, a number the encoder writes
    "not an object",
])
def test_the_edges_of_the_short_way(writer: DeadLetterWriter, record: Any) -> None:
    _same(writer, "contact", record, "update", False)
