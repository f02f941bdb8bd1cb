"""Security (TLS, private files) and the failures that must stop a run loudly (full disk,
an overlapping run), with nothing acknowledged forgotten."""

from __future__ import annotations

import ssl
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from ometria_sync.config import Job
from ometria_sync.errors import FatalApiError, StateError
from ometria_sync.ometria.client import OmetriaClient
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.state.file_lock import RunLock, lock_path_for
from ometria_sync.state.sqlite_sql import SqliteCheckpointStore, open_checkpoint_store
from tests.fakes import FakeOmetria, contacts, minimal_validator, write_jsonl

MakeJob = Callable[..., Job]


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An HTTPS push endpoint with a certificate from a private CA; yields (url, ca.pem)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def push(request: web.Request) -> web.Response:
        return web.json_response({"status": "OK", "accepted": 1, "rejected": 0}, status=202)

    app = web.Application()
    app.router.add_post("/v2/push", push)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}/v2", ca_path
    await runner.cleanup()


async def test_tls_is_verified_and_a_private_ca_can_be_given(
    tls_server: tuple[str, Path],
) -> None:
    url, ca = tls_server
    untrusting = OmetriaClient(url, "k")
    try:
        with pytest.raises(FatalApiError, match=r"TLS certificate not trusted.*ca_bundle"):
            await untrusting.push(b"[]", 0)
    finally:
        await untrusting.aclose()
    trusting = OmetriaClient(url, "k", ca_bundle=str(ca))
    try:
        assert (await trusting.push(b"[]", 1)).status == 202
    finally:
        await trusting.aclose()


async def test_state_report_and_dry_run_files_are_private(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", [*contacts(20), "{bad"])
    job = make_job()
    await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: FakeOmetria(),
                  validator_factory=minimal_validator, handle_signals=False)
    await run_job(job, RunOptions(dry_run=True, full_refresh=True, progress="off"),
                  validator_factory=minimal_validator, handle_signals=False)
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "dead-letter.jsonl" for p in files)
    assert any(p.suffix == ".json" and "dry-run" in str(p) for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


async def test_a_full_disk_under_the_dead_letter_stops_the_run(
    make_job: MakeJob, tmp_path: Path
) -> None:
    """ENOSPC while writing a refused record: exit 1 with a clear message, and the checkpoint
    never passes the record that could not be written down."""
    write_jsonl(tmp_path / "data/contacts.jsonl", [*contacts(150), "{bad", *contacts(100, 150)])
    job = make_job(extra='[state]\ndead_letter_path = "/dev/full"\n', concurrency=1)
    result = await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: FakeOmetria(),
                           validator_factory=minimal_validator, handle_signals=False)
    assert result.exit_code == 1
    assert "dead letter /dev/full" in (result.error or "")
    store = open_checkpoint_store(job.settings.state.checkpoint_url, job.name)
    try:
        saved = store.load("contacts", "")
        assert saved is None or saved.position[1] < 151
    finally:
        store.close()


async def test_a_full_disk_under_the_checkpoint_stops_the_run(
    make_job: MakeJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(300))
    job = make_job(concurrency=1)
    real_save = SqliteCheckpointStore.save
    calls = {"n": 0}

    def failing_save(self: SqliteCheckpointStore, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StateError("checkpoint store: cannot write: database or disk is full")
        real_save(self, **kwargs)

    monkeypatch.setattr(SqliteCheckpointStore, "save", failing_save)
    fake = FakeOmetria()
    result = await run_job(job, RunOptions(progress="off"), pusher_factory=lambda s: fake,
                           validator_factory=minimal_validator, handle_signals=False)
    assert result.exit_code == 1 and "disk is full" in (result.error or "")
    assert len(fake.calls) <= 3  # stopped, not carried on


async def test_an_overlapping_run_of_the_same_job_is_refused(
    make_job: MakeJob, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "data/contacts.jsonl", contacts(10))
    job = make_job()
    with RunLock(lock_path_for(job.settings.state.checkpoint_url, job.name)), \
            pytest.raises(StateError, match="another run of this job is in progress"):
        await run_job(job, pusher_factory=lambda s: FakeOmetria(),
                      validator_factory=minimal_validator, handle_signals=False)
    # once the first run is over, the lock is free again
    result = await run_job(job, RunOptions(progress="off"),
                           pusher_factory=lambda s: FakeOmetria(),
                           validator_factory=minimal_validator, handle_signals=False)
    assert result.exit_code == 0
