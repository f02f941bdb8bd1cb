"""A stream's ``transform``: resolved once at start-up with errors naming the key, applied
before validation, None skips (counted), an exception dead-letters that record only."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.config import Job, load_job
from ometria_sync.errors import ConfigError
from ometria_sync.pipeline import Transform, load_transform, prepare_record, schema_validator
from ometria_sync.pipeline.batch import Batch, PartScope
from ometria_sync.pipeline.batcher import Batcher
from ometria_sync.pipeline.stats import StreamStats
from ometria_sync.pipeline.transform import load_transforms
from ometria_sync.sources.base import SourceItem
from ometria_sync.state.deadletter import DeadLetterWriter

RULES = '''
def fix(record):
    gender = {"1": "m", "2": "f"}.get(record.get("gender"))
    if gender:
        record["gender"] = gender
    else:
        record.pop("gender", None)
    if record.get("id") == "skip-me":
        return None
    if record.get("id") == "boom":
        raise ValueError("no rule for\\nthis record")
    if record.get("id") == "list":
        return [record]
    return record

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def job_dir(tmp_path: Path) -> Iterator[Path]:
    """A job folder, its modules forgotten afterwards (each test writes its own)."""
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def _job(folder: Path, transform: str, module: str = RULES, name: str = "shop_rules") -> Job:
    (folder / f"{name}.py").write_text(textwrap.dedent(module))
    (folder / "in.jsonl").write_text("")
    (folder / "job.toml").write_text(f'''
[[streams]]
name = "first"
record_type = "contact"
source = {{ kind = "jsonl", path = "in.jsonl" }}

[[streams]]
name = "contacts"
record_type = "contact"
source = {{ kind = "jsonl", path = "in.jsonl" }}
transform = "{transform}"
''')
    return load_job(folder / "job.toml")


def _loaded(job: Job) -> Transform:
    found = load_transform(job, job.streams[1])
    assert found is not None
    return found


def test_a_module_in_the_job_folder_is_found_and_imported_once(job_dir: Path) -> None:
    job = _job(job_dir, "shop_rules:fix")
    first = _loaded(job)
    assert first.apply({"id": "c1", "gender": "1"}) == ({"id": "c1", "gender": "m"}, None)
    assert _loaded(job) is first
    assert load_transform(job, job.streams[0]) is None
    assert list(load_transforms(job, job.streams)) == ["contacts"]
    assert str(job_dir) in sys.path[1:]  # kept at the end, never ahead of other modules


@pytest.mark.parametrize(("spec", "module", "says"), [
    ("shop_rules", RULES, 'expected "module:function"'),
    ("shop_rules:fix-it", RULES, 'expected "module:function"'),
    ("no_such_module:fix", RULES, "no module 'no_such_module' in the job file's folder"),
    ("shop_rules:unfix", RULES, "has no function 'unfix'"),
    ("shop_rules:NOT_A_FUNCTION", RULES, "is a int, not a function"),
    ("shop_rules:fix", "def fix(record:\n", "importing 'shop_rules' failed: SyntaxError"),
    ("shop_rules:fix", "import not_installed_dep\n",
     "importing 'shop_rules' failed: No module named 'not_installed_dep'"),
    ("shop_rules:fix", "raise RuntimeError('needs a key')\n",
     "importing 'shop_rules' failed: RuntimeError: needs a key"),
])
def test_a_transform_that_cannot_be_had_is_a_config_error_naming_the_key(
        job_dir: Path, spec: str, module: str, says: str) -> None:
    job = _job(job_dir, spec, module)
    with pytest.raises(ConfigError) as raised:
        load_transform(job, job.streams[1])
    assert raised.value.key == "streams[1].transform"
    assert says in str(raised.value)


def test_apply_gives_the_exception_s_last_line_and_refuses_what_is_not_a_record(
        job_dir: Path) -> None:
    transform = _loaded(_job(job_dir, "shop_rules:fix"))
    assert transform.apply({"id": "skip-me"}) == (None, None)
    assert transform.apply({"id": "boom"}) == (
        None, "transform shop_rules:fix raised ValueError: no rule for\nthis record")
    assert transform.apply({"id": "list"}) == (
        None, "transform shop_rules:fix returned a list, expected a record (a dict) or None")


def test_prepare_record_validates_the_transformed_record(job_dir: Path) -> None:
    """Gender "1" is a warning as read; the transform maps it, so no warning is left and
    the record as sent (what verify compares) holds "m"."""
    transform = _loaded(_job(job_dir, "shop_rules:fix"))
    job = load_job(job_dir / "job.toml")
    validate = schema_validator(job.streams[1])
    record = {"id": "c1", "gender": "1", "@collection": "shop"}
    assert prepare_record("contact", dict(record), validate)[2]  # the warning, untransformed
    encoded, problems, warnings = prepare_record("contact", dict(record), validate, transform)
    assert encoded is not None and json.loads(encoded)["gender"] == "m"
    assert (problems, warnings) == ([], [])
    assert prepare_record("contact", {"id": "skip-me"}, validate, transform) == (None, [], [])


async def test_the_batcher_skips_counts_and_dead_letters_without_stopping(
        job_dir: Path) -> None:
    transform = _loaded(_job(job_dir, "shop_rules:fix"))
    stats = StreamStats(stream="contacts")
    writer = DeadLetterWriter(job_dir / "dl.jsonl")
    batcher = Batcher(PartScope("contacts", "in.jsonl", stats, writer), record_type="contact",
                      validator=schema_validator(load_job(job_dir / "job.toml").streams[1]),
                      transform=transform)
    records: list[Any] = [{"id": "c1", "gender": "2"}, {"id": "skip-me"}, {"id": "boom"},
                          {"id": "c 4", "gender": "1"}, {"id": "c5"}]
    inq: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue()
    inq.put_nowait([SourceItem(record=r, position=(n, n), line=n)
                    for n, r in enumerate(records, 1)])
    inq.put_nowait(None)
    out: asyncio.Queue[Batch | None] = asyncio.Queue()
    await batcher.run(inq, out)
    writer.close()
    batch = out.get_nowait()
    assert batch is not None and batch.end_position == (5, 5)
    assert [json.loads(r.encoded) for r in batch.records] == [
        {"id": "c1", "gender": "f", "@type": "contact"}, {"id": "c5", "@type": "contact"}]
    assert (stats.read, stats.valid, stats.filtered, stats.dead_lettered) == (5, 2, 1, 2)
    dead = [json.loads(line) for line in (job_dir / "dl.jsonl").read_text().splitlines()]
    assert [(d["line"], d.get("stage")) for d in dead] == [(3, "transform"), (4, None)]
    assert dead[0]["reasons"][0]["message"].endswith("ValueError: no rule for\nthis record")
    assert dead[1]["record"]["gender"] == "m"  # the record as validated: the transform's
