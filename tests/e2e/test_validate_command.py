"""``ometria-sync validate``: a table per stream, the top reasons, a dead-letter file of its own
(never the runs' dead letter), exit 0 or 3."""

from __future__ import annotations

from tests.e2e.conftest import Workspace, jsonl

VALIDATED = "validate-dead-letter.jsonl"

ORDERS = """
[[streams]]
name = "orders"
record_type = "order"
source = { kind = "jsonl", path = "data/orders.jsonl" }
"""
GOOD = {"id": "o1", "timestamp": "2024-03-01T10:00:00Z", "currency": "GBP", "grand_total": 10,
        "lineitems": [{"product_id": "p1", "quantity": 1, "unit_price": 10}]}
# nothing listens here: validate must not try to send
NOWHERE = "http://127.0.0.1:9/v2"


async def test_validate_reports_invalid_records_and_exits_3(workspace: Workspace) -> None:
    jsonl(workspace.root / "data/orders.jsonl", [
        GOOD,
        {**GOOD, "id": "o2", "currency": "gbp", "loyalty": 3},
        {**GOOD, "id": "o3", "lineitems": [{"product_id": "p1", "quantity": 1,
                                            "unit_price": 1, "discount": 5.0}]},
        {**GOOD, "id": "o4", "currency": "EURO"},
    ])
    workspace.job(ORDERS)
    result = await workspace.run("validate", "job.toml", url=NOWHERE)
    assert result.code == 3, result.stderr
    header, _, row = result.stdout.splitlines()[:3]
    assert header.split() == ["stream", "records", "valid", "invalid", "warnings"]
    assert row.split() == ["orders", "4", "1", "3", "1"]
    assert "       2  currency: must be an ISO 4217 currency code such as \"GBP\"" in result.stdout
    assert "       1  lineitems[].discount: must be <= 0" in result.stdout
    assert "loyalty: unknown field" in result.stdout
    dead = {d["id"]: d["reasons"] for d in workspace.dead_letters(VALIDATED)}
    assert workspace.dead_letters() == []  # the runs' dead letter is left alone
    assert dead["o3"] == [{"path": "lineitems[0].discount", "message": "must be <= 0, got 5.0"}]
    assert set(dead) == {"o2", "o3", "o4"}


async def test_validate_exits_0_when_every_record_is_valid(workspace: Workspace) -> None:
    jsonl(workspace.root / "data/orders.jsonl", [GOOD, {**GOOD, "id": "o2"}])
    workspace.job(ORDERS)
    result = await workspace.run("validate", "job.toml", url=NOWHERE)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[2].split() == ["orders", "2", "2", "0", "0"]
    assert workspace.dead_letters() == workspace.dead_letters(VALIDATED) == []


async def test_strict_and_create_mode_come_from_the_job_file(workspace: Workspace) -> None:
    jsonl(workspace.root / "data/orders.jsonl", [
        {**GOOD, "loyalty": 3}, {"id": "o2", "status": "cancelled"}])
    workspace.job(ORDERS + 'mode = "create"\nstrict = true\n')
    result = await workspace.run("validate", "job.toml", url=NOWHERE)
    assert result.code == 3
    reasons = [r["message"] for d in workspace.dead_letters(VALIDATED) for r in d["reasons"]]
    assert "unknown field (sent as it is; strict = true refuses it)" in reasons
    assert 'is required to create an order (mode = "create")' in reasons
