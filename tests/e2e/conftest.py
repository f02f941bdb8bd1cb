"""End-to-end harness: the real CLI as a subprocess against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ometria_sync.emulator import EmulatorOptions, running_emulator

KEY = "canary-9c1f7d2e4b-never-print-me"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Workspace:
    """A job folder with data, and helpers to run the CLI on it."""

    root: Path
    #: more environment for the CLI (e.g. the state's URL)
    extra_env: dict[str, str] = field(default_factory=dict)

    def job(self, streams: str, **ometria: Any) -> Path:
        settings = {"rate_limit_per_second": 50, "backoff_base": 0.05, "backoff_cap": 0.5,
                    "request_timeout": 5}
        settings.update(ometria)
        lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        path = self.root / "job.toml"
        path.write_text(f"[ometria]\n{lines}\n\n[run]\nlinger = 0.1\ngrace_period = 5\n\n"
                        + textwrap.dedent(streams))
        return path

    def env(self, url: str, key: str = KEY) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMETRIA")}
        env.update(OMETRIA_API_KEY=key, OMETRIA_SYNC__OMETRIA__BASE_URL=url)
        env.update(self.extra_env)
        return env

    async def start(self, *args: str, url: str, key: str = KEY) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ometria_sync", *args, "--log-format", "json",
            cwd=self.root, env=self.env(url, key),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, url: str, key: str = KEY, timeout: float = 120) -> CliResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        proc = await self.start(*args, url=url, key=key)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(), err.decode(), loop.time() - started)

    def dead_letters(self, name: str = "dead-letter.jsonl") -> list[dict[str, Any]]:
        """The entries of a dead-letter file in ``state/`` (``validate-dead-letter.jsonl``:
        what ``validate`` found)."""
        path = self.root / "state" / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


def jsonl(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


CONTACTS = """
[[streams]]
name = "contacts"
record_type = "contact"
source = { kind = "jsonl", path = "data/contacts.jsonl" }
"""


def contact_records(n: int) -> list[dict[str, Any]]:
    return [{"@collection": "shop", "id": f"c{i}", "email": f"user{i}@example.com",
             "firstname": "Ann"} for i in range(n)]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


EmulatorFactory = Callable[..., Any]


@pytest.fixture
def emulator() -> Callable[..., Any]:
    """``async with emulator(rate=50, ...) as emu`` starts one on a free loopback port."""

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[Any]:
        options.setdefault("api_key", KEY)
        options.setdefault("port", 0)
        options.setdefault("seed", 1)
        async with running_emulator(EmulatorOptions(**options)) as emu:
            yield emu

    return start
