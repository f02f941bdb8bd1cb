"""The promise across nights when a CSV export of one row per line item, folded into orders,
is skipped in groups of whole orders (issue 34), through the real CLI against the emulator:
an unchanged night sends nothing; a changed line item sends its order again, whole; a revert
after an unchanged night is sent; an order whose rows stop being consecutive is refused as
the row-by-row read refuses it, even when its first rows are in a group skipped undecoded; a
night killed mid-way and run again ends with every order's latest version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from ometria_sync.sources.files.csv import CsvOptions, CsvPart
from ometria_sync.sources.files.location import LocalFile
from ometria_sync.sources.mapping import ColumnSpec
from tests.e2e.conftest import Workspace
from tests.e2e.crash_trials import crash_trials, once, sqlite_position
from tests.e2e.test_unchanged_nights import _kept_groups, _reports

pytestmark = pytest.mark.e2e
N = 300
HEADER = "order_id,created,currency,total,email,sku,qty,price\n"
COLUMNS = {"order_id": "id", "created": "timestamp", "currency": "currency",
           "total": ColumnSpec("grand_total", "number"), "email": "customer.email",
           "sku": "lineitems[].sku", "qty": ColumnSpec("lineitems[].quantity", "integer"),
           "price": ColumnSpec("lineitems[].unit_price", "number")}
JOB = """
[[streams]]
name = "orders"
record_type = "order"
[streams.source]
kind = "csv"
path = "data/orders.csv"
[streams.source.columns]
order_id = "id"
created = "timestamp"
currency = "currency"
total = { field = "grand_total", type = "number" }
email = "customer.email"
sku = "lineitems[].sku"
qty = { field = "lineitems[].quantity", type = "integer" }
price = { field = "lineitems[].unit_price", type = "number" }
"""


def _rows(n: int, qty: dict[tuple[int, int], int] | None = None) -> list[str]:
    """The rows of ``n`` orders, order ``i`` with ``1 + i % 3`` line items; ``qty``: the
    quantity of (order, item) when not 1."""
    rows = []
    for i in range(n):
        for item in range(1 + i % 3):
            q = (qty or {}).get((i, item), 1)
            rows.append(f"o{i},2024-03-01T10:00:00Z,GBP,{10 + i}.5,user{i}@example.com,"
                        f"SKU-{i}-{item},{q},2.5\n")
    return rows


def _write(workspace: Workspace, rows: list[str]) -> Path:
    data = workspace.root / "data" / "orders.csv"
    data.parent.mkdir(exist_ok=True)
    data.write_text(HEADER + "".join(rows))
    return data


def _held(emu: Any) -> dict[str, Any]:
    store = emu.app[STORE]
    store.drain(len(store.queue))
    return {key.split("/", 1)[-1]: r for key, r in store.table("order").items()}


def _quantities(order: dict[str, Any]) -> list[int]:
    return [item["quantity"] for item in order["lineitems"]]


def _last_report(workspace: Workspace) -> dict[str, Any]:
    paths = sorted((workspace.root / "state" / "reports").glob("*.json"))
    report: dict[str, Any] = json.loads(paths[-1].read_text())["streams"][0]
    return report


async def _row_by_row_errors(path: Path) -> list[str]:
    """The reasons the row-by-row read (no groups) refuses rows of ``path`` for."""
    part = CsvPart(LocalFile(path), CsvOptions(columns=dict(COLUMNS)))
    return [i.error async for chunk in part.read(None) for i in chunk if i.error]


async def test_a_changed_line_item_resends_its_order_whole_and_a_revert_is_sent(
        workspace: Workspace, emulator: Any) -> None:
    """Nights A, A (groups kept), A (skipped: nothing sent), B (the middle line item of
    order 41 changed: that order sent again with its three line items), A (sent back)."""
    workspace.job(JOB)
    quantities = []
    async with emulator(rate=50) as emu:
        for night in (None, None, None, {(41, 1): 5}, None):
            _write(workspace, _rows(N, night))
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
            held = _held(emu)
            quantities.append(_quantities(held["o41"]))
            if len(quantities) == 2:
                kept = _kept_groups(workspace)
    assert quantities == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 5, 1], [1, 1, 1]]
    assert kept > 0
    assert len(held) == N and all(len(held[f"o{i}"]["lineitems"]) == 1 + i % 3
                                  for i in range(N))
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, N, 0), (N, N - 1, 1),
                                   (N, N - 1, 1)]


async def test_rows_of_an_order_no_longer_consecutive_are_refused_as_read_row_by_row(
        workspace: Workspace, emulator: Any) -> None:
    """Night 3 adds a row of order 30 at the end of the export: the groups before are
    unchanged (order 30's skipped undecoded), and the row is refused with the same reason
    the row-by-row read gives, naming the line where order 30 ended."""
    workspace.job(JOB)
    async with emulator(rate=50) as emu:
        for night in range(3):
            rows = _rows(N)
            if night == 2:
                rows.append(rows[60].replace("SKU-30-0", "SKU-30-9"))
            data = _write(workspace, rows)
            result = await workspace.run("run", "job.toml", url=emu.url)
            held = _held(emu)
    expected = await _row_by_row_errors(data)
    assert len(expected) == 1 and "rows of order 'o30' are not consecutive" in expected[0]
    report = _last_report(workspace)
    assert result.code != 0 and report["dead_lettered"] == 1
    assert [r["message"] for d in workspace.dead_letters() for r in d["reasons"]] == expected
    assert _quantities(held["o30"]) == [1]
    assert _reports(workspace)[-1][1:] == (N, 0)


async def test_an_order_copied_whole_earlier_in_the_export_is_refused_where_it_was(
        workspace: Workspace, emulator: Any) -> None:
    """Night 3 copies order 250's rows, unchanged, after order 10: the copy is the order
    Ometria holds (nothing sent), and its own rows further on, in a group Ometria holds as it
    is, are refused as the row-by-row read refuses them: that group is not skipped."""
    workspace.job(JOB)
    async with emulator(rate=50) as emu:
        for night in range(3):
            rows = _rows(N)
            if night == 2:
                copy = [r for r in rows if r.startswith("o250,")]
                rows[len(_rows(11)):len(_rows(11))] = copy
            data = _write(workspace, rows)
            await workspace.run("run", "job.toml", url=emu.url)
            if night == 1:
                kept = _kept_groups(workspace)
            held = _held(emu)
    expected = await _row_by_row_errors(data)
    assert len(expected) == 1 and "rows of order 'o250' are not consecutive" in expected[0]
    assert [r["message"] for d in workspace.dead_letters() for r in d["reasons"]] == expected
    assert kept > 0 and len(held["o250"]["lineitems"]) == 2
    assert _reports(workspace)[-1] == (N + 1, N, 0)


async def test_an_order_split_on_night_two_is_refused_as_read_row_by_row(
        workspace: Workspace, emulator: Any) -> None:
    """Night 2 moves order 50's last row after order 200: the order goes out without it
    and the row is refused, as the row-by-row read does."""
    workspace.job(JOB)
    async with emulator(rate=50) as emu:
        rows = _rows(N)
        _write(workspace, rows)
        result = await workspace.run("run", "job.toml", url=emu.url)
        assert result.code == 0, result.stderr[-2000:]
        moved = rows.pop(100)  # order 50: rows 98, 99, 100
        assert moved.startswith("o50,")
        rows.insert(rows.index(_rows(201)[-1]) + 1, moved)
        data = _write(workspace, rows)
        result = await workspace.run("run", "job.toml", url=emu.url)
        held = _held(emu)
    expected = await _row_by_row_errors(data)
    assert len(expected) == 1 and "rows of order 'o50' are not consecutive" in expected[0]
    assert [r["message"] for d in workspace.dead_letters() for r in d["reasons"]] == expected
    assert _quantities(held["o50"]) == [1, 1]


async def test_a_revert_after_a_night_killed_mid_way_ends_on_every_orders_latest(
        workspace: Workspace, emulator: Any) -> None:
    """Nights A, A (groups kept), then B (every line item of the first 1000 orders),
    killed (SIGKILL) once its checkpoint passed line 400 and run again to the end, then A
    again: Ometria ends on A for every order, every line item in it."""
    orders = 2000
    workspace.job(JOB, rate_limit_per_second=4, batch_size=100)
    b = {(i, item): 2 for i in range(1000) for item in range(3)}

    def past_line_400() -> bool:
        position = sqlite_position(workspace.root, "orders")
        return position is not None and 400 <= position[1] < 2000

    async with emulator(rate=4) as emu:
        for _ in range(2):
            _write(workspace, _rows(orders))
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
        kept = _kept_groups(workspace)
        _write(workspace, _rows(orders, b))
        result = await crash_trials([workspace], emu.url, 1, once(past_line_400))
        assert result.code == 0, result.stderr[-2000:]
        assert _quantities(_held(emu)["o500"]) == [2, 2, 2]
        _write(workspace, _rows(orders))
        result = await workspace.run("run", "job.toml", url=emu.url)
        assert result.code == 0, result.stderr[-2000:]
        held = _held(emu)
    assert kept > 0
    assert [i for i in range(orders)
            if _quantities(held[f"o{i}"]) != [1] * (1 + i % 3)] == []
    assert _reports(workspace)[-1] == (orders, orders - 1000, 1000)
