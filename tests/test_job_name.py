"""The job's name: the state keeps the job's rows and run lock under it. ``name`` in the job
file, else the file's name without its extension; names are matched whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ometria_sync.config import load_job
from ometria_sync.errors import ConfigError

STREAM = """
[[streams]]
name = {name}
record_type = "contact"
source = {{ kind = "jsonl", path = "data/contacts.jsonl" }}
"""


def _job(tmp_path: Path, top: str = "", stream: str = "contacts",
         file: str = "nightly-contacts.toml") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "contacts.jsonl").write_text("")
    path = tmp_path / file
    path.write_text(top + STREAM.format(name=json.dumps(stream)))
    return path


def test_the_name_defaults_to_the_job_files_name(tmp_path: Path) -> None:
    job = load_job(_job(tmp_path), environ={})
    assert job.settings.name is None and job.name == "nightly-contacts"
    assert job.stream_names == ["contacts"]


def test_a_name_in_the_job_file_wins(tmp_path: Path) -> None:
    assert load_job(_job(tmp_path, 'name = "shop.contacts_1"\n'), environ={}).name == (
        "shop.contacts_1")


@pytest.mark.parametrize("name", ["", "two words", "a/b", "nightly\n"])
def test_a_name_that_is_not_a_plain_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"^name: "):
        load_job(_job(tmp_path, f"name = {json.dumps(name)}\n"), environ={})


def test_a_stream_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.name: "):
        load_job(_job(tmp_path, stream="contacts\n"), environ={})
