"""A MariaDB table synced by the real CLI into the emulator: full then incremental, a kill -9
mid-run resumed with nothing lost, rows whose values have no JSON form dead-lettered with
their field, and the DSN's password in no output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace
from tests.e2e.crash_trials import table_crash_trials
from tests.mysql import QUERY, Database, fill

pytestmark = [pytest.mark.mysql, pytest.mark.e2e]

BATCH, DISPATCHERS = 100, 4


def _job(workspace: Workspace, rate: int, query: str = QUERY, **source: Any) -> None:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items())
    workspace.job(f"""
[[streams]]
name = "orders"
record_type = "order"
mode = "create"
[streams.source]
kind = "mysql"
dsn_env = "SHOP_DSN"
query = {json.dumps(query)}
cursor = ["updated_at", "seq"]
drop = ["updated_at", "seq", "quantity", "is_guest"]
{extra}""", rate_limit_per_second=rate, concurrency=DISPATCHERS)


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("SHOP_DSN", my_db.dsn)


async def test_a_table_syncs_whole_then_only_the_rows_that_changed(
        workspace: Workspace, emulator: Any, my_db: Database) -> None:
    await fill(my_db, 20_000)
    _job(workspace, rate=400)
    async with emulator(rate=400, queue_capacity=1_000_000) as emu:
        first = await workspace.run("run", "job.toml", url=emu.url, timeout=110)
        assert first.code == 0, first.stderr
        after_first = emu.stats()
        await my_db.execute("UPDATE orders SET total = total + 1, "
                            "updated_at = UTC_TIMESTAMP(6) WHERE id % 500 = 7")  # 40 rows
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0, second.stderr
        after_second = emu.stats()
    assert after_first["distinct_ids"] == 20_000
    assert after_first["records_accepted"] == 20_000
    assert after_second["records_accepted"] - after_first["records_accepted"] == 40


async def test_a_run_killed_midway_resumes_without_loss(
        workspace: Workspace, emulator: Any, my_db: Database) -> None:
    trials = 2
    total = 3000 + trials * 3000
    await fill(my_db, total)
    # the crash trials bound resends by what was in flight; a lookback also re-reads rows
    # before the checkpoint (as the PostgreSQL crash trials)
    _job(workspace, rate=40, lookback_seconds=0)
    await table_crash_trials("mysql crash trials", workspace, emulator, total, trials,
                             in_flight=(DISPATCHERS + 1) * BATCH)


async def test_values_without_a_json_form_dead_letter_their_row_with_its_field(
        workspace: Workspace, emulator: Any, my_db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A BLOB (bytes) has no one JSON form: its row goes to the dead letter naming the field,
    the others are sent, exit 3. The DSN's password appears in no output."""
    await fill(my_db, 6)
    query = ("SELECT CAST(id AS CHAR) AS id, currency, total AS grand_total, "
             "placed_at AS timestamp, updated_at, id AS seq, quantity, is_guest, "
             "IF(id = 2, UNHEX('00FF'), NULL) AS raw "
             "FROM orders")
    _job(workspace, rate=200, query=query)
    async with emulator(rate=200) as emu:
        result = await workspace.run("run", "job.toml", url=emu.url)
        store = emu.app[STORE]
        store.drain(len(store.queue))
        arrived = sorted(k.split("/", 1)[-1] for k in store.table("order"))
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert arrived == ["1", "3", "4", "5", "6"], workspace.dead_letters()
    [dead] = workspace.dead_letters()
    reasons = [(r["path"], r["message"]) for r in dead["reasons"]
               if "unknown field" not in r["message"]]
    assert dead["id"] == "2"
    assert [path for path, _ in reasons] == ["raw"]
    assert reasons[0][1].startswith("has no JSON form (type bytes;")
    user = f"ro_{my_db.name[2:10]}"
    await my_db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-s3cret'")
    try:
        monkeypatch.setenv("SHOP_DSN", f"mysql://{user}:pw-s3cret@127.0.0.1:3306/{my_db.name}")
        refused = await workspace.run("run", "job.toml", url="http://127.0.0.1:9")
        status = await workspace.run("status", "job.toml", url="http://127.0.0.1:9")
    finally:
        await my_db.execute(f"DROP USER '{user}'@'%'")
    assert refused.code == 1 and "cannot connect to MySQL (SHOP_DSN)" in refused.stderr
    for output in (refused.stdout, refused.stderr, status.stdout, status.stderr):
        assert "pw-s3cret" not in output
    for path in workspace.root.rglob("*"):  # state, reports, dead letters
        assert not path.is_file() or b"pw-s3cret" not in path.read_bytes(), path
