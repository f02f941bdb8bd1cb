"""The promise across nights when unchanged lines are skipped undecoded (issue 34).

A nightly full export is written again each night (a new file to the checkpoint store: read
from the top). After a night that sent everything, an unchanged night skips its lines as
groups Ometria holds as they are (``pipeline/line_groups.py``); what follows must still send
what changed: a version reverted after the unchanged night (A, A, B, A: Ometria ends on A), a
changed transform, a changed CSV mapping.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import CONTACTS, Workspace, jsonl

pytestmark = pytest.mark.e2e
N = 300


def _contacts(first: dict[int, str] | None = None) -> list[dict[str, Any]]:
    names = first or {}
    return [{"@collection": "shop", "id": f"c{i}", "email": f"user{i}@example.com",
             "firstname": names.get(i, "Ann")} for i in range(N)]


def _held(emu: Any) -> dict[str, Any]:
    store = emu.app[STORE]
    store.drain(len(store.queue))
    return {key.split("/", 1)[1]: r for key, r in store.table("contact").items()}


def _reports(workspace: Workspace) -> list[tuple[int, int, int]]:
    """(read, unchanged, sent) of each night, in order."""
    paths = sorted((workspace.root / "state" / "reports").glob("*.json"))
    streams = [json.loads(p.read_text())["streams"][0] for p in paths]
    return [(s["read"], s["unchanged"], s["sent"]) for s in streams]


def _kept_groups(workspace: Workspace) -> int:
    db = sqlite3.connect(workspace.root / "state" / "checkpoints.db")
    try:
        return int(db.execute("SELECT count(*) FROM line_groups").fetchone()[0])
    finally:
        db.close()


async def test_a_version_reverted_after_an_unchanged_night_is_sent(
        workspace: Workspace, emulator: Any) -> None:
    """Night 1 sends A for every id, night 2 (the same bytes) sends nothing and keeps its
    lines' groups, night 3 sends c7's B (the rest skipped undecoded), night 4 sends c7's A
    again: Ometria ends on A."""
    data = workspace.root / "data" / "contacts.jsonl"
    workspace.job(CONTACTS)
    held = []
    async with emulator(rate=50) as emu:
        for night in (_contacts(), _contacts(), _contacts({7: "B"}), _contacts()):
            jsonl(data, night)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
            held.append(_held(emu)["c7"]["firstname"])
            if len(held) == 2:  # kept by the first night that found something held
                kept = _kept_groups(workspace)
    assert held == ["Ann", "Ann", "B", "Ann"]
    assert kept > 0
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, N - 1, 1), (N, N - 1, 1)]


SHOP_RULES = '''
def contact(record):
    record["firstname"] = record["firstname"].title()
    return record
'''


async def test_a_changed_transform_after_an_unchanged_night_sends_everything_again(
        workspace: Workspace, emulator: Any) -> None:
    """The transform's code shapes the record from the line: changed, no line is Ometria's
    as it is any more, and every record goes out in its new shape."""
    data = workspace.root / "data" / "contacts.jsonl"
    rules = workspace.root / "shop_rules.py"
    rules.write_text(SHOP_RULES)
    workspace.job(CONTACTS + 'transform = "shop_rules:contact"\n')
    async with emulator(rate=50) as emu:
        for night in range(3):
            if night == 2:
                rules.write_text(SHOP_RULES.replace("title", "upper"))
            jsonl(data, _contacts({3: "bob"}))
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
        held = _held(emu)
    assert {held["c3"]["firstname"], held["c4"]["firstname"]} == {"BOB", "ANN"}
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, 0, N)]


def _csv_job(first_name_field: str) -> str:
    columns = f'{{ entity_id = "id", email = "email", first = "{first_name_field}" }}'
    return CONTACTS.replace('kind = "jsonl", path = "data/contacts.jsonl"',
                            'kind = "csv", path = "data/customers.csv", '
                            f'constants = {{ "@collection" = "shop" }}, columns = {columns}')


async def test_a_changed_csv_mapping_after_an_unchanged_night_sends_everything_again(
        workspace: Workspace, emulator: Any) -> None:
    """The same rows under another mapping are other records: all sent again."""
    data = workspace.root / "data" / "customers.csv"
    data.parent.mkdir()
    rows = "".join(f"{i},user{i}@example.com,Ann\n" for i in range(N))
    async with emulator(rate=50) as emu:
        for night, field in enumerate(("firstname", "firstname", "lastname")):
            workspace.job(_csv_job(field))
            data.write_text("entity_id,email,first\n" + rows)
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, (night, result.stderr[-2000:])
        held = _held(emu)
    assert (held["5"].get("firstname"), held["5"].get("lastname")) == ("Ann", "Ann")
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, 0, N)]


async def test_a_stream_that_deactivates_what_is_missing_sees_every_id_every_night(
        workspace: Workspace, emulator: Any) -> None:
    """With ``on_missing = "deactivate"`` no group of lines is kept or skipped: the third
    night of the same export still sees every id, so nothing is missing and nothing is
    deactivated (a skipped group would have hidden its ids and tripped the guard)."""
    data = workspace.root / "data" / "contacts.jsonl"
    workspace.job(CONTACTS.replace('path = "data/contacts.jsonl" }',
                                   'path = "data/contacts.jsonl" }\non_missing = "deactivate"'))
    async with emulator(rate=50) as emu:
        for _ in range(3):
            jsonl(data, _contacts())
            result = await workspace.run("run", "job.toml", url=emu.url)
            assert result.code == 0, result.stderr[-2000:]
        held = _held(emu)
    assert _kept_groups(workspace) == 0
    assert _reports(workspace) == [(N, 0, N), (N, N, 0), (N, N, 0)]
    paths = sorted((workspace.root / "state" / "reports").glob("*.json"))
    last = json.loads(paths[-1].read_text())["streams"][0]
    assert (last["missing"], last["deactivated"]) == (0, 0)
    assert all(r.get("marketing_optin") != "EXPLICITLY_OPTEDOUT" for r in held.values())
