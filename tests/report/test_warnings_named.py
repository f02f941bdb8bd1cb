"""Warnings name their records (the run report's sample, ``warnings.jsonl``, capped), and the
refusal summary counts records as well as problems (review frictions 4 and 10)."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ometria_sync.cli.common import print_summary
from ometria_sync.cli.report import finish_report
from ometria_sync.config import Job
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.pipeline.stats import WARNING_SAMPLES_PER_REASON, StreamStats
from ometria_sync.schemas import Problem
from ometria_sync.state import WarningLog
from tests.fakes import FakeOmetria, write_jsonl

MakeJob = Callable[..., Job]
GENDER = "gender: is usually one of m, f, o"


def _contacts(n: int, odd: str = "x") -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "email": f"user{i}@example.com",
             "gender": odd if i % 2 else "f"} for i in range(n)]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_each_warning_names_its_record_in_the_report_and_the_warnings_file(
        make_job: MakeJob, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", _contacts(20))
    job = make_job(extra="[state]\nwarnings_per_stream = 4\n")
    result = await run_job(job, RunOptions(progress="off"),
                           pusher_factory=lambda s: FakeOmetria(), handle_signals=False)
    assert result.exit_code == 0
    path = tmp_path / "state" / "warnings.jsonl"
    assert result.warnings_path == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = _lines(path)
    source = str(tmp_path / "data" / "contacts.jsonl")
    assert [(w["line"], w["id"], w["path"]) for w in lines[:4]] == [
        (2, "c1", "gender"), (4, "c3", "gender"), (6, "c5", "gender"), (8, "c7", "gender")]
    assert all(w["run_id"] == result.run_id and w["stream"] == "contacts"
               and w["source"] == source for w in lines[:4])
    assert lines[0]["reason"] == ('is usually one of m, f, o, got "x" (kept: Ometria\'s '
                                  "values are unconfirmed)")
    assert lines[4]["not_listed"] == 6 and len(lines) == 5  # the cap, then how many more
    report = json.loads(Path(finish_report(job, result, dry_run=False)).read_text())
    (stream,) = report["streams"]
    assert stream["warnings"] == 10 and stream["warning_reasons"] == {GENDER: 10}
    samples = stream["warning_samples"][GENDER]
    assert len(samples) == WARNING_SAMPLES_PER_REASON
    assert samples[0] == {"source": source, "path": "gender", "line": 2, "id": "c1",
                          "reason": lines[0]["reason"]}


async def test_no_warnings_file_when_the_cap_is_zero(make_job: MakeJob, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", _contacts(4))
    job = make_job(extra="[state]\nwarnings_per_stream = 0\n")
    result = await run_job(job, RunOptions(progress="off"),
                           pusher_factory=lambda s: FakeOmetria(), handle_signals=False)
    assert result.streams[0].warnings == 2
    assert not (tmp_path / "state" / "warnings.jsonl").exists()


def test_the_cap_is_per_stream_and_per_run(tmp_path: Path) -> None:
    path = tmp_path / "warnings.jsonl"
    for run in ("r1", "r2"):
        log = WarningLog(path, run, cap=2)
        for stream in ("a", "b"):
            for n in range(3):
                log.write(stream=stream, source="f", path="gender", reason="x", line=n)
        log.close()
    lines = _lines(path)
    assert [(w["run_id"], w["stream"], w.get("line"), w.get("not_listed")) for w in lines] == [
        ("r1", "a", 0, None), ("r1", "a", 1, None), ("r1", "b", 0, None), ("r1", "b", 1, None),
        ("r1", "a", None, 1), ("r1", "b", None, 1),
        ("r2", "a", 0, None), ("r2", "a", 1, None), ("r2", "b", 0, None), ("r2", "b", 1, None),
        ("r2", "a", None, 1), ("r2", "b", None, 1)]


def test_a_warnings_file_that_cannot_be_written_never_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the folder would be")
    log = WarningLog(tmp_path / "blocked" / "warnings.jsonl", "r1")
    log.write(stream="a", source="f", path="gender", reason="x")
    log.write(stream="a", source="f", path="gender", reason="x")
    log.close()


def test_refusals_count_records_as_well_as_problems() -> None:
    """Friction 10: ``1635 lineitems[].discount: must be <= 0`` while 634 records were
    refused. A record with two bad line items counts once for the reason."""
    stats = StreamStats(stream="orders")
    discount = [Problem(f"lineitems[{i}].discount", f"must be <= 0, got {i + 1}.0")
                for i in range(3)]
    stats.refuse(discount)
    stats.refuse([*discount[:2], Problem("currency", 'must be an ISO 4217 currency code such '
                                                     'as "GBP", got "gbp"')])
    stats.refuse([Problem("id", "must not be empty")])
    assert stats.top_reasons() == [
        ("lineitems[].discount: must be <= 0", 2, 5),
        ('currency: must be an ISO 4217 currency code such as "GBP"', 1, 1),
        ("id: must not be empty", 1, 1)]
    out = io.StringIO()
    print_summary([stats], out)
    assert "orders: why records were refused (records, problems)" in out.getvalue()
    assert "         2         5  lineitems[].discount: must be <= 0" in out.getvalue()


async def test_the_metrics_count_the_records_a_transform_skipped(
        make_job: MakeJob, tmp_path: Path) -> None:
    (tmp_path / "skip_odd.py").write_text(
        "def keep_even(record):\n    return None if int(record['id'][1:]) % 2 else record\n")
    write_jsonl(tmp_path / "data/contacts.jsonl", _contacts(6, odd="f"))
    job = make_job(extra='[report]\nmetrics_textfile = "state/sync.prom"\n', streams="""
[[streams]]
name = "contacts"
record_type = "contact"
transform = "skip_odd:keep_even"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
""")
    result = await run_job(job, RunOptions(progress="off"),
                           pusher_factory=lambda s: FakeOmetria(), handle_signals=False)
    finish_report(job, result, dry_run=False)
    assert (result.streams[0].filtered, result.streams[0].sent) == (3, 3)
    assert ('ometria_sync_records_total{job="job",kind="filtered",stream="contacts"} 3.0'
            in (tmp_path / "state" / "sync.prom").read_text())
