"""What a platform's cells need before Ometria takes them, told from a column's sampled cells:
the column options ``init`` writes (``values``, ``expr``, ``on_error``), each with the note
that says why, and what the user must check.

A convention applies only when the sample shows it: Magento's 1/2/3 genders get their value
map only when every sampled cell is 1, 2 or 3; a birth date gets ``date(value, '%d/%m/%Y')``
only when its cells are written so and one of them has a day over 12. When the sample cannot
tell (every day and month <= 12, or two shapes mixed), nothing is converted and the note says
what to choose: a guess there would send wrong dates without a refusal to show it.
``headers.KNOWN`` names the conventions of each field; this module says what they do.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

#: the base URL written where the shop's own must go (the note says so)
PLACEHOLDER_URL = "https://shop.example/"
CHECK = "CHECK: "


def _py_string(text: str) -> str:
    """A Python string literal in single quotes (the job's TOML string holds it)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cell_of(column: str) -> str:
    """The expression for a column's raw cell: ``row['Handle']``."""
    return f"row[{_py_string(column)}]"


class Sample(msgspec.Struct, frozen=True):
    """A column's non-empty sampled cells (trimmed), and what ``init`` was told."""

    cells: tuple[str, ...]
    region: str = "GB"

    @property
    def subject(self) -> str:
        """The expression for the cell's text: Shopify writes ids and phones behind an
        apostrophe (so spreadsheets keep them as text), which the text must lose."""
        return "value.lstrip(\"'\")" if self.quoted else "value"

    @property
    def quoted(self) -> bool:
        return bool(self.cells) and all(c.startswith("'") for c in self.cells)


class Conversion(msgspec.Struct, frozen=True):
    """Column options and the notes written above the column's line. ``type`` None keeps the
    field's type; ``""`` reads the cell as text (an ``expr`` converts it)."""

    values: dict[str, Any] | None = None
    expr: str | None = None
    type: str | None = None
    on_error: str | None = None
    notes: tuple[str, ...] = ()


class Computed(msgspec.Struct, frozen=True):
    """A field no column fills, computed from a column's cell: ``expr`` with ``{cell}`` where
    the cell goes (``row['Handle']``)."""

    field: str
    expr: str
    note: str


#: Shopify's product address is the shop's /products/ and the Handle
SHOPIFY_URL = Computed("url", f"{_py_string(PLACEHOLDER_URL + 'products/')} + {{cell}}",
                       f"{CHECK}not a column of the export: the product's page, computed from "
                       f"its Handle; edit the shop's address ({PLACEHOLDER_URL} is a "
                       "placeholder)")


#: a convention: the conversion the sampled cells need; an empty ``Conversion()`` when they
#: show they need none (the column's hint goes too); None when they do not tell
Convention = Callable[[Sample], Conversion | None]


def value_map(*maps: tuple[Mapping[str, Any], str]) -> Convention:
    """The first map whose keys hold every sampled cell (with its note)."""
    def convention(sample: Sample) -> Conversion | None:
        if not sample.cells:
            return None
        for values, note in maps:
            if set(sample.cells) <= set(values):
                return Conversion(values=dict(values), notes=(note,))
        return None
    return convention


def as_text(sample: Sample) -> Conversion | None:
    """An id or code written behind an apostrophe loses it."""
    if sample.quoted:
        return Conversion(expr=sample.subject, notes=("the apostrophe before each cell "
                                                      "(a spreadsheet's text mark) is removed",))
    return None


def country(sample: Sample) -> Conversion | None:
    """``country()`` takes ISO codes as they are and turns UK, GBR, Germany into codes."""
    return Conversion(expr=f"country({sample.subject})",
                      notes=("country() turns UK, GBR or United Kingdom into GB",))


def phone(sample: Sample) -> Conversion | None:
    region = sample.region
    return Conversion(
        expr=f"e164({sample.subject}, {_py_string(region)})", on_error="omit",
        notes=(f"{CHECK}a number without +country code is read as a number in {region} "
               f"(init --region): is that your customers' country?",
               "a number that is not a phone number is left out with a warning "
               "(on_error = \"omit\"), not the contact refused"))


def negate_positive(sample: Sample) -> Conversion | None:
    """Ometria's discounts are <= 0: a column whose sampled discounts are all >= 0, some
    above, writes them positive (Magento's items, Shopify); one below 0 shows they are
    written as Ometria wants (Magento's order discount)."""
    numbers = [_number(c) for c in sample.cells]
    if not numbers or None in numbers or not any(numbers):
        return None
    if any(n is not None and n < 0 for n in numbers):
        return Conversion()
    return Conversion(expr="-value", notes=("the sample's discounts are positive: sent "
                                            "negated (Ometria's discounts are <= 0)",))


def url_from_key(sample: Sample) -> Conversion | None:
    return Conversion(expr=f"{_py_string(PLACEHOLDER_URL)} + value + '.html'",
                      notes=(f"{CHECK}edit the shop's address ({PLACEHOLDER_URL} is a "
                             "placeholder) and the suffix: Ometria wants the page's full URL",))


def url_from_path(sample: Sample) -> Conversion | None:
    """Magento's image paths are relative to the shop's media folder."""
    if sample.cells and all(c.startswith(("https://", "http://")) for c in sample.cells):
        return Conversion()
    if not sample.cells or not all(c.startswith("/") for c in sample.cells):
        return None
    base = PLACEHOLDER_URL + "media/catalog/product"
    return Conversion(expr=f"{_py_string(base)} + value",
                      notes=(f"{CHECK}edit the shop's address ({PLACEHOLDER_URL} is a "
                             "placeholder): the cells are paths, Ometria wants full URLs",))


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NUMERIC_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                       r"(?P<zone>Z|[+-]\d{2}(:?\d{2})?)?")


