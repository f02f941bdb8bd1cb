"""Shared fixtures: job files in a temporary folder, and an in-memory Ometria behind the seam."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ometria_sync.config import Job, load_job
from ometria_sync.ometria.push import PushResult
from ometria_sync.schemas.problems import Problem, Verdict

Handler = Callable[[list[dict[str, Any]]], PushResult | Exception]


class FakeOmetria:
    """An in-memory pusher: ``handler`` decides each answer; every call is recorded with the
    loop time it was made at and the ids it carried."""

    def __init__(self, handler: Handler | None = None, latency: float = 0.0) -> None:
        self.handler = handler or (lambda records: PushResult(202, accepted=len(records)))
        self.latency = latency
        self.calls: list[tuple[float, list[dict[str, Any]]]] = []
        self.delivered: list[dict[str, Any]] = []

    async def push(self, body: bytes, count: int) -> PushResult:
        records = msgspec.json.decode(body)
        assert len(records) == count
        self.calls.append((asyncio.get_running_loop().time(), records))
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = self.handler(records)
        if isinstance(answer, Exception):
            raise answer
        self.delivered.extend(records)
        return answer

    async def aclose(self) -> None:
        return None

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.delivered]


def minimal_validator(stream: Any) -> Callable[[str, Any], Verdict]:
    """The engine's own needs only: a string id without spaces (schemas are tested apart)."""

    def validate(record_type: str, record: Any) -> Verdict:
        rid = record.get("id")
        if not isinstance(rid, str) or not rid or " " in rid:
            return Verdict(errors=[Problem("id", f"must be a string id without spaces, got {rid!r}")])
        return Verdict()

    return validate


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(
        (r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records
    ))
    return path


def contacts(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "email": f"user{i}@example.com"} for i in range(start, start + n)]


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Job]:
    """Write a job file into tmp_path (streams default to one JSONL contact stream)."""

    def make(extra: str = "", streams: str | None = None, **ometria: Any) -> Job:
        settings = {"base_url": "http://127.0.0.1:9/v2", "rate_limit_per_second": 1000,
                    "backoff_base": 0.01, "backoff_cap": 0.05}
        settings.update(ometria)
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        streams = streams if streams is not None else textwrap.dedent("""
            [[streams]]
            name = "contacts"
            record_type = "contact"
            source = { kind = "jsonl", path = "data/contacts.jsonl" }
        """)
        text = f"[ometria]\n{lines}\n\n[run]\nlinger = 0.05\ngrace_period = 2\n{extra}\n{streams}"
        path = tmp_path / "job.toml"
        path.write_text(text)
        return load_job(path)

    return make
