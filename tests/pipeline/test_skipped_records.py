"""Records Ometria answered as ``skipped`` are unconfirmed, not delivered (review item 14).

The reference notes list ``skipped`` as seen in one third-party client, meaning unknown. A 2xx
that skips records must not count them as delivered (exit code, report, summary) nor store
their change hashes: the next run must send them again, not judge them unchanged.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses

from ometria_sync.cli.common import print_summary
from ometria_sync.cli.report import finish_report
from ometria_sync.config import Job
from ometria_sync.pipeline.job_run import JobResult, RunOptions, run_job
from ometria_sync.state import open_state
from tests.fakes import contacts, minimal_validator, write_jsonl

BASE = "https://api.example.test/v2"
MakeJob = Callable[..., Job]


def _answer(skip: Callable[[int], int]) -> Callable[..., CallbackResult]:
    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        sent = len(json.loads(kwargs["data"]))
        skipped = skip(sent)
        return CallbackResult(status=202, payload={"status": "OK", "accepted": sent - skipped,
                                                   "rejected": 0, "skipped": skipped})
    return answer


@pytest.fixture
def api_key() -> Iterator[None]:
    os.environ["OMETRIA_API_KEY"] = "k"
    try:
        yield
    finally:
        del os.environ["OMETRIA_API_KEY"]


async def _run(job: Job, skip: Callable[[int], int]) -> JobResult:
    with aioresponses() as mock:
        mock.post(f"{BASE}/push", callback=_answer(skip), repeat=True)
        return await run_job(job, RunOptions(progress="off"),
                             validator_factory=minimal_validator, handle_signals=False)


async def _tracked(job: Job) -> int:
    state = await open_state(job.settings.state.checkpoint_url, job.settings.state.schema,
                             job=job.name)
    try:
        return await state.tracked_ids("contacts")
    finally:
        await state.aclose()


async def test_a_2xx_that_skips_every_record_delivers_none_and_remembers_none(
        make_job: MakeJob, tmp_path: Path, api_key: None) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(5))
    job = make_job(base_url=BASE)
    result = await _run(job, lambda sent: sent)
    assert result.exit_code == 3  # finished, but some records were not delivered
    assert await _tracked(job) == 0  # no hash: the next run sends them again
    (stats,) = result.streams
    assert (stats.sent, stats.accepted, stats.unconfirmed, stats.outcome) == (5, 0, 5, "partial")
    report = json.loads(Path(finish_report(job, result, dry_run=False)).read_text())
    assert report["streams"][0]["unconfirmed"] == 5
    out = io.StringIO()
    print_summary(result.streams, out)
    assert "unconfirmed" in out.getvalue()
    assert "5 records not confirmed by Ometria" in out.getvalue()

    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(6))  # the next night's export
    again = await _run(job, lambda sent: 0)
    assert again.exit_code == 0
    # the 5 go first, from the ledger (where their unconfirmed answer put them); the export's
    # copies of them are then unchanged, and only the new sixth goes with them
    stats = again.streams[0]
    assert (stats.resent, stats.unchanged, stats.accepted, stats.ledger_left) == (5, 5, 6, 5)
    assert await _tracked(job) == 6


async def test_a_partly_skipped_batch_leaves_none_of_its_records_remembered(
        make_job: MakeJob, tmp_path: Path, api_key: None) -> None:
    """Ometria does not say which records it skipped, so none of the batch counts as a clean
    acknowledgement: every stored hash of its ids is forgotten."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(10))
    job = make_job(base_url=BASE)
    first = await _run(job, lambda sent: 0)
    assert first.exit_code == 0 and await _tracked(job) == 10
    write_jsonl(tmp_path / "data/contacts.jsonl",
                [{**c, "firstname": "Changed"} for c in contacts(10)])
    result = await _run(job, lambda sent: 1)
    assert result.exit_code == 3
    assert await _tracked(job) == 0
    (stats,) = result.streams
    assert (stats.accepted, stats.unconfirmed) == (9, 1)


async def test_records_resent_from_the_ledger_leave_the_reported_position_alone(
        make_job: MakeJob, tmp_path: Path, api_key: None) -> None:
    """Skipped records are resent by the next run from the ledger; the file itself is read to
    its end already, so that run settles nothing of it: the position it reports (what
    ``verify --last-run`` reads) is none, never one of the resend's own positions."""
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(5))
    job = make_job(base_url=BASE)
    first = await _run(job, lambda sent: sent)
    assert first.exit_code == 3
    again = await _run(job, lambda sent: 0)
    (stats,) = again.streams
    assert (again.exit_code, stats.resent, stats.ledger_left) == (0, 5, 5)
    assert stats.position is None and stats.start_position is not None
