"""The promise across nights when unchanged CSV rows are skipped undecoded (issue 34), through
the real CLI against the emulator: a version reverted after an unchanged night is sent, rows
whose quoted fields hold newlines included; a reordered header makes every row new; a refused
row is read again every night until it is fixed; a revert after a night killed mid-way is
sent; ``on_missing = "deactivate"`` keeps the fast path off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CONTACTS, Workspace
from tests.e2e.crash_trials import crash_trials, once, sqlite_position
from tests.e2e.test_unchanged_nights import _held, _kept_groups, _reports

pytestmark = pytest.mark.e2e
N = 300
HEADER = "entity_id,email,first,last\n"


def _job(extra: str = "") -> str:
    columns = '{ entity_id = "id", email = "email", first = "firstname", last = "lastname" }'
    return CONTACTS.replace('kind = "jsonl", path = "data/contacts.jsonl"',
                            'kind = "csv", path = "data/customers.csv", '
                            f'constants = {{ "@collection" = "shop" }}, columns = {columns}'
                            ) + extra


def _write(workspace: Workspace, names: dict[int, str] | None = None,
           header: str = HEADER, emails: dict[int, str] | None = None, n: int = N) -> Path:
    """``n`` customers; every tenth first name is quoted and spans two lines."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        first = (names or {}).get(i, '"Ann\nMarie, Jr"' if i % 10 == 0 else "Ann")
        email = (emails or {}).get(i, f"user{i}@example.com")
        rows.append(f"{i},{email},{first},Lee\n")
    data.write_text(header + "".join(rows))
    return data


def _last_report(workspace: Workspace) -> dict[str, Any]:
    paths = sorted((workspace.root / "state" / "reports").glob("*.json"))
    report: dict[str, Any] = json.loads(paths[-1].read_text())["streams"][0]
    return report


async def test_a_csv_row_reverted_after_an_unchanged_night_is_sent(
        workspace: Workspace, emulator: Any) -> None:
    """Night 1 sends A, night 2 (the same bytes) sends nothing and keeps its groups of rows,
    night 3 sends row 7's B and row 20's multi-line B, night 4 sends both As again."""
    workspace.job(_job())
    held = []
    async with emulator(rate=50) as emu:
        for night in (None, None, {7: "Bea", 20: '"Bea\nTrix"'}, None):
            _write(workspace, night)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
            now = _held(emu)
            held.append((now["7"]["firstname"], now["20"]["firstname"]))
            if len(held) == 2:
                kept = _kept_groups(workspace)
    assert held == [("Ann", "Ann\nMarie, Jr"), ("Ann", "Ann\nMarie, Jr"),
                    ("Bea", "Bea\nTrix"), ("Ann", "Ann\nMarie, Jr")]
    assert kept > 0
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, N - 2, 2), (N, N - 2, 2)]


async def test_a_reordered_header_over_the_same_rows_sends_everything_again(
        workspace: Workspace, emulator: Any) -> None:
    """The header shapes the records its rows make: the same row bytes under ``last,first``
    are other records, never skipped as the rows Ometria holds."""
    workspace.job(_job())
    async with emulator(rate=50) as emu:
        for header in (HEADER, HEADER, "entity_id,email,last,first\n"):
            _write(workspace, {i: "Ann" for i in range(N)}, header)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
        held = _held(emu)
    assert (held["5"]["firstname"], held["5"]["lastname"]) == ("Lee", "Ann")
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, 0, N)]


async def test_a_refused_row_is_read_again_each_night_until_it_is_fixed(
        workspace: Workspace, emulator: Any) -> None:
    """Row 7's email is unusable: its group is never kept, so the next night of the same
    bytes reads it again (refused again, known); fixed, it goes out once."""
    workspace.job(_job())
    bad = {7: "user7-at-example.com"}
    async with emulator(rate=50) as emu:
        refused = []
        for emails in (bad, bad, None):
            _write(workspace, emails=emails)
            await workspace.run("run", "job.toml", url=emu.url)
            report = _last_report(workspace)
            refused.append(report["dead_lettered"])
        held = _held(emu)
    assert refused == [1, 1, 0]
    assert held["7"]["email"] == "user7@example.com"
    assert [r[2] for r in _reports(workspace)] == [N - 1, 0, 1]


async def test_a_csv_stream_that_deactivates_what_is_missing_keeps_no_groups(
        workspace: Workspace, emulator: Any) -> None:
    """``on_missing = "deactivate"`` must see every id it reads: no group is kept or skipped,
    and the third night of one export deactivates nothing."""
    workspace.job(_job('on_missing = "deactivate"\n'))
    async with emulator(rate=50) as emu:
        for _ in range(3):
            _write(workspace)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
    assert _kept_groups(workspace) == 0
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, N, 0)]
    last = _last_report(workspace)
    assert (last["missing"], last["deactivated"]) == (0, 0)


async def test_a_revert_after_a_night_killed_mid_way_is_sent(
        workspace: Workspace, emulator: Any) -> None:
    """Nights A, A (its groups kept), then B for the first 1000 rows, killed (SIGKILL) once
    its checkpoint passed row 200 and run again to the end, then A again: Ometria ends on A
    for every row. A group of A rows is skipped only while each row's stored hash is still
    A's; those of rows acknowledged as B before the kill are B's (written before the
    checkpoint that passes them) or sent again after it."""
    rows = 2000
    workspace.job(_job(), rate_limit_per_second=4, batch_size=100)

    def past_row_200() -> bool:
        position = sqlite_position(workspace.root)
        return position is not None and 200 <= position[1] < 1000

    async with emulator(rate=4) as emu:
        for _ in range(2):
            _write(workspace, n=rows)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
        kept = _kept_groups(workspace)
        _write(workspace, {i: "Bea" for i in range(1000)}, n=rows)
        result = await crash_trials([workspace], emu.url, 1, once(past_row_200))
        assert result.code == 0, result.stderr[-2000:]
        assert _held(emu)["500"]["firstname"] == "Bea"
        _write(workspace, n=rows)
        result = await workspace.run("run", "job.toml", url=emu.url)
        assert result.code == 0, result.stderr[-2000:]
        held = _held(emu)
    assert kept > 0
    assert [i for i in range(rows) if held[str(i)]["firstname"] != (
        "Ann\nMarie, Jr" if i % 10 == 0 else "Ann")] == []
    assert _reports(workspace)[-1] == (rows, rows - 1000, 1000)
