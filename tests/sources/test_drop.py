"""``drop`` and column order: every field gets the value of the column mapped to it, by name."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.sources.columns import plan_columns
from ometria_sync.sources.files.csv import CsvOptions
from ometria_sync.sources.rows import RowMapper

NAMES = st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=8,
                 unique=True)


@st.composite
def mappings(draw: st.DrawFn) -> tuple[list[str], set[str], dict[str, str]]:
    """A header in any order, some of its columns dropped, some mapped to other fields."""
    header = draw(st.permutations(draw(NAMES)))
    dropped = set(draw(st.lists(st.sampled_from(header), unique=True)))
    kept = [name for name in header if name not in dropped]
    renamed = draw(st.lists(st.sampled_from(kept), unique=True)) if kept else []
    return list(header), dropped, {name: f"f_{name}" for name in renamed}


@given(mappings())
def test_each_field_gets_the_value_of_its_own_column(case: tuple[list[str], set[str],
                                                                 dict[str, str]]) -> None:
    """Whatever the header, the dropped columns and the order: field <- its column, by name."""
    header, dropped, renamed = case
    options = CsvOptions(columns=dict(renamed), drop=sorted(dropped))
    mapper = RowMapper(plan_columns("s", options, header), {}, dt.UTC, len(header))
    cells = [f"value of {name}" for name in header]
    record = mapper.map_row(cells)[0]
    expected = {renamed.get(name, name): f"value of {name}"
                for name in header if name not in dropped}
    assert record == expected


def test_a_dropped_column_in_the_middle_moves_nothing() -> None:
    """The review's products file: ``drop = ["qty"]`` left image and category in place."""
    header = ["sku", "qty", "image", "category"]
    options = CsvOptions(columns={"image": "image_url", "category": "properties.category"},
                         drop=["qty"])
    mapper = RowMapper(plan_columns("s", options, header), {}, dt.UTC, len(header))
    record = mapper.map_row(["S1", "173.0000", "/m/a.jpg", "Men"])[0]
    assert record == {"sku": "S1", "image_url": "/m/a.jpg", "properties": {"category": "Men"}}
