"""Cell coercion and the column plan: exact values, exact refusals, nothing ever raised raw."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.errors import ConfigError
from ometria_sync.sources.columns import plan_columns
from ometria_sync.sources.files.csv import CsvOptions
from ometria_sync.sources.mapping import CellError, ColumnSpec, python_value, text_coercers

LONDON = zoneinfo.ZoneInfo("Europe/London")
COERCE = text_coercers(LONDON)


@pytest.mark.parametrize(("kind", "text", "value"), [
    ("string", " Ann ", " Ann "),  # the coercer keeps spaces; the column trims (trim = true)
    ("number", "12.50", 12.5),
    ("number", "-3", -3),
    ("number", "1e3", 1000.0),
    ("number", " 7 ", 7),
    ("integer", "2", 2),
    ("integer", "2.0", 2),
    ("integer", "2.0000", 2),  # Magento's quantities
    ("integer", "-3.", -3),
    ("boolean", "Yes", True),
    ("boolean", "0", False),
    ("boolean", "FALSE", False),
    ("timestamp", "2024-07-01 10:00:00", "2024-07-01T10:00:00+01:00"),  # BST in London
    ("timestamp", "2024-01-01T10:00:00", "2024-01-01T10:00:00+00:00"),
    ("timestamp", "2024-01-01T10:00:00+05:30", "2024-01-01T10:00:00+05:30"),
    ("timestamp", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00+00:00"),
    ("date", "1990-02-28", "1990-02-28"),
    ("json", '["a", 1]', ["a", 1]),
])
def test_cells_coerce_to_their_type(kind: str, text: str, value: Any) -> None:
    result = COERCE[kind](text)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("number", "12,50", "not a number: '12,50'"),
    ("number", "nan", "not a number: 'nan'"),
    ("number", "£5", "not a number: '£5'"),
    ("integer", "2.5", "not an integer: '2.5'"),
    ("boolean", "maybe", "not a boolean (true/false, yes/no, 1/0): 'maybe'"),
    ("timestamp", "01/02/2024", "not an ISO 8601 timestamp: '01/02/2024'"),
    ("date", "1990-02-30", "not a real date: '1990-02-30' (day is out of range for month)"),
    ("date", "31/12/1980", "not a date (expected YYYY-MM-DD): '31/12/1980'"),
    ("timestamp", "2023-02-30 10:00:00",
     "not a real date: '2023-02-30 10:00:00' (day is out of range for month)"),
    ("timestamp", "0000-00-00 00:00:00",
     "a zero date (a database's 'no date'), not a real one: '0000-00-00 00:00:00'; "
     "on_error = \"omit\" leaves the field out"),
    ("integer", "2.0001", "not an integer: '2.0001'"),
    ("json", "{", "not JSON (Input data was truncated): '{'"),
])
def test_cells_that_do_not_coerce_say_why(kind: str, text: str, message: str) -> None:
    with pytest.raises(CellError) as caught:
        COERCE[kind](text)
    assert str(caught.value) == message


@given(st.sampled_from(sorted(COERCE)), st.text())
def test_no_text_makes_a_coercer_raise_anything_but_a_cell_error(kind: str, text: str) -> None:
    try:
        COERCE[kind](text)
    except CellError as exc:
        assert str(exc)


def test_database_values_become_json() -> None:
    assert python_value(Decimal("12.50"), LONDON) == 12.5
    assert python_value(dt.datetime(2024, 7, 1, 10, 0), LONDON) == "2024-07-01T10:00:00+01:00"
    assert python_value(dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC), LONDON) == (
        "2024-07-01T10:00:00+00:00")
    assert python_value(dt.date(1990, 2, 28), LONDON) == "1990-02-28"


def test_the_plan_names_missing_columns_and_bad_paths() -> None:
    settings = CsvOptions(columns={"Email": "email", "Total": ColumnSpec("grand_total")},
                          drop=["Notes"])
    with pytest.raises(ConfigError) as caught:
        plan_columns("streams[0].source", settings, ["Email", "Notes"])
    assert str(caught.value) == ("streams[0].source.columns: not in the header: Total "
                                 "(the header has: Email, Notes)")
    bad = CsvOptions(columns={"Sku": "lineitems[0].sku"})
    with pytest.raises(ConfigError, match=r"columns.Sku: not a field path: 'lineitems\[0\].sku'"):
        plan_columns("s", bad, ["Sku"])


def test_unmapped_columns_keep_their_name_and_dropped_ones_go() -> None:
    settings = CsvOptions(columns={"Sku": "lineitems[].sku"}, drop=["Notes"])
    plan = plan_columns("s", settings, ["id", "Sku", "Notes", "customer.email"])
    assert [(c.name, c.targets[0].path, c.targets[0].lineitem) for c in plan] == [
        ("id", ("id",), False), ("Sku", ("sku",), True),
        ("customer.email", ("customer", "email"), False)]


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1)), st.sampled_from(["T", " "]),
       st.sampled_from(["", "  "]))
def test_the_utc_fast_path_agrees_with_datetime(moment: dt.datetime, sep: str,
                                                pad: str) -> None:
    """Naive timestamps read as UTC come out exactly as datetime.isoformat() writes them."""
    text = pad + moment.replace(microsecond=0).isoformat(sep=sep) + pad
    expected = moment.replace(microsecond=0, tzinfo=dt.UTC).isoformat()
    assert text_coercers(dt.UTC)["timestamp"](text) == expected
