"""``--repair``'s resend: the ids that are not verified, each in its latest version (the one
the ledger holds: the last stream in job order that holds the id), pushed through the normal
pipeline in ``repair`` mode (validation, dead letter, the run lock; no checkpoint moves, no
change detection), paced by the same pacer as verify's reads: one command, one budget."""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
import structlog

from ometria_sync.config import Job, StreamSettings
from ometria_sync.errors import OmetriaSyncError
from ometria_sync.exit_codes import ExitCode
from ometria_sync.pacing.protocol import RatePacer
from ometria_sync.pipeline.job_run import RunOptions, run_job
from ometria_sync.sources.files.jsonl import JsonlSourceConfig
from ometria_sync.verify.ledger import Ledger

log = structlog.get_logger("ometria_sync.verify")


class RepairFailed(OmetriaSyncError):
    """The resend itself failed (key refused, Ometria unreachable): exit 1."""


async def resend(job: Job, ledger: Ledger, streams: list[str], pacer: RatePacer) -> None:
    """Push the not verified ids of ``streams``: each stream reads a JSON Lines file of its
    records to resend, written from the ledger a chunk at a time."""
    by_name = {s.name: s for s in job.settings.streams}
    with tempfile.TemporaryDirectory(prefix="ometria-sync-repair-") as folder:
        replaced: list[StreamSettings] = []
        for name in streams:
            path = Path(folder) / f"{len(replaced)}.jsonl"
            with path.open("wb") as out:
                for chunk in ledger.chunks(name, not_verified=True):
                    out.write(b"".join(msgspec.json.encode(t.record) + b"\n" for t, _ in chunk))
            replaced.append(msgspec.structs.replace(
                by_name[name], source=JsonlSourceConfig(path=str(path)), enabled=True))
        kept = [s for s in job.settings.streams if s.name not in set(streams)]
        settings = msgspec.structs.replace(job.settings, streams=replaced + kept)
        result = await run_job(Job(path=job.path, settings=settings),
                               RunOptions(repair=True, streams=list(streams), progress="off"),
                               handle_signals=False, pacer=pacer)
    if result.exit_code == ExitCode.FATAL:
        raise RepairFailed(result.error or "the repair run failed")
    log.info("repair_sent", sent=sum(s.sent for s in result.streams),
             dead_lettered=sum(s.dead_lettered for s in result.streams))
