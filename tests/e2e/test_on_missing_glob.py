"""``on_missing = "deactivate"`` on a glob read whole, through the real CLI against the
emulator: the files matching the pattern are one export, so after a run that read every one
of them from its top, the ids delivered before and in none of them are deactivated (an id gone
from a rewritten file, the ids of a file gone from the folder); a run in which a file fails
deactivates nothing."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator.behaviour import STORE
from tests.e2e.conftest import Workspace, jsonl
from tests.e2e.test_on_missing import changed, products, settled

pytestmark = pytest.mark.e2e
FOREIGN = [{"@type": "product", "id": "x1", "title": "Theirs", "is_active": True}]


def drop(path: Path, records: list[dict[str, Any]]) -> None:
    """The second file of the export, gzipped."""
    plain = jsonl(path.with_suffix(""), records)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()


async def test_ids_in_no_file_of_a_complete_read_are_deactivated(
        workspace: Workspace, emulator: Any) -> None:
    data = workspace.root / "data"
    first_file, second_file = data / "a.jsonl", data / "b.jsonl.gz"
    every = products()[:55]  # p0..p54
    jsonl(first_file, every[:50])
    drop(second_file, every[50:])
    workspace.job("""
[[streams]]
name = "products"
record_type = "product"
source = { kind = "glob", pattern = "data/*.jsonl*" }
on_missing = "deactivate"
""")
    async with emulator(rate=50) as emu:
        emu.app[STORE].accept(FOREIGN)
        emu.app[STORE].drain(len(FOREIGN))
        night1 = await workspace.run("run", "job.toml", url=emu.url)
        assert night1.code == 0, night1.stdout + night1.stderr
        first = await settled(emu)
        assert len(first["product"]) == 56

        # the first file unchanged (read again from its top), the second without p52
        drop(second_file, [r for r in every[50:] if r["id"] != "p52"])
        night2 = await workspace.run("run", "job.toml", url=emu.url)
        assert night2.code == 0, night2.stdout + night2.stderr
        second = await settled(emu)
        assert changed(first["product"], second["product"]) == {"p52": {"is_active": False}}

        # p3 gone from the first file, but the second fails: nothing is deactivated
        jsonl(first_file, [r for r in every[:50] if r["id"] != "p3"])
        second_file.write_bytes(b"\x1f\x8b\x08\x00 not gzip at all")
        failed = await workspace.run("run", "job.toml", url=emu.url)
        assert failed.code != 0, failed.stdout + failed.stderr
        assert changed(second["product"], (await settled(emu))["product"]) == {}

        # the second file gone from the folder: its ids leave with p3
        second_file.unlink()
        night4 = await workspace.run("run", "job.toml", url=emu.url)
        assert night4.code == 0, night4.stdout + night4.stderr
        fourth = await settled(emu)
    assert changed(second["product"], fourth["product"]) == {
        k: {"is_active": False} for k in ("p3", "p50", "p51", "p53", "p54")}
    assert fourth["product"]["x1"] == first["product"]["x1"]
