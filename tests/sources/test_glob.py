"""A glob of nightly drops: name order, a checkpoint per file, format and option checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ometria_sync.errors import ConfigError
from ometria_sync.sources.files.glob import GlobSourceConfig


def _drops(folder: Path) -> None:
    folder.mkdir()
    (folder / "contacts-2024-03-02.jsonl").write_text('{"id": "c2"}\n')
    (folder / "contacts-2024-03-01.jsonl").write_text('{"id": "c1"}\n')
    (folder / "contacts-2024-03-10.jsonl").write_text('{"id": "c10"}\n')
    (folder / "notes.txt").write_text("not a drop\n")


async def test_files_are_parts_in_name_order_each_with_its_own_key(tmp_path: Path) -> None:
    _drops(tmp_path / "drops")
    config = GlobSourceConfig(pattern="drops/contacts-*.jsonl").resolve(tmp_path)
    config.check("streams[0].source")
    parts = await config.open().parts()
    assert [Path(p.key).name for p in parts] == [
        "contacts-2024-03-01.jsonl", "contacts-2024-03-02.jsonl", "contacts-2024-03-10.jsonl"]
    assert len({p.key for p in parts}) == 3
    records = [[i.record async for chunk in p.read(None) for i in chunk] for p in parts]
    assert records == [[{"id": "c1"}], [{"id": "c2"}], [{"id": "c10"}]]


async def test_csv_drops_use_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ID,Mail\nc1,a@example.com\n")
    (tmp_path / "b.csv").write_text("ID,Mail\nc2,b@example.com\n")
    config = GlobSourceConfig(pattern="*.csv", columns={"ID": "id", "Mail": "email"})
    config = config.resolve(tmp_path)
    config.check("s")
    parts = await config.open().parts()
    records = [i.record for p in parts async for chunk in p.read(None) for i in chunk]
    assert records == [{"id": "c1", "email": "a@example.com"},
                       {"id": "c2", "email": "b@example.com"}]


def test_configuration_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ID,Mail\nc1,a@example.com\n")
    with pytest.raises(ConfigError, match=r"^s.pattern: matches no file: .*\*.jsonl$"):
        GlobSourceConfig(pattern="*.jsonl").resolve(tmp_path).check("s")
    with pytest.raises(ConfigError, match=r"^s.columns: not in the header: Email"):
        GlobSourceConfig(pattern="*.csv", columns={"Email": "email"}).resolve(tmp_path).check("s")
    (tmp_path / "a.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match=r'^s.columns: only applies to CSV files'):
        GlobSourceConfig(pattern="*.jsonl", columns={"a": "b"}).resolve(tmp_path).check("s")
