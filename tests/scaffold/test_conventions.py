"""Conventions apply only when the sampled cells show them: a date order is never guessed, a
value map never leaves a sampled cell unmapped, a negative discount is never negated."""

from __future__ import annotations

import datetime as dt
import re

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.scaffold import CHECK, Conversion, Sample, match_header
from ometria_sync.scaffold.conventions import calendar_date, negate_positive, phone, value_map

_FORMS = {"dmy": "%d{0}%m{0}%Y", "mdy": "%m{0}%d{0}%Y"}


@given(st.lists(st.dates(dt.date(1900, 1, 1), dt.date(2030, 12, 31)), min_size=1, max_size=20),
       st.sampled_from(sorted(_FORMS)), st.sampled_from("/.-"))
def test_a_date_order_is_written_only_when_the_sample_shows_it_and_it_reads_every_cell(
        dates: list[dt.date], order: str, sep: str) -> None:
    form = _FORMS[order].format(sep)
    cells = tuple(d.strftime(form) for d in dates)
    found = calendar_date(Sample(cells))
    assert found is not None
    shown = any(d.day > 12 for d in dates)
    if shown:
        assert found.expr == f"date(value, '{form}')"
        assert [dt.datetime.strptime(c, form).date() for c in cells] == dates
    else:  # no day over 12: either order reads the cells; init does not choose
        assert found.expr is None
        assert found.notes[0].startswith(CHECK + "day/month or month/day?")


def test_iso_dates_are_read_as_they_are_and_mixed_shapes_are_not_converted() -> None:
    assert calendar_date(Sample(("1980-12-31", "1975-02-01"))) is None
    impossible = calendar_date(Sample(("1980-12-31", "1989-02-29", "0000-00-00")))
    assert impossible is not None and impossible.on_error == "omit"
    mixed = calendar_date(Sample(("1980-12-31", "31/12/1980")))
    assert mixed is not None and mixed.expr is None and "more than one way" in mixed.notes[0]


_MAP = {"1": "m", "2": "f", "3": ""}


@given(st.lists(st.sampled_from(["1", "2", "3", "4", "m", "x"]), max_size=8))
def test_a_value_map_is_written_only_when_it_maps_every_sampled_cell(cells: list[str]) -> None:
    found = value_map((_MAP, "note"))(Sample(tuple(cells)))
    if cells and set(cells) <= set(_MAP):
        assert found is not None and found.values == _MAP
    else:
        assert found is None


@given(st.lists(st.decimals(-100, 100, places=4), min_size=1, max_size=8))
def test_discounts_are_negated_only_when_none_is_negative_and_some_is_positive(
        amounts: list[object]) -> None:
    found = negate_positive(Sample(tuple(str(a) for a in amounts)))
    values = [float(str(a)) for a in amounts]
    if min(values) >= 0 and max(values) > 0:
        assert found is not None and found.expr == "-value"
    elif min(values) < 0:  # written as Ometria wants: nothing to write, and no hint
        assert found == Conversion()
    else:  # all zero: the sample cannot tell
        assert found is None


def test_the_phone_region_is_the_one_given_and_marked_as_an_assumption() -> None:
    found = phone(Sample(("07700 900123",), region="IE"))
    assert found is not None and found.expr == "e164(value, 'IE')"
    assert found.notes[0].startswith(CHECK) and "IE" in found.notes[0]
    (match,) = match_header("contact", ["telephone"], [["01 234 5678"]], region="IE")
    assert match.expr == "e164(value, 'IE')" and match.on_error == "omit"


def test_without_a_sample_nothing_is_converted() -> None:
    """The header alone: the hints stay, no option is written."""
    for match in match_header("contact", ["gender", "dob", "telephone", "country"]):
        assert (match.values, match.expr, match.notes) == (None, None, ())
        assert match.hint


def test_cells_already_as_ometria_wants_them_lose_the_columns_hint() -> None:
    (discount,) = match_header("order", ["discount_amount"], [["-4.9000"], ["0.0000"]])
    assert (discount.expr, discount.hint) == (None, "")
    (absolute,) = match_header("product", ["base_image"], [["https://cdn.example/a.jpg"]])
    assert (absolute.expr, absolute.hint) == (None, "")
    (relative,) = match_header("product", ["base_image"], [["/a/b.jpg"]])
    assert relative.expr is not None and relative.expr.endswith("+ value")


def test_a_timestamp_without_an_offset_says_which_zone_reads_it() -> None:
    (match,) = match_header("order", ["created_at"], [["2023-04-01 09:22:13"]])
    assert match.type == "timestamp" and match.on_error is None
    assert re.search(r"CHECK: the times carry no offset: .*source's timezone", match.notes[0])
    (local,) = match_header("order", ["created_at"], [["4/1/23, 10:22 AM"]])
    assert "not YYYY-MM-DD HH:MM:SS" in local.notes[0]
