"""``ometria-sync verify`` at the edges, the real CLI against the emulator: two streams of one
record type (the later one's version is the one judged and the only one repair sends); a
running sending job (verify refuses rather than share the account's limit unpaced);
``--last-run`` after a run that read a new file from the top, and on contacts that change
detection skipped; custom events (nothing sent, and no exit 0 for nothing verified)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ometria_sync.config import load_job
from ometria_sync.emulator.behaviour import STORE
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.state.file_lock import run_in_progress
from ometria_sync.verify.report import VerifyOptions
from ometria_sync.verify.run import verify_job
from tests.e2e.conftest import CONTACTS, EmulatorFactory, Workspace, contact_records, jsonl
from tests.e2e.test_verify import imported

PRODUCTS = """
[[streams]]
name = "products-full"
record_type = "product"
source = { kind = "jsonl", path = "data/full.jsonl" }

[[streams]]
name = "products-delta"
record_type = "product"
source = { kind = "jsonl", path = "data/delta.jsonl" }
"""


def _product(pid: str, title: str) -> dict[str, object]:
    return {"id": pid, "title": title, "url": f"https://shop.example/{pid}", "price": 10,
            "currency": "GBP"}


async def test_two_streams_of_one_type_judge_and_repair_with_the_later_version(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    jsonl(workspace.root / "data/full.jsonl", [_product("p0", "v1"), _product("p1", "a")])
    jsonl(workspace.root / "data/delta.jsonl", [_product("p0", "v2")])
    workspace.job(PRODUCTS)
    async with emulator(rate=120) as emu:
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await imported(emu)
        store = emu.app[STORE]
        assert store.get("product", "p0")["title"] == "v2"
        plain = await workspace.run("verify", "job.toml", "--json", url=emu.url)
        assert plain.code == 0, plain.stdout + plain.stderr  # no false "different"
        summary = {s["stream"]: s for s in json.loads(plain.stdout)["streams"]}
        assert summary["products-full"]["verified"] == 1  # p1 (p0 is judged under delta)
        assert summary["products-delta"]["verified"] == 1
        repaired = await workspace.run("verify", "job.toml", "--repair", "--settle", "0.2",
                                       url=emu.url)
        assert repaired.code == 0, repaired.stdout + repaired.stderr
        await imported(emu)
        assert store.get("product", "p0")["title"] == "v2"

        # Ometria holds the older version (say the delta was lost): repair sends the latest
        stale = await workspace.run("verify", "job.toml", "--stream", "products-full",
                                    "--json", url=emu.url)
        assert stale.code == 0, stale.stdout  # p0 judged against delta's version: held
        store.accept([{**_product("p0", "v1"), "@type": "product"}])
        await imported(emu)
        assert store.get("product", "p0")["title"] == "v1"
        found = await workspace.run("verify", "job.toml", "--stream", "products-full",
                                    "--json", url=emu.url)
        assert found.code == 3
        [bad] = [r for r in json.loads(found.stdout)["records"] if r["status"] != "verified"]
        assert (bad["id"], bad["stream"], bad["status"]) == ("p0", "products-delta", "different")
        fixed = await workspace.run("verify", "job.toml", "--repair", "--settle", "0.2",
                                    url=emu.url)
        assert fixed.code == 0, fixed.stdout + fixed.stderr
        await imported(emu)
        assert store.get("product", "p0")["title"] == "v2"


async def test_verify_refuses_beside_a_running_job_without_a_shared_budget(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(400))
    workspace.job(CONTACTS, rate_limit_per_second=4, batch_size=1)
    async with emulator(rate=4) as emu:
        running = await workspace.start("run", "job.toml", "--progress", "off", url=emu.url)
        try:
            while not emu.stats()["requests"]:
                await asyncio.sleep(0.05)
            result = await workspace.run("verify", "job.toml", "--sample", "20",
                                         "--method", "single", url=emu.url, timeout=30)
            assert result.code == 1, result.stdout + result.stderr
            assert "run of this job is in progress" in result.stderr
            assert "rate_limit_url" in result.stderr
            assert emu.stats()["max_requests_in_any_second"] <= 4
        finally:
            running.kill()
            await running.wait()


async def test_last_run_after_a_new_file_read_from_the_top_checks_it_all(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    path = workspace.root / "data/contacts.jsonl"
    jsonl(path, [{**c, "firstname": "A" * 60} for c in contact_records(10)])
    workspace.job(CONTACTS)
    async with emulator(rate=120) as emu:
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        jsonl(path, [{**c, "id": f"n{i}", "email": f"n{i}@example.com"}
                     for i, c in enumerate(contact_records(15))])
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await imported(emu)
        result = await workspace.run("verify", "job.toml", "--last-run", "--json",
                                     url=emu.url)
        assert result.code == 0, result.stdout + result.stderr
        [summary] = json.loads(result.stdout)["streams"]
        assert (summary["checked"], summary["verified"]) == (15, 15)


async def test_last_run_does_not_call_skipped_contacts_missing(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    path = workspace.root / "data/contacts.jsonl"
    records = contact_records(5)
    jsonl(path, records)
    workspace.job(CONTACTS)
    async with emulator(rate=120) as emu:
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await imported(emu)
        await asyncio.sleep(1.1)  # the next run begins in a later second (updateSince)
        jsonl(path, [*records, records[0], {**records[0], "id": "c9",
                                            "email": "user9@example.com"}])
        second = await workspace.run("run", "job.toml", url=emu.url)
        assert second.code == 0
        await imported(emu)
        result = await workspace.run("verify", "job.toml", "--last-run", "--method", "list",
                                     "--json", url=emu.url)
        assert result.code == 0, result.stdout + result.stderr
        [summary] = json.loads(result.stdout)["streams"]
        # the rewritten file was read from the top: all six ids, five of them skipped as
        # unchanged (not in the updateSince listing) and found by email
        assert (summary["checked"], summary["verified"], summary["missing"]) == (6, 6, 0)


async def test_custom_events_send_what_the_plan_says_and_never_exit_0(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    events = [{"id": f"e{i}", "event_type": "wishlist", "timestamp": "2024-03-01T10:00:00Z",
               "profile_id": f"c{i}"} for i in range(12)]
    jsonl(workspace.root / "data/events.jsonl", events)
    workspace.job("""
