"""``on_missing = "deactivate"`` on a MariaDB source with a ``deleted_query`` over a
soft-delete column, through the real CLI against the emulator: exactly the rows deleted since
the last run are deactivated, a row deleted before the job ever delivered it is passed over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace
from tests.e2e.test_on_missing import changed, settled
from tests.mysql import Database

pytestmark = [pytest.mark.mysql, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _dsn(monkeypatch: pytest.MonkeyPatch, my_db: Database) -> None:
    monkeypatch.setenv("SHOP_DSN", my_db.dsn)


async def test_soft_deleted_rows_are_deactivated_and_nothing_else(
        tmp_path: Path, emulator: Any, my_db: Database) -> None:
    await my_db.execute("CREATE TABLE products (id VARCHAR(20) PRIMARY KEY, title TEXT NOT NULL, "
                        "updated_at DATETIME(6) NOT NULL, deleted_at DATETIME(6) NULL)")
    for i in range(100):
        await my_db.execute("INSERT INTO products VALUES (%s, %s, '2026-01-01', NULL)",
                            f"p{i}", f"Product {i}")
    await my_db.execute("INSERT INTO products VALUES ('x1', 'gone', '2026-01-01', "
                        "'2026-01-02')")
    workspace = Workspace(tmp_path)
    workspace.job("""
[[streams]]
name = "products"
record_type = "product"
on_missing = "deactivate"
[streams.source]
kind = "mysql"
dsn_env = "SHOP_DSN"
query = "SELECT id, title, updated_at FROM products WHERE deleted_at IS NULL"
cursor = ["updated_at", "id"]
drop = ["updated_at"]
lookback_seconds = 0
deleted_query = "SELECT id, deleted_at FROM products WHERE deleted_at IS NOT NULL"
deleted_cursor = ["deleted_at", "id"]
""")
    async with emulator(rate=50) as emu:
        foreign = [{"@type": "product", "id": "x1", "title": "Theirs", "is_active": True}]
        emu.app[STORE].accept(foreign)
        emu.app[STORE].drain(1)
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        first = await settled(emu)
        await my_db.execute("UPDATE products SET deleted_at = UTC_TIMESTAMP(6) "
                            "WHERE id IN ('p3', 'p30', 'p33')")
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0, second.stdout + second.stderr
        after = await settled(emu)
        assert changed(first["product"], after["product"]) == {
            p: {"is_active": False} for p in ("p3", "p30", "p33")}
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        assert emu.app[STORE].stats.seen["product:p3"] == 2  # deactivated once, not again
