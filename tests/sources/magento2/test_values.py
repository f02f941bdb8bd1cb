"""Section 2's value rules and section 5's phone rule, by example and by property."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ometria_sync.sources.magento2.contacts import phone
from ometria_sync.sources.magento2.values import cents, day, key, number, stamp, text


def test_values_by_example() -> None:
    """Keys are digit strings, DECIMALs keep their value (whole quantities are integers),
    timestamps carry +00:00, zero dates and blank text are no value."""
    assert key(123) == "123"
    assert number(Decimal("10.5000")) == 10.5
    assert number(Decimal("2.0000")) == 2 and type(number(Decimal("2.0000"))) is int
    assert stamp(dt.datetime(2024, 2, 29, 23, 5, 1)) == "2024-02-29T23:05:01+00:00"
    assert stamp("0000-00-00 00:00:00") is None and day("0000-00-00") is None
    assert day(dt.date(1980, 2, 29)) == "1980-02-29"
    assert text("  Ann  ") == "Ann" and text(" \t") is None and text(None) is None
    assert cents(Decimal("11.675")) == Decimal("11.68")  # half up, not to even
    assert cents(Decimal("0.125")) == Decimal("0.13")


@given(st.decimals(min_value=-10**9, max_value=10**9, places=4, allow_nan=False))
def test_a_decimal_keeps_its_value(value: Decimal) -> None:
    sent = number(value)
    assert sent is not None and Decimal(repr(sent)) == value
    assert isinstance(sent, int) == (value == value.to_integral_value())


@given(st.text(alphabet="+0123456789 -.()x", max_size=24))
def test_a_phone_is_e164_or_left_out(raw: str) -> None:
    sent = phone(raw)
    assert sent is None or re.fullmatch(r"\+[1-9][0-9]{6,14}", sent)
    if sent is not None:
        digits = re.sub(r"[ \-.()]", "", raw.strip())
        assert sent in (digits, "+" + digits[2:])


def test_phones_by_example() -> None:
    assert phone("0044 (20) 7946-0958") == "+442079460958"
    assert phone(" +33.1.23.45.67.89 ") == "+33123456789"
    assert phone("020 7946 0958") is None and phone("+0 123 4567 890") is None
