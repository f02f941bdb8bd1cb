"""The job text ``init`` writes loads as it is, maps what matched, drops and lists the rest."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ometria_sync.config import load_job
from ometria_sync.scaffold import ColumnMatch, JobPlan, job_text, match_header

EXAMPLE = Path(__file__).parents[2] / "config" / "example.toml"
HEADER = ["entity_id", "Email", "First Name", "created_at", "dob", "group_id",
          "Body (HTML)", 'odd "quoted" name']


def _plan(header: list[str], delimiter: str = ",") -> JobPlan:
    return JobPlan("contact", "exports/customers.csv", delimiter,
                   match_header("contact", header), "ometria-sync init ...")


def test_the_job_loads_with_its_mapping_and_the_unknown_columns_dropped(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "customers.csv").write_text(",".join(HEADER) + "\n")
    (tmp_path / "job.toml").write_text(job_text(_plan(HEADER)))
    job = load_job(tmp_path / "job.toml", environ={})
    (stream,) = job.streams
    assert (stream.name, stream.record_type) == ("contacts", "contact")
    data = tomllib.loads((tmp_path / "job.toml").read_text())
    source = data["streams"][0]["source"]
    assert source["columns"] == {
        "entity_id": {"field": ["id", "customer_id"]}, "Email": "email",
        "First Name": "firstname",
        "created_at": {"field": "timestamp_acquired", "type": "timestamp"},
        "dob": {"field": "date_of_birth", "type": "date"}}
    assert source["drop"] == ["group_id", "Body (HTML)", 'odd "quoted" name']
    assert source["path"] == "exports/customers.csv"
    assert "delimiter" not in source
    assert data["ometria"]["base_url"] == "https://api.ometria.com/v2"
    assert data["state"]["checkpoint_url"] == "sqlite:///state/checkpoints.db"


def test_unknown_columns_are_listed_commented_out_under_the_mapping() -> None:
    text = job_text(_plan(HEADER))
    assert '# group_id = "properties.group_id"' in text
    assert '# "Body (HTML)" = "properties.body_html"' in text
    assert '# base_url = "http://127.0.0.1:' in text  # the emulator, commented out
    commented = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "group_id" in commented


def test_a_hint_rides_on_its_column_line_and_the_delimiter_is_written_when_not_a_comma() -> None:
    text = job_text(_plan(["gender", "email"], delimiter=";"))
    (line,) = [x for x in text.splitlines() if x.startswith("gender =")]
    assert "# Magento writes 1/2/3" in line
    assert 'delimiter = ";"' in text
    assert tomllib.loads(text)["streams"][0]["source"]["delimiter"] == ";"


def test_an_order_export_maps_line_item_columns_below_lineitems() -> None:
    plan = JobPlan("order", "orders.csv", ",",
                   match_header("order", ["increment_id", "sku", "qty_ordered"]), "init")
    columns = tomllib.loads(job_text(plan))["streams"][0]["source"]["columns"]
    assert columns == {"increment_id": "id", "sku": "lineitems[].sku",
                       "qty_ordered": {"field": "lineitems[].quantity", "type": "integer"}}
    assert "drop" not in tomllib.loads(job_text(plan))["streams"][0]["source"]


def test_a_plan_without_unknown_columns_has_no_drop_and_no_list() -> None:
    text = job_text(JobPlan("contact", "c.csv", ",", [ColumnMatch("email", "email")], "init"))
    assert "drop" not in text and "Columns with no known field" not in text


def test_the_settings_are_those_of_the_example_job() -> None:
    """config/example.toml is the sample job the README starts from: init writes its
    settings, so the two cannot drift apart unnoticed."""
    example = tomllib.loads(EXAMPLE.read_text())
    written = tomllib.loads(job_text(_plan(HEADER)))
    for section in ("ometria", "state", "run"):
        assert written[section] == example[section], section
