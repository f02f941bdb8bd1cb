"""The typed lane (``typed_lane.py``) against the usual path: it takes a chunk only when every
line decodes to a record the clean check passes (so the walk finds no error and no warning),
and each encoding it gives is, byte for byte, the dict's canonical encoding with ``@type``
added as ``prepare_record`` adds it."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.schemas import MAX_RECORD_BYTES, RECORD_TYPES, rules
from ometria_sync.schemas.check import walk_record
from ometria_sync.schemas.clean import clean_check
from ometria_sync.schemas.column_forms import EMAIL_ASCII, TEXT_FORMS
from ometria_sync.schemas.problems import Findings
from ometria_sync.schemas.rules import OBJECT_RULES
from ometria_sync.schemas.typed_lane import _OBJECT_READS, typed_lane
from tests.schemas.test_clean import MODES, mutated
from tests.schemas.test_properties import (
    CONTACTS,
    JSON,
    ORDERS,
    records_with_known_fields,
)

_decode = msgspec.json.Decoder().decode  # as the JSON Lines source decodes a line
_encode = msgspec.json.Encoder(order="sorted").encode  # as the batcher encodes a record


def _usual(record_type: str, mode: Any, line: bytes) -> bytes | None:
    """What the usual path sends for ``line`` when its record is clean (None: not clean or
    not JSON), checking the walk agrees."""
    try:
        record = _decode(line)
    except msgspec.DecodeError:
        return None
    if not clean_check(record_type, mode)(record):
        return None
    walked = walk_record(record_type, copy.deepcopy(record), mode=mode, strict=True)
    assert walked.errors == [] and walked.warnings == []
    if record.get("@type") is None:
        record["@type"] = record_type
    try:
        encoded = _encode(record)
    except (TypeError, ValueError, OverflowError):
        return None
    return encoded if len(encoded) <= MAX_RECORD_BYTES else None


def _holds(record_type: str, mode: Any, lines: list[bytes]) -> list[bytes] | None:
    lane = typed_lane(record_type, mode)
    assert lane is not None
    taken = lane.accept(lines)
    if taken is not None:
        assert len(taken) == len(lines)
        for line, encoded in zip(lines, taken, strict=True):
            assert _usual(record_type, mode, line) == encoded, line
    return taken


def _line(record: Any) -> bytes:
    return msgspec.json.encode(record)  # the record's own key order


# --- lines as exporters write them ----------------------------------------------------------

@st.composite
def _spelt(draw: st.DrawFn, record: Any) -> bytes:
    """A line of ``record`` as some exporter may write it: compact or spaced, ASCII-only
    (``\\u`` escapes), with a key repeated (the last one counts), an ``@type`` dropped or
    null, a trailing ``\\r``."""
    if isinstance(record, dict) and draw(st.booleans()):
        record = dict(record)
        how = draw(st.sampled_from(["drop-type", "null-type", "other-type", "empty-id"]))
        if how == "drop-type":
            record.pop("@type", None)
        elif how == "null-type":
            record["@type"] = None
        elif how == "other-type":
            record["@type"] = draw(st.sampled_from(RECORD_TYPES))
        else:
            record["id"] = ""
    style = draw(st.sampled_from(["msgspec", "ascii", "spaced"]))
    if style == "msgspec":
        line = _line(record)
    else:
        line = json.dumps(record, ensure_ascii=style == "ascii",
                          separators=(", ", ": ") if style == "spaced" else (",", ":")).encode()
    if isinstance(record, dict) and record and draw(st.booleans()):  # a key said twice
        key = draw(st.sampled_from(sorted(record)))
        first = _line({key: draw(JSON | st.just(record[key]))})[1:-1]
        line = b"{" + first + b"," + line[1:] if line != b"{}" else line
    if draw(st.booleans()):
        line += b"\r"
    return line


_NUMBERS = st.sampled_from([b"1e400", b"-1e400", b"123456789012345678901234567890",
                            b"1.0", b"-0", b"-0.0", b"1E2", b"0.1", b"true", b"null"])


@st.composite
def _with_odd_number(draw: st.DrawFn, line: bytes) -> bytes:
    """``line`` with one number (or a literal) replaced by another spelling."""
    digits = [i for i, c in enumerate(line) if chr(c).isdigit() and line[i - 1:i] == b":"]
    if not digits:
        return line
    at = draw(st.sampled_from(digits))
    end = at
    while end < len(line) and chr(line[end]) in "0123456789.eE+-":
        end += 1
    return line[:at] + draw(_NUMBERS) + line[end:]


VALID = st.one_of(CONTACTS, ORDERS)


@settings(max_examples=600)
@given(st.data(), st.lists(VALID, min_size=1, max_size=4), MODES)
def test_valid_records_however_spelt_take_the_lane_only_as_the_usual_path_sends_them(
        data: st.DataObject, records: list[dict[str, Any]], mode: str) -> None:
    record_type = records[0]["@type"]
    records = [r for r in records if r["@type"] == record_type]
    lines = [data.draw(_spelt(r)) for r in records]
    if data.draw(st.booleans()):
        lines = [data.draw(_with_odd_number(line)) for line in lines]
    _holds(record_type, mode, lines)


@settings(max_examples=1500)
@given(mutated(), MODES)
def test_a_record_with_one_thing_changed_takes_the_lane_only_when_clean(
        case: tuple[str, dict[str, Any]], mode: str) -> None:
    record_type, record = case
    if typed_lane(record_type, mode) is None:
        return
    _holds(record_type, mode, [_line(record)])


@settings(max_examples=500)
@given(records_with_known_fields(), MODES)
def test_known_fields_with_any_value_take_the_lane_only_when_clean(
        case: tuple[str, Any], mode: str) -> None:
    record_type, record = case
    if typed_lane(record_type, mode) is None:
        return
    _holds(record_type, mode, [_line(record)])


@settings(max_examples=300)
@given(st.sampled_from(["contact", "order"]), JSON, MODES)
def test_any_json_value_takes_the_lane_only_when_clean(record_type: str, value: Any,
                                                       mode: str) -> None:
    _holds(record_type, mode, [_line(value)])


@settings(max_examples=300)
@given(st.lists(mutated(), min_size=2, max_size=5), MODES)
def test_a_chunk_is_taken_whole_or_not_at_all(cases: list[tuple[str, dict[str, Any]]],
                                              mode: str) -> None:
    record_type = cases[0][0]
    if typed_lane(record_type, mode) is None:
        return
    lines = [_line(record) for t, record in cases if t == record_type]
    taken = _holds(record_type, mode, lines)
    if taken is not None:  # then each line alone is taken too
        assert all(_holds(record_type, mode, [line]) for line in lines)


@settings(max_examples=300)
@given(st.lists(CONTACTS, min_size=1, max_size=5))
def test_clean_contacts_written_plainly_take_the_lane(records: list[dict[str, Any]]) -> None:
    """The common case is taken: clean records, no escape, no "null" text."""
    lines = [_line(r) for r in records]
    if any(b"\\" in line or b'"null"' in line.lower() or _usual("contact", "update", line)
           is None for line in lines):
        return
    assert _holds("contact", "update", lines) is not None


def test_a_line_holding_two_records_or_a_record_over_two_lines_is_refused() -> None:
    lane = typed_lane("contact", "update")
    assert lane is not None
    assert lane.accept([b'{"id":"a"},{"id":"b"}', b'{"id":"c"}']) is None
    assert lane.accept([b'{"id":"a","properties":{"x":[1', b'2]}}', b'{"id":"c"}']) is None
    assert lane.accept([b'{"id":"a"}', b"", b'{"id":"c"}']) is None
    assert lane.accept([b'{"id":"a"}', b'{"id":"c"}']) == [
        b'{"@type":"contact","id":"a"}', b'{"@type":"contact","id":"c"}']


@pytest.mark.parametrize("line", [
    b'{"id":"a","email":"x@example.com\\nb@example.com"}',  # two emails in one
    b'{"id":"a","email":"x@example.com","email":"nope"}',
    b'{"id":"a","properties":{"k":"null"}}',
    b'{"id":"a","properties":{"k":["NULL"]}}',
    b'{"id":"a","firstname":"\\u006eull"}',
    b'{"id":"a b"}',
    b'{"id":"a","@collection":"optin:sms"}',  # a warning
    b'{"id":"a","gender":"x"}',  # a warning
    b'{"id":"a","timestamp_subscribed":"2024-02-30T00:00:00+00:00"}',
    b'{"id":"a","date_of_birth":"2024-02-30"}',
    b'{"id":"a","channels":{"sms":{"dt_updated_marketing":"2024-01-01"}}}',
    b'{"id":"a","unknown":1}',
    b'{"id":"a","channels":{"sms":{"unknown":1}}}',
    b'{"id":"a","@type":"order"}',
    b'{"id":"a","@type":null}',
])
def test_a_contact_with_a_problem_is_refused(line: bytes) -> None:
    lane = typed_lane("contact", "update")
    assert lane is not None
    assert lane.accept([b'{"id":"ok"}', line]) is None


@pytest.mark.parametrize(("line", "mode"), [
    (b'{"id":"o","lineitems":[{"sku":"s","quantity":1}]}', "update"),  # no price: a warning
    (b'{"id":"o","lineitems":[{"quantity":1,"unit_price":1}]}', "update"),  # no product
    (b'{"id":"o","lineitems":[{"sku":"s","quantity":-1,"unit_price":1}]}', "update"),
    (b'{"id":"o","discount":0.5}', "update"),
    (b'{"id":"o","currency":"gbp"}', "update"),
    (b'{"id":"o","grand_total":1.0}', "create"),  # no timestamp, no currency
    (b'{"id":"o","timestamp":"2024-01-01T00:00:00Z","grand_total":1}', "create"),
    (b'{"id":"o","totals":{"base":{"currency":"GBP"}}}', "update"),  # grand_total required
])
def test_an_order_with_a_problem_is_refused(line: bytes, mode: Any) -> None:
    lane = typed_lane("order", mode)
    assert lane is not None
    assert lane.accept([line]) is None
    assert _usual("order", mode, line) is None


def test_an_order_with_totals_needs_no_grand_total_in_create_mode() -> None:
    line = (b'{"id":"o","timestamp":"2024-01-01T00:00:00Z","totals":{"base":{"currency":'
            b'"GBP","grand_total":1}}}')
    assert _holds("order", "create", [line]) is not None


def test_products_and_events_have_no_lane() -> None:
    """Their object rules read values, not only which fields hold one."""
    for mode in ("update", "create"):
        assert typed_lane("product", mode) is None
        assert typed_lane("custom_event", mode) is None


@settings(max_examples=300)
@given(st.data(), MODES)
def test_each_object_rule_the_lane_runs_reads_only_whether_its_fields_hold_a_value(
        data: st.DataObject, mode: Any) -> None:
    """The lane runs an object rule on a stand-in holding ``True`` in the fields it lists
    (``_OBJECT_READS``): the rule must find the same on any object with those fields held."""
    for struct, rule in OBJECT_RULES.items():
        if rule not in _OBJECT_READS:
            continue
        reads = _OBJECT_READS[rule]
        names = [f.encode_name for f in msgspec.structs.fields(struct)]
        raw = data.draw(st.dictionaries(st.sampled_from(names), JSON, max_size=10))
        stand_in = {k: True for k in reads if raw.get(k) is not None}
        found, expected = Findings(), Findings()
        rule(raw, "", mode, found)
        rule(stand_in, "", mode, expected)
        assert (found.errors, found.warnings) == (expected.errors, expected.warnings)


# --- the columnar forms of the text rules ---------------------------------------------------

_EMAILISH = st.one_of(
    st.text(alphabet=st.sampled_from("aZ09_.-@+!~é\u00e9\u0663 \n"), max_size=30),
    st.from_regex(r"\A[a_.!-]{0,3}@([a0_.-]{0,3}\.){0,3}[a0_-]{0,3}\Z"))  # edges of labels
_TIMESTAMPISH = st.one_of(
    st.from_regex(r"\A[0-9+-:TZ. \n]{0,30}\Z"),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?"
                  r"(Z|[+-]\d{2}(:?\d{2})?)?\Z"),
    st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat),
    st.text(max_size=30))
_IDISH = st.text(alphabet=st.sampled_from("ab1 \t\n\u00a0\u2003\x1c_-"), max_size=6)


@settings(max_examples=2000)
@given(_EMAILISH | st.emails() | st.from_regex(rules._EMAIL, fullmatch=True))
def test_the_ascii_email_pattern_fullmatches_exactly_what_the_rules_pattern_does(
        value: str) -> None:
    if value.isascii():
        assert (EMAIL_ASCII.fullmatch(value) is None) == (rules._EMAIL.fullmatch(value) is None)


@settings(max_examples=1000)
@given(st.lists(_EMAILISH | st.emails() | st.text(min_size=250, max_size=260), min_size=1,
                max_size=4))
def test_the_email_column_check_passes_exactly_what_email_problem_passes(
        values: list[str]) -> None:
    form = TEXT_FORMS[rules.email_problem]
    assert form(values) == all(rules.email_problem(v) is None for v in values)


@settings(max_examples=1000)
@given(st.lists(_TIMESTAMPISH, min_size=1, max_size=4))
def test_the_timestamp_column_check_passes_exactly_what_timestamp_problem_passes(
        values: list[str]) -> None:
    form = TEXT_FORMS[rules.timestamp_problem]
    assert form(values) == all(rules.timestamp_problem(v) is None for v in values)


@settings(max_examples=1000)
@given(st.lists(_IDISH | st.text(max_size=4), min_size=1, max_size=4))
def test_the_id_column_check_passes_exactly_what_id_problem_passes(values: list[str]) -> None:
    form = TEXT_FORMS[rules.id_problem]
    assert form(values) == all(rules.id_problem(v) is None for v in values)


@pytest.mark.parametrize("line", [
    b'{"id":"o","lineitems":[{"sku":"s","quantity":null,"unit_price":1}]}',
    b'{"id":"o","lineitems":[{"sku":"s","unit_price":1}]}',
    b'{"id":"o","lineitems":[{"sku":"s","quantity":1,"unit_price":null,"subtotal":null}]}',
    b'{"id":"o","lineitems":[{"quantity":1,"unit_price":1,"product_id":null,"sku":null}]}',
    b'{"id":"o","lineitems":[{"sku":"s","quantity":1,"unit_price":1,"discount":0.01}]}',
    b'{"id":"o","lineitems":[{"sku":"s","quantity":1,"unit_price":1,"quantity_refunded":-1}]}',
    b'{"id":"o","lineitems":[{"sku":"s","quantity":1,"unit_price":1,'
    b'"totals":{"base":{"discount":1}}}]}',
])
def test_a_line_item_the_rules_refuse_is_refused_beside_clean_ones(line: bytes) -> None:
    """A field every clean line item holds (``quantity``) is required by the twin, signs are
    bounds the decoder checks, and the patterns of the other fields are looked at when a
    column has a gap: whichever way, one bad line item among clean ones is refused."""
    clean = b'{"id":"p","lineitems":[{"product_id":"p","quantity":1,"unit_price":1}]}'
    for mode in ("update", "create"):
        lane = typed_lane("order", mode)
        assert lane is not None
        assert lane.accept([clean, clean]) is not None or mode == "create"
        assert lane.accept([clean, line, clean]) is None
        assert _usual("order", mode, line) is None