def calendar_date(sample: Sample) -> Conversion | None:
    """``YYYY-MM-DD`` is read as it is; ``31/12/1980`` is converted when a day over 12 shows
    the order; otherwise the note asks which order it is."""
    cells = sample.cells
    if not cells:
        return None
    iso = [_ISO_DATE.fullmatch(c) for c in cells]
    if all(iso):
        return _impossible(cells, "dates")
    numeric = [_NUMERIC_DATE.fullmatch(c) for c in cells]
    if not all(numeric):
        shown = ", ".join(repr(c) for c in _shapes(cells))
        return Conversion(notes=(f"{CHECK}the sampled dates are written in more than one way "
                                 f"({shown}): Ometria takes YYYY-MM-DD; convert them with "
                                 "expr = \"date(value, '%d/%m/%Y')\" (Python's strptime "
                                 "codes) once they are one shape",))
    order = date_order([(int(m.group(1)), int(m.group(3))) for m in numeric if m])
    sep = next(m.group(2) for m in numeric if m)
    day_first = f"%d{sep}%m{sep}%Y"
    month_first = f"%m{sep}%d{sep}%Y"
    if order is None:
        return Conversion(notes=(
            f"{CHECK}day/month or month/day? No sampled date has a part over 12, so init "
            f"cannot tell: add expr = \"date(value, '{day_first}')\" (31/12/1980) or "
            f"expr = \"date(value, '{month_first}')\" (12/31/1980)",))
    form = day_first if order == "dmy" else month_first
    told = "a day over 12 comes first" if order == "dmy" else "a day over 12 comes second"
    return Conversion(expr=f"date(value, {_py_string(form)})", type="",
                      notes=(f"the sampled dates read {form} ({told})",))


def date_order(parts: list[tuple[int, int]]) -> str | None:
    """``"dmy"`` or ``"mdy"`` when the (first, second) numbers show it (a number over 12 is a
    day), None when they do not or contradict each other."""
    first = any(a > 12 for a, _ in parts)
    second = any(b > 12 for _, b in parts)
    if first == second:
        return None
    return "dmy" if first else "mdy"


def timestamp(sample: Sample) -> Conversion | None:
    cells = sample.cells
    if not cells:
        return None
    matches = [_ISO_TIME.fullmatch(c) for c in cells]
    if not all(matches):
        odd = next(c for c, m in zip(cells, matches, strict=True) if m is None)
        return Conversion(notes=(f"{CHECK}cells such as {odd!r} are not YYYY-MM-DD HH:MM:SS: "
                                 "the timestamp type refuses them; export ISO dates or drop "
                                 "the column",))
    found = _impossible(cells, "times")
    notes = found.notes if found else ()
    if any(m and m.group("zone") for m in matches):
        return Conversion(on_error=found.on_error if found else None, notes=notes)
    return Conversion(on_error=found.on_error if found else None, notes=(
        f"{CHECK}the times carry no offset: they are read in the source's timezone "
        "(UTC above; Magento stores UTC): set the shop's zone there if the export is in "
        "local time", *notes))


def _impossible(cells: tuple[str, ...], what: str) -> Conversion | None:
    """Zero dates (0000-00-00) and days that do not exist: left out, with a warning."""
    bad = [c for c in cells if not _real_date(c[:10])]
    if not bad:
        return None
    return Conversion(on_error="omit", notes=(
        f"the sample has {what} that do not exist ({', '.join(repr(c) for c in bad[:3])}): "
        "such a cell is left out with a warning (on_error = \"omit\"), not the record refused",))


def _real_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _shapes(cells: tuple[str, ...]) -> list[str]:
    """One cell of each shape (digits as 9), in sample order."""
    seen: dict[str, str] = {}
    for cell in cells:
        seen.setdefault(re.sub(r"\d", "9", cell), cell)
    return list(seen.values())[:3]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
