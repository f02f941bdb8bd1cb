"""``ometria-sync init`` then ``validate`` on what it wrote, and ``ometria-sync fields``: the real
CLI as a subprocess (nothing is sent: validation needs no server)."""

from __future__ import annotations

import asyncio
import json
import shutil

import aiohttp
import pytest

from ometria_sync.schemas import RECORD_TYPES, field_guide
from tests.e2e.conftest import KEY, EmulatorFactory, Workspace
from tests.e2e.test_examples import EXAMPLES
from tests.e2e.test_examples import EXPECTED as EXAMPLE_OUTCOMES

# nothing listens here: neither command may try to send
NOWHERE = "http://127.0.0.1:9/v2"

# Magento-style customers; the columns with no known field come last
CUSTOMERS = """\
entity_id,email,firstname,lastname,created_at,dob,gender,country_id,telephone,group_id,website_id
1,ada@example.com,Ada,Lovelace,2023-04-01 10:22:13,1980-12-31,f,GB,+447700900123,1,1
2,bob@example.com,Bob,Smith,2023-04-02 11:00:00,31/12/1980,m,GB,+447700900124,1,1
3,not-an-email,Cy,Jones,2023-04-03 12:00:00,,o,GB,,1,1
4,dee@example.com,Dee,Ng,2023-04-04 09:00:00,1975-01-02,f,GB,,2,1
"""

ORDERS = """\
increment_id,created_at,customer_email,order_currency_code,grand_total,sku,qty_ordered,price
100001,2023-04-01 10:22:13,ada@example.com,GBP,98.0000,LS-01,2.0000,49.0000
100001,2023-04-01 10:22:13,ada@example.com,GBP,98.0000,LS-02,1.0000,0.0000
100002,2023-04-02 10:00:00,bob@example.com,GBP,10.0000,LS-03,1.0000,10.0000
"""


async def test_init_writes_a_job_that_validate_runs_as_it_is(workspace: Workspace) -> None:
    (workspace.root / "exports").mkdir()
    (workspace.root / "exports" / "customers.csv").write_text(CUSTOMERS)
    result = await workspace.run("init", "--csv", "exports/customers.csv", "--type", "contact",
                                 url=NOWHERE)
    assert result.code == 3, result.stderr  # two of the four sampled rows are refused
    assert "wrote job.toml: 9 of 11 columns mapped" in result.stdout
    assert "contacts  4        2      2" in result.stdout
    assert "column 'dob' (date_of_birth): not a date" in result.stdout
    assert "email: must be an email address" in result.stdout
    assert "column 'dob' -> date_of_birth: a calendar date written YYYY-MM-DD" in result.stdout
    assert "column 'email' -> email: an email address" in result.stdout
    assert not (workspace.root / "state").exists(), "init leaves no state beside the job"

    validated = await workspace.run("validate", "job.toml", url=NOWHERE)
    assert validated.code == 3, validated.stderr
    assert validated.stdout.splitlines()[2].split() == ["contacts", "4", "2", "2", "0"]
    dead = {d["line"]: d for d in workspace.dead_letters("validate-dead-letter.jsonl")}
    assert sorted(dead) == [3, 4]


async def test_an_order_export_groups_line_items_and_validates(workspace: Workspace) -> None:
    (workspace.root / "orders.csv").write_text(ORDERS)
    result = await workspace.run("init", "--csv", "orders.csv", "--type", "order",
                                 "--out", "jobs/orders.toml", url=NOWHERE)
    assert result.code == 0, result.stdout + result.stderr
    text = (workspace.root / "jobs" / "orders.toml").read_text()
    assert 'path = "../orders.csv"' not in text  # outside the job's folder: an absolute path
    assert str(workspace.root / "orders.csv") in text
    validated = await workspace.run("validate", "jobs/orders.toml", url=NOWHERE)
    assert validated.code == 0, validated.stdout + validated.stderr
    assert validated.stdout.splitlines()[2].split() == ["orders", "2", "2", "0", "0"]


async def test_init_never_overwrites_a_file_without_force(workspace: Workspace) -> None:
    (workspace.root / "customers.csv").write_text(CUSTOMERS)
    (workspace.root / "job.toml").write_text("# mine\n")
    refused = await workspace.run("init", "--csv", "customers.csv", "--type", "contact",
                                  url=NOWHERE)
    assert refused.code == 2
    assert "job.toml exists: not overwritten (--force to replace it)" in refused.stderr
    assert (workspace.root / "job.toml").read_text() == "# mine\n"
    forced = await workspace.run("init", "--csv", "customers.csv", "--type", "contact",
                                 "--force", url=NOWHERE)
    assert forced.code == 3
    assert (workspace.root / "job.toml").read_text().startswith("# Written by `ometria-sync")


async def test_fields_prints_every_field_of_the_type(workspace: Workspace) -> None:
    result = await workspace.run("fields", "contact", url=NOWHERE)
    assert result.code == 0, result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {d.path for d in field_guide("contact")} <= rows
    assert any(line.split()[:2] == ["email", "string"] and "ada@example.com" in line
               for line in result.stdout.splitlines())
    as_json = await workspace.run("fields", "--json", url=NOWHERE)
    data = json.loads(as_json.stdout)
    assert sorted(data) == sorted(RECORD_TYPES)
    assert [f["path"] for f in data["order"]["fields"]] == [d.path for d in field_guide("order")]


async def test_a_file_that_cannot_be_read_writes_nothing_and_exits_1(workspace: Workspace) -> None:
    result = await workspace.run("init", "--csv", "missing.csv", "--type", "product",
                                 url=NOWHERE)
    assert result.code == 1
    assert "missing.csv: cannot read it" in result.stderr
    assert not (workspace.root / "job.toml").exists()


