"""Test doubles: an in-memory Ometria behind the push seam, a minimal validator, data makers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ometria_sync.ometria.push import PushResult, SentHook
from ometria_sync.schemas.problems import Problem, Verdict

Handler = Callable[[list[dict[str, Any]]], PushResult | Exception]


class FakeOmetria:
    """An in-memory pusher: ``handler`` decides each answer; every call is recorded with the
    loop time it was made at and the ids it carried."""

    def __init__(self, handler: Handler | None = None, latency: float = 0.0) -> None:
        self.handler = handler or (lambda records: PushResult(202, accepted=len(records)))
        self.latency = latency
        self.calls: list[tuple[float, list[dict[str, Any]]]] = []
        #: loop time of each answer, and the exception it was (None for a result)
        self.answers: list[tuple[float, Exception | None]] = []
        self.delivered: list[dict[str, Any]] = []

    async def push(
        self, body: bytes, count: int, on_sent: SentHook | None = None
    ) -> PushResult:
        records = msgspec.json.decode(body)
        assert len(records) == count
        now = asyncio.get_running_loop().time()
        if on_sent is not None:
            on_sent(now)
        self.calls.append((now, records))
        if self.latency:
            await asyncio.sleep(self.latency)
        answer = self.handler(records)
        failure = answer if isinstance(answer, Exception) else None
        self.answers.append((asyncio.get_running_loop().time(), failure))
        if failure is not None:
            raise failure
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
            message = f"must be a string id without spaces, got {rid!r}"
            return Verdict(errors=[Problem("id", message)])
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


