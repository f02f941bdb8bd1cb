"""``on_missing = "deactivate"``'s guards and its crash safety, through the real CLI against the
emulator: more than ``max_missing_fraction`` missing deactivates nothing and exits 1 until a run
is given ``--allow-mass-delete`` (state in SQLite and in PostgreSQL); contacts are removed from
the configured lists; a kill -9 in the middle of the deactivations resumes without skipping one
and repeats no more than the batches in flight."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace, contact_records, jsonl
from tests.e2e.crash_trials import kill_mid_run, once
from tests.e2e.test_on_missing import changed, settled
from tests.pg import DSN, pg_state

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]
STREAMS = """
[[streams]]
name = "products"
record_type = "product"
source = { kind = "jsonl", path = "data/products.jsonl" }
on_missing = "deactivate"

[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
on_missing = "deactivate"
on_missing_contact = "remove_from_lists"
on_missing_lists = ["12"]
"""


def products(count: int, skip: range = range(0)) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "title": f"Product {i}"} for i in range(count) if i not in skip]


def contacts(skip: range = range(0)) -> list[dict[str, Any]]:
    return [dict(r, **{"@add_to_lists": ["12"]})
            for i, r in enumerate(contact_records(100)) if i not in skip]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_too_many_missing_deactivates_nothing_until_allowed_once(
        kind: str, tmp_path: Path, emulator: Emulator, pg_schema: str) -> None:
    workspace = Workspace(tmp_path)
    if kind == "postgres":
        workspace.extra_env = {"OMETRIA_SYNC_STATE_URL": DSN}
    workspace.job((pg_state(pg_schema) if kind == "postgres" else "") + STREAMS)
    async with emulator(rate=50) as emu:
        jsonl(tmp_path / "data/products.jsonl", products(100))
        jsonl(tmp_path / "data/contacts.jsonl", contacts())
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        before = await settled(emu)
        assert before["contact"]["shop/c3"]["lists"] == ["12"]

        jsonl(tmp_path / "data/products.jsonl", products(100, skip=range(50, 70)))
        jsonl(tmp_path / "data/contacts.jsonl", contacts(skip=range(0, 5)))
        refused = await workspace.run("run", "job.toml", url=emu.url)
        assert refused.code == 1
        assert ("20 of the 100 ids delivered before are missing from the source (20.0%, more "
                "than max_missing_fraction = 0.1); nothing was deactivated") in refused.stdout
        after_refusal = await settled(emu)
        assert changed(before["product"], after_refusal["product"]) == {}
        # the other stream is judged on its own: 5% missing, removed from the list
        assert changed(before["contact"], after_refusal["contact"]) == {
            f"shop/c{i}": {"lists": []} for i in range(5)}

        again = await workspace.run("run", "job.toml", url=emu.url)
        assert again.code == 1  # the same read is still refused
        allowed = await workspace.run("run", "job.toml", "--allow-mass-delete", url=emu.url)
        assert allowed.code == 0, allowed.stdout + allowed.stderr
        assert changed(before["product"], (await settled(emu))["product"]) == {
            f"p{i}": {"is_active": False} for i in range(50, 70)}
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0  # nothing new


async def test_kill_9_during_the_deactivations_resumes_without_skipping_or_repeating_much(
        tmp_path: Path, emulator: Emulator) -> None:
    workspace = Workspace(tmp_path)
    stream = STREAMS.split("[[streams]]")[1] + "max_missing_fraction = 0.6\n"
    workspace.job("[[streams]]" + stream, concurrency=1)
    gone = range(200, 600)
    async with emulator(rate=50) as emu:
        store = emu.app[STORE]
        jsonl(tmp_path / "data/products.jsonl", products(800))
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        first = await settled(emu)

        jsonl(tmp_path / "data/products.jsonl", products(800, skip=gone))
        workspace.job("[[streams]]" + stream, concurrency=1, rate_limit_per_second=2)
        await kill_mid_run(workspace, emu.url, once(lambda: store.stats.accepted >= 900))
        assert 900 <= store.stats.accepted < 1200  # killed in the middle of the deactivations
        finish = await workspace.run("run", "job.toml", url=emu.url)
        assert finish.code == 0, finish.stdout + finish.stderr

        after = await settled(emu)
        assert changed(first["product"], after["product"]) == {
            f"p{i}": {"is_active": False} for i in gone}
        sends = store.stats.seen  # night 1 sent each product once
        assert all(sends[f"product:p{i}"] == 1 for i in range(800) if i not in gone)
        assert all(2 <= sends[f"product:p{i}"] <= 3 for i in gone)
        repeated = sum(1 for i in gone if sends[f"product:p{i}"] == 3)
        assert repeated <= 100  # at most the batch in flight (1 dispatcher, 100 a batch)
        workspace.job("[[streams]]" + stream)  # verify reads at 50/s
        verify = await workspace.run("verify", "job.toml", "--all", url=emu.url)
        assert verify.code == 0, verify.stdout + verify.stderr


async def test_a_read_that_ends_early_deactivates_nothing(
        tmp_path: Path, emulator: Emulator) -> None:
    workspace = Workspace(tmp_path)
    workspace.job("""
[[streams]]
name = "products"
record_type = "product"
source = { kind = "jsonl", path = "data/products.jsonl.gz" }
on_missing = "deactivate"
max_missing_fraction = 1.0
""")
    data = tmp_path / "data/products.jsonl.gz"
    data.parent.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in products(3000)).encode()
    async with emulator(rate=50) as emu:
        data.write_bytes(gzip.compress(lines))
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        first = await settled(emu)
        data.write_bytes(gzip.compress(lines.replace(b'"p7"', b'"q7"'))[:4000])  # cut short
        cut = await workspace.run("run", "job.toml", url=emu.url)
        assert cut.code == 1
        assert "missing from the source" not in cut.stdout
        after = (await settled(emu))["product"]
        # what was read before the cut went out (q7, new); nothing, p7 included, deactivated
        assert changed(first["product"], after) == {"q7": after["q7"]}