[[streams]]
name = "events"
record_type = "custom_event"
source = { kind = "jsonl", path = "data/events.jsonl" }
""")
    async with emulator(rate=120) as emu:
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        before = emu.stats()["requests"]
        result = await workspace.run("verify", "job.toml", url=emu.url)
        assert "estimate: 0 requests" in result.stderr, result.stderr
        assert emu.stats()["requests"] == before  # what the plan announced: nothing
        assert result.code == 4, result.stdout + result.stderr
        assert "nothing was verified" in result.stderr


async def test_reads_and_repair_pushes_share_one_pacer_and_only_problems_are_kept(
        workspace: Workspace, emulator: EmulatorFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(30))
    path = workspace.job(CONTACTS)
    async with emulator(rate=120) as emu:
        monkeypatch.chdir(workspace.root)
        for name, value in workspace.env(emu.url).items():
            monkeypatch.setenv(name, value)
        job = load_job(path)
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await imported(emu)
        report = await verify_job(job, VerifyOptions())
        assert (report.exit_code, report.streams[0].verified) == (0, 30)
        assert report.records == []  # verified ids are counted, not kept

        used: set[int] = set()
        acquire = Pacer.acquire

        async def recording(self: Pacer, *args: Any, **kwargs: Any) -> Any:
            used.add(id(self))
            return await acquire(self, *args, **kwargs)

        monkeypatch.setattr(Pacer, "acquire", recording)
        async with emulator(rate=120) as empty:  # Ometria lost everything: repair it all
            monkeypatch.setenv("OMETRIA_SYNC__OMETRIA__BASE_URL", empty.url)
            monkeypatch.setenv("OMETRIA_SYNC__STATE__CHECKPOINT_URL", "sqlite:///state/b.db")
            report = await verify_job(load_job(path),
                                      VerifyOptions(repair=True, settle=0.2))
            assert report.exit_code == 0, report.error
            assert report.streams[0].repaired == 30
            assert empty.stats()["requests_by_status"].get("202")
        assert len(used) == 1  # the reads and the resend: one pacer, one budget


async def test_a_run_started_while_verify_reads_refuses(
        workspace: Workspace, emulator: EmulatorFactory) -> None:
    jsonl(workspace.root / "data/contacts.jsonl", contact_records(24))
    workspace.job(CONTACTS, rate_limit_per_second=4)
    async with emulator(rate=4) as emu:
        assert (await workspace.run("run", "job.toml", url=emu.url)).code == 0
        await imported(emu)
        verifying = await workspace.start("verify", "job.toml", "--method", "single",
                                          url=emu.url)
        try:
            lock = workspace.root / "state" / "checkpoints.db.job.lock"  # job.toml: job "job"
            for _ in range(400):  # verify holds the run lock while it reads
                if run_in_progress(lock):
                    break
                await asyncio.sleep(0.05)
            assert run_in_progress(lock)
            run = await workspace.run("run", "job.toml", "--full-refresh", url=emu.url)
            assert run.code == 1, run.stdout + run.stderr
            assert "in progress" in run.stderr
            assert await asyncio.wait_for(verifying.wait(), 60) == 0
            assert emu.stats()["max_requests_in_any_second"] <= 4
        finally:
            if verifying.returncode is None:
                verifying.kill()
                await verifying.wait()
