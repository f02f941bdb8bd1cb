"""Column options (field lists, values, default, expr, on_error, trim): exact values, exact
refusals, and the compiled fast path agreeing with the column-by-column reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.errors import ConfigError
from ometria_sync.sources.columns import RowError, ValueRowMapper, plan_columns
from ometria_sync.sources.files.csv import CsvOptions
from ometria_sync.sources.rows import Mapped, RowMapper

GENDER = {"field": "gender", "values": {"1": "m", "2": "f", "3": ""}}


def mapper(columns: dict[str, Any], header: list[str], **options: Any) -> RowMapper:
    settings = msgspec.convert({"columns": columns, **options}, CsvOptions)
    return RowMapper(plan_columns("s", settings, header, dt.UTC), settings.constants, dt.UTC,
                     len(header))


def one(spec: Any, cell: str) -> Mapped:
    return mapper({"c": spec}, ["c"]).map_row([cell])


def test_one_column_fills_several_fields() -> None:
    """``field = ["id", "customer_id"]``: the same value in both, for typed columns too."""
    m = mapper({"entity_id": {"field": ["id", "customer_id"]},
                "qty": {"field": ["lineitems[].quantity", "properties.qty"],
                        "type": "integer"}}, ["entity_id", "qty"])
    assert m.map_row(["7", "2.0000"]) == (
        {"id": "7", "customer_id": "7", "properties": {"qty": 2}}, {"quantity": 2}, None)
    assert m.grouped


@pytest.mark.parametrize(("cell", "record"), [
    ("1", {"gender": "m"}), ("2", {"gender": "f"}), ("3", {}), ("", {}), (" 2 ", {"gender": "f"}),
])
def test_a_value_map_maps_and_an_empty_target_leaves_the_field_out(cell: str,
                                                                   record: dict[str, Any]) -> None:
    assert one(GENDER, cell) == (record, {}, None)


def test_a_cell_not_in_the_map_is_refused_naming_column_cell_and_known_values() -> None:
    with pytest.raises(RowError) as caught:
        one(GENDER, "4")
    assert str(caught.value) == ("column 'c' (gender): '4' is not one of the mapped values "
                                 "('1', '2', '3')")


def test_a_default_fills_empty_and_unmapped_cells() -> None:
    spec = {"field": "marketing_optin", "values": {"1": "EXPLICITLY_OPTEDIN"},
            "default": "NOT_SPECIFIED"}
    assert one(spec, "1")[0] == {"marketing_optin": "EXPLICITLY_OPTEDIN"}
    assert one(spec, "0")[0] == {"marketing_optin": "NOT_SPECIFIED"}
    assert one(spec, "")[0] == {"marketing_optin": "NOT_SPECIFIED"}
    assert one({"field": "n", "type": "integer", "default": 0}, " ")[0] == {"n": 0}


def test_value_map_targets_take_the_column_type_and_a_wrong_one_names_the_key() -> None:
    spec = {"field": "is_active", "type": "boolean", "values": {"1": "true", "2": False}}
    assert one(spec, "1")[0] == {"is_active": True}
    assert one(spec, "2")[0] == {"is_active": False}
    with pytest.raises(ConfigError) as caught:
        one({"field": "is_active", "type": "boolean", "values": {"1": "maybe"}}, "1")
    assert str(caught.value).startswith("s.columns.c.values.1: not a boolean")


@pytest.mark.parametrize(("spec", "cell", "value"), [
    ({"field": "d", "type": "number", "expr": "-value"}, "4.9000", -4.9),
    ({"field": "u", "expr": "'https://shop.example/' + value + '.html'"}, "mug",
     "https://shop.example/mug.html"),
    ({"field": "p", "expr": "e164(value, 'GB')"}, "07700 900123", "+447700900123"),
    ({"field": "p", "expr": "e164(value, 'GB')"}, "+44 7700 900123", "+447700900123"),
    ({"field": "c", "expr": "country(value)"}, "UK", "GB"),
    ({"field": "c", "expr": "country(value)"}, "uk", "GB"),
    ({"field": "c", "expr": "country(value)"}, "Germany", "DE"),
    ({"field": "c", "expr": "country(value)"}, "FRA", "FR"),
    ({"field": "b", "expr": "date(value, '%d/%m/%Y')"}, "31/12/1980", "1980-12-31"),
    ({"field": "e", "expr": "lower(value)"}, " Ann@Example.COM ", "ann@example.com"),
    ({"field": "e", "expr": "upper(value)"}, "gb", "GB"),
    ({"field": "e", "expr": "value.title()"}, "ann lee", "Ann Lee"),
    ({"field": "e", "expr": "strip(value)", "trim": False}, " x ", "x"),
    ({"field": "e", "expr": "value or None"}, "x", "x"),
    ({"field": "q", "type": "integer", "expr": "value * 2"}, "2.0000", 4),
])
def test_expressions_compute_the_value(spec: dict[str, Any], cell: str, value: Any) -> None:
    assert one(spec, cell)[0] == {spec["field"]: value}


def test_an_expression_reads_the_raw_row_by_header() -> None:
    m = mapper({"first": {"field": "properties.name", "expr": "row['first'] + ' ' + row['last']"}},
               ["first", "last"], drop=["last"])
    assert m.map_row(["Ann", "Lee"])[0] == {"properties": {"name": "Ann Lee"}}


def test_a_column_the_header_lacks_is_computed_from_the_row() -> None:
    """``url = { field = "url", expr = "... + row['Handle']" }``: one column can feed two
    different values (the id as it is, the URL built from it)."""
    m = mapper({"Handle": "id", "url": {"field": "url",
                                        "expr": "'https://shop.example/products/' + "
                                                "row['Handle']"},
                "flag": {"field": "properties.flag", "expr": "row['Tags'] or None",
                         "default": "none"}}, ["Handle", "Tags"])
    record = m.map_row(["mug", "vip"])[0]
    assert record == {"id": "mug", "Tags": "vip", "url": "https://shop.example/products/mug",
                      "properties": {"flag": "vip"}}
    assert m.map_row(["mug", ""])[0] == {"id": "mug", "url": "https://shop.example/products/mug",
                                         "properties": {"flag": "none"}}


def test_a_column_the_header_lacks_is_still_an_error_without_a_row_expression() -> None:
    for spec in ("url", {"field": "url", "expr": "value + '.html'"}):
        with pytest.raises(ConfigError, match=r"s\.columns: not in the header: url"):
            mapper({"url": spec}, ["Handle"])


def test_an_expression_that_raises_refuses_naming_column_and_expression() -> None:
    with pytest.raises(RowError) as caught:
        one({"field": "p", "expr": "e164(value, 'GB')"}, "call me")
    assert str(caught.value) == ("column 'c' (p): expr \"e164(value, 'GB')\" failed for "
                                 "'call me': not a phone number: 'call me'")
    with pytest.raises(RowError, match=r"expr '-value' failed for 'x': TypeError"):
        one({"field": "p", "expr": "-value"}, "x")


@pytest.mark.parametrize(("expr", "message"), [
    ("value +", "s.columns.c.expr: not an expression: 'value +' (invalid syntax)"),
    ("open(value)", "s.columns.c.expr: unknown name 'open'"),
    ("__import__('os')", "s.columns.c.expr: unknown name '__import__'"),
    ("value.__class__", "s.columns.c.expr: .__class__: only strings' own methods"),
    ("'{0.__class__}'.format(value)", "s.columns.c.expr: .format: only strings' own methods"),
    ("row['nope']", "s.columns.c.expr: row['nope']: not in the header (the header has: c)"),
    ("(lambda: 1)()", "s.columns.c.expr: lambda is not allowed here"),
])
def test_an_expression_that_cannot_work_is_a_config_error_naming_the_key(expr: str,
                                                                        message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        one({"field": "x", "expr": expr}, "v")
    assert str(caught.value).startswith(message)


def test_attribute_access_on_anything_but_a_string_is_refused_when_it_runs() -> None:
    """``.upper`` passes the static check (it is a string method): the evaluator refuses it
    on an integer."""
    with pytest.raises(RowError, match=r"only strings' own methods may be used, not \.upper "
                                       r"on int"):
        one({"field": "x", "type": "integer", "expr": "value.upper()"}, "3")


def test_on_error_omit_leaves_the_field_out_with_a_warning() -> None:
    m = mapper({"created": {"field": "timestamp_acquired", "type": "timestamp",
                            "on_error": "omit"}, "id": "id"}, ["id", "created"])
    record, _, warnings = m.map_row(["c1", "0000-00-00 00:00:00"])
    assert record == {"id": "c1"}
    assert warnings is not None and [str(w) for w in warnings] == [
        "timestamp_acquired: left out (on_error = \"omit\"): column 'created', got a zero date "
        "(a database's 'no date'), not a real one: '0000-00-00 00:00:00'; on_error = \"omit\" "
        "leaves the field out"]
    assert m.map_row(["c1", "2023-04-01 10:22:13"]) == (
        {"id": "c1", "timestamp_acquired": "2023-04-01T10:22:13+00:00"}, {}, None)


def test_on_error_refuse_is_the_default_and_names_an_impossible_date() -> None:
    with pytest.raises(RowError) as caught:
        one({"field": "timestamp_acquired", "type": "timestamp"}, "2023-02-30 10:00:00")
    assert str(caught.value) == ("column 'c' (timestamp_acquired): not a real date: "
                                 "'2023-02-30 10:00:00' (day is out of range for month)")


def test_cells_are_trimmed_unless_trim_is_false() -> None:
    assert one("email", " padded@example.com ")[0] == {"email": "padded@example.com"}
    assert one("email", "   ")[0] == {}
    assert one({"field": "n", "type": "number"}, "   ")[0] == {}
    assert one({"field": "email", "trim": False}, " x ")[0] == {"email": " x "}


def test_unknown_options_and_bad_values_are_refused_by_the_settings() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `value`"):
        msgspec.convert({"columns": {"c": {"field": "x", "value": {}}}}, CsvOptions)
    with pytest.raises(msgspec.ValidationError, match="on_error"):
        msgspec.convert({"columns": {"c": {"field": "x", "on_error": "skip"}}}, CsvOptions)


PLAIN = st.sampled_from([
    "text", {"field": "n", "type": "number"}, {"field": "i", "type": "integer"},
    {"field": "b", "type": "boolean"}, {"field": ["a.x", "a.y"]},
    {"field": "t", "type": "timestamp", "on_error": "omit"},
    {"field": "s", "trim": False}])
OPTIONS = st.sampled_from([
    {"field": "g", "values": {"1": "m", "2": "f", "3": ""}, "default": "o"},
    {"field": "r", "expr": "row['c0'] + '!'"},
    {"field": "e", "expr": "lower(value)"}, {"field": "d", "type": "number", "expr": "-value"}])
CELLS = st.sampled_from(["", " ", "1", "2", "3", " 4 ", "2.0000", "x", "yes", "-1.5",
                         "2024-07-01 10:00:00", "0000-00-00 00:00:00", "Ann"])


@given(st.lists(st.one_of(PLAIN, OPTIONS), min_size=1, max_size=6), st.data())
def test_the_compiled_mapping_agrees_with_the_column_by_column_one(specs: list[Any],
                                                                   data: st.DataObject) -> None:
    """For any columns and cells: the same record, line item and warnings, or the same
    refusal, whichever path the row takes."""
    header = [f"c{n}" for n in range(len(specs))]
    m = mapper(dict(zip(header, specs, strict=True)), header, constants={"k": 1})
    cells = data.draw(st.lists(CELLS, min_size=len(header), max_size=len(header)))
    try:
        fast: Any = m.map_row(cells)
    except RowError as exc:
        fast = str(exc)
    try:
        slow: Any = m.map_slowly(cells)
    except RowError as exc:
        slow = str(exc)
    assert fast == slow


class Row(dict[str, Any]):
    """A database row: values by column name."""


def test_database_values_take_the_same_options_by_column_name() -> None:
    settings = msgspec.convert({"columns": {
        "gender": GENDER, "entity_id": {"field": ["id", "customer_id"], "type": "string"},
        "phone": {"field": "phone_number", "expr": "e164(value, 'GB')", "on_error": "omit"},
        "qty": {"field": "properties.qty", "type": "integer"}, "total": "grand_total",
        "first": {"field": "properties.name", "expr": "row['first'] + ' ' + row['last']"}},
        "drop": ["last"], "constants": {"@collection": "shop"}}, CsvOptions)
    names = ["entity_id", "gender", "phone", "qty", "total", "first", "last", "note"]
    m = ValueRowMapper("s", settings, names, dt.UTC)
    record, warnings = m.map_row(Row(entity_id=7, gender=2, phone="07700 900123", qty=2.0,
                                     total=12.5, first="Ann", last="Lee", note=None))
    assert record == {"id": "7", "customer_id": "7", "gender": "f",
                      "phone_number": "+447700900123", "grand_total": 12.5,
                      "properties": {"qty": 2, "name": "Ann Lee"}, "@collection": "shop"}
    assert warnings is None
    record, warnings = m.map_row(Row(entity_id="8", gender=None, phone="n/a", qty=None,
                                     total=None, first="Bo", last="Li", note="x"))
    assert record == {"id": "8", "customer_id": "8", "properties": {"name": "Bo Li"},
                      "note": "x", "@collection": "shop"}
    assert warnings is not None and [w.path for w in warnings] == ["phone_number"]
    with pytest.raises(RowError, match="column 'gender' \\(gender\\): '4' is not one of"):
        m.map_row(Row(entity_id="9", gender=4, phone=None, qty=None, total=None, first="A",
                      last="B", note=None))


def test_a_database_column_keeps_the_driver_type_unless_a_type_is_given() -> None:
    settings = msgspec.convert({"columns": {
        "a": "properties.a", "b": {"field": "properties.b"},
        "c": {"field": "properties.c", "type": "string"},
        "d": {"field": "properties.d", "type": "integer"},
        "e": {"field": "properties.e", "type": "number"},
        "f": {"field": "properties.f", "type": "boolean"}}}, CsvOptions)
    m = ValueRowMapper("s", settings, list("abcdef"), dt.UTC)
    record = m.map_row(Row(a=7, b=1.5, c=7, d=2.0, e=" 4.50 ", f=1))[0]
    assert record == {"properties": {"a": 7, "b": 1.5, "c": "7", "d": 2, "e": 4.5, "f": True}}
    assert record["properties"]["f"] is True  # a 0/1 flag (MySQL's TINYINT(1)): True == 1
    assert m.map_row(Row(a=0, b=0, c=0, d=0, e=0, f=0))[0]["properties"]["f"] is False
    # any other number is not a flag: it stays, for validation to refuse with its path
    assert m.map_row(Row(a=0, b=0, c=0, d=0, e=0, f=2))[0]["properties"]["f"] == 2


def test_a_database_column_cannot_fill_line_items() -> None:
    settings = CsvOptions(columns={"sku": "lineitems[].sku"})
    with pytest.raises(ConfigError, match=r"s\.columns\.sku: lineitems\[\] paths group CSV"):
        ValueRowMapper("s", settings, ["sku"], dt.UTC)


def test_a_refused_row_still_names_its_id_when_the_id_column_maps() -> None:
    """For the dead letter: the id of a row another column made the mapping refuse."""
    m = mapper({"entity_id": {"field": ["id", "customer_id"]}, "gender": GENDER},
               ["entity_id", "gender"])
    with pytest.raises(RowError):
        m.map_row([" 7 ", "9"])
    assert m.record_id([" 7 ", "9"]) == "7"
    assert m.record_id(["", "9"]) is None
    assert mapper({"n": {"field": "id", "type": "integer"}}, ["n"]).record_id(["3"]) is None
    assert mapper({"n": "name"}, ["n"]).record_id(["3"]) is None


TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F),
               max_size=8)
KEYS = st.text(alphabet="abc123", min_size=1, max_size=3)


@given(st.dictionaries(KEYS, st.one_of(st.just(""), KEYS), max_size=5),
       st.one_of(st.none(), KEYS), st.one_of(KEYS, st.just("")))
def test_a_value_map_gives_its_target_the_default_or_a_refusal(
        values: dict[str, str], default: str | None, cell: str) -> None:
    spec: dict[str, Any] = {"field": "f", "values": values}
    if default is not None:
        spec["default"] = default
    try:
        record = one(spec, cell)[0]
    except RowError as exc:
        assert cell and cell not in values and default is None
        assert repr(cell) in str(exc) and all(repr(k) in str(exc) for k in list(values)[:20])
        return
    if not cell:
        expected = default
    elif cell in values:
        expected = values[cell] or None
    else:
        expected = default
    assert record == ({} if expected is None else {"f": expected})


@given(TEXT, st.sampled_from(["", " ", "  ", "\t"]), st.sampled_from(["", " ", "\t "]))
def test_trimming_removes_exactly_the_surrounding_spaces(text: str, left: str,
                                                         right: str) -> None:
    trimmed = one("f", left + text + right)[0]
    kept = one({"field": "f", "trim": False}, left + text + right)[0]
    assert trimmed == ({"f": text.strip()} if text.strip() else {})
    assert kept == ({"f": left + text + right} if left + text + right else {})


@given(st.lists(st.from_regex(r"[a-z]{1,4}(\.[a-z]{1,4})?", fullmatch=True), min_size=1,
                max_size=4, unique=True), TEXT)
def test_every_field_of_a_list_gets_the_value(fields: list[str], cell: str) -> None:
    if any(a != b and b.startswith(a + ".") for a in fields for b in fields):
        return  # a field and a field inside it cannot both hold a value
    record = one({"field": fields}, cell)[0]
    for field in fields if cell.strip() else []:
        target: Any = record
        for part in field.split("."):
            target = target[part]
        assert target == cell.strip()


@given(st.sampled_from(["number", "integer", "boolean", "timestamp", "date", "json"]), TEXT)
def test_on_error_omit_never_refuses_and_agrees_with_refuse_on_good_cells(kind: str,
                                                                          cell: str) -> None:
    record, _, warnings = one({"field": "f", "type": kind, "on_error": "omit"}, cell)
    try:
        strict = one({"field": "f", "type": kind}, cell)[0]
    except RowError:
        assert record == {} and warnings is not None and warnings[0].path == "f"
    else:
        assert (record, warnings) == (strict, None)