async def test_without_an_id_column_the_sku_is_the_id_and_init_says_so(
        workspace: Workspace) -> None:
    """Magento's catalog export has no entity_id: the SKU fills id too, as a CHECK."""
    (workspace.root / "products.csv").write_text(
        "sku;name;product_online;price;url_key\nLS-01;Linen shirt;1;49.0000;linen-shirt\n")
    result = await workspace.run("init", "--csv", "products.csv", "--type", "product",
                                 url=NOWHERE)
    assert result.code == 0, result.stdout + result.stderr
    assert "wrote job.toml: 5 of 5 columns mapped, delimiter ';'" in result.stdout
    assert ("column 'sku': the export has no id column: the SKU is each record's id"
            in result.stdout)
    text = (workspace.root / "job.toml").read_text()
    assert 'delimiter = ";"' in text
    assert 'sku = { field = ["sku", "id"] }' in text
    assert "# CHECK: the export has no id column" in text


async def test_a_required_field_no_column_fills_is_named(workspace: Workspace) -> None:
    """An order export without its order number: init says so, and the sample shows it."""
    (workspace.root / "orders.csv").write_text(
        "customer_email,created_at,grand_total\nada@example.com,2023-04-01 10:22:13,9.5\n")
    result = await workspace.run("init", "--csv", "orders.csv", "--type", "order", url=NOWHERE)
    assert result.code == 3, result.stderr
    assert ("no column fills id (required): map the column that identifies a record to it "
            '(e.g. customer_email = "id", in place of its line)') in result.stdout
    assert "id: is required" in result.stdout


async def test_the_written_job_delivers_the_right_values(workspace: Workspace,
                                                          emulator: EmulatorFactory) -> None:
    """init, then run the job as written (only its base URL pointed at the emulator): the
    orders arrive grouped, with their line items, typed and with offsets."""
    (workspace.root / "orders.csv").write_text(ORDERS)
    written = await workspace.run("init", "--csv", "orders.csv", "--type", "order", url=NOWHERE)
    assert written.code == 0, written.stdout + written.stderr
    assert '# base_url = "http://127.0.0.1:8765/v2"' in (workspace.root / "job.toml").read_text()
    async with emulator(rate=50) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        assert result.code == 0, result.stdout + result.stderr
        for _ in range(100):  # the emulator imports asynchronously, like Ometria
            if emu.stats()["queue_depth"] == 0:
                break
            await asyncio.sleep(0.05)
        async with (aiohttp.ClientSession(headers={"X-Ometria-Auth": KEY}) as http,
                    http.get(f"{emu.url}/orders/100001") as answer):
            order = await answer.json()
    assert order["timestamp"] == "2023-04-01T10:22:13+00:00"
    assert order["grand_total"] == 98.0
    assert order["currency"] == "GBP"
    assert order["customer"] == {"email": "ada@example.com"}
    assert order["lineitems"] == [{"sku": "LS-01", "quantity": 2, "unit_price": 49.0},
                                  {"sku": "LS-02", "quantity": 1, "unit_price": 0.0}]


async def test_a_dropped_column_in_the_middle_leaves_the_others_values_alone(
        workspace: Workspace) -> None:
    (workspace.root / "c.csv").write_text("entity_id,group_id,email\n1,7,ada@example.com\n")
    result = await workspace.run("init", "--csv", "c.csv", "--type", "contact", url=NOWHERE)
    assert result.code == 0, result.stdout


@pytest.mark.parametrize("name", sorted(EXAMPLE_OUTCOMES))
async def test_init_on_an_example_export_refuses_what_the_hand_written_job_refuses(
        name: str, workspace: Workspace) -> None:
    """config/examples/: the job init writes for each sample export, validated as it is,
    refuses the one row the hand-written example refuses, for the same reason."""
    folder, stem = name.split("/")
    shutil.copy(EXAMPLES / folder / f"{stem}.csv", workspace.root / f"{stem}.csv")
    record_type, _, line, reason = EXAMPLE_OUTCOMES[name]
    written = await workspace.run("init", "--csv", f"{stem}.csv", "--type", record_type,
                                  url=NOWHERE)
    assert written.code == 3, written.stdout + written.stderr
    validated = await workspace.run("validate", "job.toml", url=NOWHERE)
    assert validated.code == 3, validated.stdout + validated.stderr
    assert [(d["line"], [r["message"] for r in d["reasons"]])
            for d in workspace.dead_letters("validate-dead-letter.jsonl")] == [(line, [reason])]


async def test_what_init_cannot_tell_is_written_as_a_check_and_printed(
        workspace: Workspace) -> None:
    """Dates whose day and month are all <= 12 are not converted (either order reads them);
    the phone region is the one given; both are printed as assumptions to check."""
    (workspace.root / "c.csv").write_text(
        "entity_id,email,dob,telephone\n1,ada@example.com,01/02/1980,087 123 4567\n"
        "2,bob@example.com,03/04/1975,\n")
    result = await workspace.run("init", "--csv", "c.csv", "--type", "contact",
                                 "--region", "ie", url=NOWHERE)
    assert result.code == 3, result.stdout + result.stderr
    assert "column 'dob': day/month or month/day?" in result.stdout
    assert "column 'telephone': a number without +country code is read as a number in IE" \
        in result.stdout
    assert "column 'dob' -> date_of_birth: a calendar date written YYYY-MM-DD; day/month or " \
        "month/day?" in result.stdout
    text = (workspace.root / "job.toml").read_text()
    assert 'dob = { field = "date_of_birth", type = "date" }' in text
    assert "expr = \"e164(value, 'IE')\"" in text
    assert "--region IE" in text.splitlines()[0]
