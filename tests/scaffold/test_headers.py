"""The matching table: header names of known fields map to those fields, whatever their
spelling style; other names never map; column types come from the schema."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ometria_sync.config import load_job
from ometria_sync.scaffold import KNOWN, JobPlan, job_text, match_header, normal
from ometria_sync.schemas import RECORD_TYPES, field_guide


def _styles(name: str) -> st.SearchStrategy[str]:
    """The ways exports write one name: first_name, FIRST_NAME, First Name, first-name."""
    words = name.split("_")
    return st.sampled_from([
        name, name.upper(), " ".join(w.capitalize() for w in words), "-".join(words),
        f"  {name} ",
    ])


def test_every_name_is_normal_and_belongs_to_one_field_of_its_type() -> None:
    for record_type, knowns in KNOWN.items():
        seen: dict[str, str] = {}
        for known in knowns:
            for name in known.names:
                assert normal(name) == name, name
                assert name not in seen, (record_type, name, seen.get(name), known.field)
                seen[name] = known.field
            assert {n for n, _ in known.name_hints} <= set(known.names), known.field
        fields = [k.field for k in knowns]
        assert len(fields) == len(set(fields)), record_type


def test_every_field_in_the_table_is_a_field_of_the_schema() -> None:
    for record_type, knowns in KNOWN.items():
        paths = {d.path for d in field_guide(record_type)}
        assert {k.field for k in knowns} <= paths, record_type
    assert set(KNOWN) == set(RECORD_TYPES)


@st.composite
def _headers(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]]]:
    record_type = draw(st.sampled_from(sorted(KNOWN)))
    knowns = draw(st.lists(st.sampled_from(KNOWN[record_type]), unique_by=lambda k: k.field,
                           max_size=12))
    columns: list[tuple[str, str | None]] = []
    for known in knowns:
        name = draw(st.sampled_from(known.names))
        columns.append((draw(_styles(name)), known.field))
    every = {n for k in KNOWN[record_type] for n in k.names}
    unknown = draw(st.lists(st.text(min_size=1, max_size=12).filter(
        lambda t: normal(t) not in every), max_size=6))
    columns += [(name, None) for name in unknown]
    columns = draw(st.permutations(columns))
    stripped = [c.strip() for c, _ in columns]
    if len(set(stripped)) != len(stripped):  # a header never names a column twice
        columns = list({c.strip(): (c, f) for c, f in columns}.values())
    return record_type, columns


@given(_headers())
def test_known_names_map_to_their_field_and_unknown_names_never_map(
        drawn: tuple[str, list[tuple[str, str | None]]]) -> None:
    record_type, columns = drawn
    matches = match_header(record_type, [c for c, _ in columns])  # type: ignore[arg-type]
    assert [(m.column, m.field) for m in matches] == columns


def test_a_field_takes_one_column_the_name_listed_first_wins() -> None:
    matches = match_header("contact", ["id", "entity_id", "email", "Email"])
    assert [(m.column, m.field) for m in matches] == [
        ("id", None), ("entity_id", "id"), ("email", "email"), ("Email", None)]


def test_column_types_come_from_the_fields_schema_type() -> None:
    order = match_header("order", ["increment_id", "created_at", "grand_total", "qty_ordered",
                                   "sku", "item_discount_amount"])
    assert [(m.field, m.type) for m in order] == [
        ("id", "string"), ("timestamp", "timestamp"), ("grand_total", "number"),
        ("lineitems[].quantity", "integer"), ("lineitems[].sku", "string"),
        ("lineitems[].discount", "number")]
    contact = match_header("contact", ["dob", "created_at", "is_subscribed"])
    assert [m.type for m in contact] == ["date", "timestamp", "string"]
    product = match_header("product", ["product_online", "price"])
    assert [m.type for m in product] == ["boolean", "number"]


def test_shopify_and_magento_headers() -> None:
    shopify_customers = ["Customer ID", "First Name", "Last Name", "Email",
                         "Accepts Email Marketing", "Default Address Company",
                         "Default Address Country Code", "Phone", "Total Spent", "Tags"]
    assert [m.field for m in match_header("contact", shopify_customers)] == [
        "id", "firstname", "lastname", "email", "marketing_optin", None, "country_id",
        "phone_number", None, None]
    shopify_products = ["Handle", "Title", "Body (HTML)", "Vendor", "Variant SKU",
                        "Variant Price", "Variant Compare At Price", "Image Src", "Status"]
    assert [m.field for m in match_header("product", shopify_products)] == [
        "id", "title", None, None, "sku", "price", None, "image_url", "is_active"]
    magento_products = ["sku", "store_view_code", "name", "product_online", "price",
                        "special_price", "url_key", "base_image", "qty", "is_in_stock"]
    assert [m.field for m in match_header("product", magento_products)] == [
        "sku", None, "title", "is_active", "price", "special_price", "url", "image_url", None,
        "is_in_stock"]
    shopify_orders = ["Name", "Email", "Financial Status", "Currency", "Subtotal", "Shipping",
                      "Taxes", "Total", "Discount Code", "Discount Amount", "Created at",
                      "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku",
                      "Lineitem discount", "Billing Country", "Id"]
    assert [m.field for m in match_header("order", shopify_orders)] == [
        None, "customer.email", "status", "currency", "subtotal", "shipping", "tax",
        "grand_total", "coupon_code", "discount", "timestamp", "lineitems[].quantity", None,
        "lineitems[].unit_price", "lineitems[].sku", "lineitems[].discount",
        "billing_address.country_code", "id"]


def test_a_hint_for_one_name_rides_on_that_name_only() -> None:
    handle, entity = match_header("product", ["Handle"])[0], match_header("product", ["id"])[0]
    assert handle.field == entity.field == "id"
    assert "one row per variant" in handle.hint
    assert entity.hint == ""


_CELLS = st.sampled_from(["", "1", "2", "3", "0", "yes", "no", "31/12/1980", "01/02/1980",
                          "1980-12-31", "0000-00-00 00:00:00", "2023-04-01 10:22:13",
                          "'07700 900123", "UK", "4.9000", "-4.9000", "/a/b.jpg", "x y"])


@given(_headers(), st.data())
def test_sampled_cells_change_how_a_column_is_written_never_which_field_it_fills(
        drawn: tuple[str, list[tuple[str, str | None]]], data: st.DataObject) -> None:
    record_type, columns = drawn
    header = [c for c, _ in columns]
    rows = data.draw(st.lists(st.lists(_CELLS, min_size=len(header), max_size=len(header)),
                              max_size=5))
    plain = match_header(record_type, header)  # type: ignore[arg-type]
    sampled = match_header(record_type, header, rows)  # type: ignore[arg-type]
    assert [m.field for m in sampled] == [m.field for m in plain]
    for match in sampled:
        if match.field is None:
            assert (match.values, match.expr, match.notes) == (None, None, ())


@settings(max_examples=40, deadline=None)
@given(_headers(), st.data())
def test_the_job_written_from_any_sample_loads(
        drawn: tuple[str, list[tuple[str, str | None]]], data: st.DataObject) -> None:
    """Whatever a convention writes (value maps, expressions, field lists) is a job that
    loads: its TOML reads and its expressions compile."""
    record_type, columns = drawn
    header = [c.strip() for c, _ in columns]
    rows = data.draw(st.lists(st.lists(_CELLS, min_size=len(header), max_size=len(header)),
                              min_size=1, max_size=5))
    matches = match_header(record_type, header, rows)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with (folder / "x.csv").open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([header, *rows])
        (folder / "job.toml").write_text(job_text(JobPlan(
            record_type, "x.csv", ",", matches, "init")), encoding="utf-8")  # type: ignore[arg-type]
        load_job(folder / "job.toml", environ={})
