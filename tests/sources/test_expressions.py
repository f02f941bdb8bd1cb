"""Column expressions: the helpers a shop export needs, and nothing raised but ExpressionError."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.sources.expressions import Expression, ExpressionError, country, date, e164


@given(st.integers(min_value=0, max_value=999_999), st.sampled_from([
    "07{a} {b}", "07{a}{b}", "+44 7{a} {b}", "+447{a}{b}", "(07{a}) {b}", "0044 7{a} {b}"]))
def test_a_uk_mobile_written_any_usual_way_is_one_e164_number(tail: int, form: str) -> None:
    digits = f"700{tail:06d}"  # 7700 900123-style: 07 + 9 digits
    text = form.format(a=digits[:3], b=digits[3:])
    assert e164(text, "GB") == f"+447{digits}"


def test_other_regions_and_bad_numbers() -> None:
    assert e164("030 123456789", "DE") == "+4930123456789"
    assert e164("+1 212 555 0100", "GB") == "+12125550100"
    for bad in ("", "n/a", "123", "07700 9001234567"):
        with pytest.raises(ValueError, match="phone number"):
            e164(bad, "GB")


@pytest.mark.parametrize("found", list(pycountry.countries), ids=lambda c: c.alpha_2)
def test_every_country_is_found_by_its_codes_and_name(found: Any) -> None:
    code = found.alpha_2
    for text in (code, code.lower(), found.alpha_3, found.name):
        assert country(text) == code


@pytest.mark.parametrize(("text", "code"), [
    ("UK", "GB"), ("uk", "GB"), (" England ", "GB"), ("Great Britain", "GB"),
    ("United Kingdom", "GB"), ("USA", "US"), ("Holland", "NL"), ("Russia", "RU")])
def test_country_aliases_people_write(text: str, code: str) -> None:
    assert country(text) == code


def test_an_unknown_country_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="not a country name or code: 'Atlantis'"):
        country("Atlantis")


@given(st.dates(min_value=dt.date(1900, 1, 1)))
def test_dates_in_a_pattern_become_iso(day: dt.date) -> None:
    assert date(day.strftime("%d/%m/%Y"), "%d/%m/%Y") == day.isoformat()
    assert date(day.strftime("%m/%d/%Y"), "%m/%d/%Y") == day.isoformat()


def test_a_date_not_in_the_pattern_says_which_pattern() -> None:
    with pytest.raises(ValueError, match=r"not a date in the form '%d/%m/%Y': '31/02/1980'"):
        date("31/02/1980", "%d/%m/%Y")


EXPRESSIONS = [Expression("k", source, ["a", "b"]) for source in (
    "-value", "value + '.html'", "e164(value, 'GB')", "country(value)",
    "date(value, '%d/%m/%Y')", "row['a'] + ' ' + row['b']", "int(value) * 2",
    "value.split('@')[1]", "upper(value)[0:2]", "round(float(value), 1)", "value ** value",
    "'x' * 10 ** 9")]


@given(st.sampled_from(EXPRESSIONS),
       st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans()),
       st.dictionaries(st.sampled_from(["a", "b"]), st.text(max_size=5)))
def test_no_value_makes_an_expression_raise_anything_but_an_expression_error(
        expression: Expression, value: object, row: dict[str, str]) -> None:
    """Whatever the value and the row: a result, or ExpressionError naming the expression."""
    try:
        expression(value, row)
    except ExpressionError as exc:
        assert repr(expression.source) in str(exc)
