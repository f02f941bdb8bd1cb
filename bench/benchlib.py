"""What the benchmark scripts share: cached sample files, a contacts CSV and PostgreSQL tables
to read, job files, an emulator that logs every push it receives, the engine as a subprocess,
and process CPU time. Not a benchmark itself.

Data files go to ``$OMETRIA_BENCH_DATA`` (default ``/tmp/ometria-bench``), never into the repo;
they are made once per size with bench/gen_data.py's record shapes (seed 7) and reused. Tables
go to ``$OMETRIA_SYNC_BENCH_PG_DSN`` (default the test database on 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_data import OPTIN, contact, order

from ometria_sync.emulator import EmulatorOptions
from ometria_sync.emulator.app import create_app
from ometria_sync.emulator.behaviour import STORE

DATA_DIR = Path(os.environ.get("OMETRIA_BENCH_DATA", "/tmp/ometria-bench"))
KEY = "bench-key-not-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_DSN = os.environ.get("OMETRIA_SYNC_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


#: ``python -c PEAK_SCRIPT ARGS``: ``ometria-sync ARGS``, then its peak RSS (``VmHWM``) on stderr
#: as ``VmHWM_KB <n>`` (``ru_maxrss`` of a child can show its parent's size)
PEAK_SCRIPT = ("import atexit, runpy, sys\n"
         "def peak():\n"
         "    with open('/proc/self/status') as fh:\n"
         "        hwm = [l for l in fh if l.startswith('VmHWM')][0].split()[1]\n"
         "    sys.stderr.write(f'\\nVmHWM_KB {hwm}\\n')\n"
         "atexit.register(peak)\n"
         "sys.argv = ['ometria-sync', *sys.argv[1:]]\n"
         "runpy.run_module('ometria_sync', run_name='__main__')\n")

def data_file(record_type: str, n: int) -> Path:
    """``n`` contacts or orders as JSON Lines, made on first use and cached."""
    path = DATA_DIR / f"{record_type}s-{n}.jsonl"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"(making {path}, once)", file=sys.stderr, flush=True)
    rnd = random.Random(7)
    encode = msgspec.json.encode
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        for i in range(n):
            record = contact(i, rnd) if record_type == "contact" else order(i, n, 500, rnd)
            fh.write(encode(record) + b"\n")
    tmp.replace(path)
    return path


def write_contacts_csv(path: Path, rows: int) -> None:
    """``rows`` contacts as CSV with typed cells to map: a timestamp (``joined``), a number
    (``score``) and a boolean (``vip``)."""
    with path.open("w") as fh:
        fh.write("id,email,firstname,marketing_optin,customer_id,joined,score,vip\n")
        for n in range(rows):
            fh.write(f"c{n},user{n}@example.com,Ann,{OPTIN[n % 3]},cust{n},"
                     f"2024-01-01 10:{n % 60:02d}:00,{n % 97}.5,{'yes' if n % 2 else 'no'}\n")


async def pg_execute(*statements: str) -> None:
    """Run ``statements`` in order on one connection to :data:`PG_DSN`."""
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def make_pg_table(table: str, select: str, key: str) -> None:
    """``table`` made afresh from ``select``, with ``key`` its primary key and an index on
    ``(updated_at, key)``, the order the PostgreSQL source's keyset pages read it in."""
    await pg_execute(f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} AS {select}",
                     f"ALTER TABLE {table} ADD PRIMARY KEY ({key})",
                     f"CREATE INDEX ON {table} (updated_at, {key})")


def write_job(folder: Path, data: Path, record_type: str, *, change_detection: bool = True,
              state_url: str | None = None, **ometria: Any) -> Path:
    """A one-stream job in ``folder`` (state under ``folder/state``, or with ``state_url`` in
    a new PostgreSQL schema ``bench_<random>``, see :func:`drop_bench_schemas`); ``ometria``
    overrides the ``[ometria]`` section. The base URL is set per run with
    ``OMETRIA_SYNC__OMETRIA__BASE_URL``."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"base_url": "http://127.0.0.1:9/v2", **ometria}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    job = folder / "job.toml"
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    state = (f'[state]\ncheckpoint_url = "{state_url}"\nschema = "{schema}"\n\n'
             if state_url else "")
    job.write_text(
        f"[ometria]\n{lines}\n\n[report]\nprogress = \"off\"\n\n{state}"
        f"[[streams]]\nname = \"{record_type}s\"\nrecord_type = \"{record_type}\"\n"
        f"source = {{ kind = \"jsonl\", path = \"{data}\" }}\n"
        f"change_detection = {json.dumps(change_detection)}\n"
    )
    return job


def drop_bench_schemas(url: str) -> None:
    """Drop the ``bench_*`` schemas :func:`write_job` had runs create."""

    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            for row in await conn.fetch("SELECT nspname FROM pg_namespace "
                                        "WHERE nspname LIKE 'bench\\_%'"):
                await conn.execute(f"DROP SCHEMA {row[0]} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


def engine_command(job: Path) -> list[str]:
    return [sys.executable, "-m", "ometria_sync", "run", str(job), "--log-format", "json", "-q"]


def engine_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMETRIA")}
    env.update(OMETRIA_API_KEY=KEY, OMETRIA_SYNC__OMETRIA__BASE_URL=url)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class PushLog:
    """Every ``POST /v2/push`` an emulator received: arrival (loop time, i.e. time.monotonic),
    HTTP status, and the id of the first record in the body."""

    arrivals: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    first_ids: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def window(self, seconds: float) -> PushLog:
        """The pushes that arrived within ``seconds`` of the first one."""
        if not self.arrivals:
            return PushLog()
        end = self.arrivals[0] + seconds
        n = sum(1 for t in self.arrivals if t <= end)
        return PushLog(self.arrivals[:n], self.statuses[:n], self.first_ids[:n])

    @property
    def rate(self) -> float:
        """Requests per second: (n - 1) / (last arrival - first arrival)."""
        n = len(self.arrivals)
        span = self.arrivals[-1] - self.arrivals[0] if n > 1 else 0.0
        return (n - 1) / span if span > 0 else 0.0

    def count(self, status: int) -> int:
        return self.statuses.count(status)

    def max_in_any_second(self) -> int:
        """Most arrivals inside any sliding one-second window (as the emulator counts)."""
        best, lo = 0, 0
        for hi, t in enumerate(self.arrivals):
            while self.arrivals[lo] <= t - 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _first_id(body: bytes) -> str:
    try:
        return str(msgspec.json.decode(body)[0].get("id"))
    except (msgspec.DecodeError, IndexError, AttributeError, KeyError):
        return ""


def _logging_middleware(log: PushLog) -> Any:
    @web.middleware
    async def log_push(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/v2/push":
            return await handler(request)
        log.arrivals.append(asyncio.get_running_loop().time())
        log.statuses.append(0)
        log.first_ids.append("")
        index = len(log.arrivals) - 1
        log.arrived.set()
        response = await handler(request)
        log.statuses[index] = response.status
        log.first_ids[index] = _first_id(await request.read())  # cached by aiohttp
        return response

    return log_push


@dataclass
class LoggedEmulator:
    url: str
    log: PushLog
    app: web.Application

    def stats(self) -> dict[str, Any]:
        store = self.app[STORE]
        return store.stats.snapshot(len(store.queue))


@asynccontextmanager
async def logged_emulator(**options: Any) -> AsyncIterator[LoggedEmulator]:
    """The project's emulator in this process on a free port, logging every push."""
    options.setdefault("api_key", KEY)
    options.setdefault("seed", 1)
    app = create_app(EmulatorOptions(host="127.0.0.1", port=0, **options))
    log = PushLog()
    app.middlewares.append(_logging_middleware(log))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield LoggedEmulator(f"http://127.0.0.1:{port}/v2", log, app)
    finally:
        await runner.cleanup()


@dataclass
class EmulatorProcess:
    """A logged emulator in a child process of its own (``logged_emulator_process``)."""

    url: str
    proc: asyncio.subprocess.Process
    log: PushLog = field(default_factory=PushLog)

    async def first_arrival(self) -> None:
        """Wait for the first push to arrive."""
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if line.strip() != b"arrived":
            raise SystemExit(f"emulator process: expected 'arrived', got {line!r}")


@asynccontextmanager
async def logged_emulator_process(**options: Any) -> AsyncIterator[EmulatorProcess]:
    """``logged_emulator`` in a child process: its arrival stamps depend only on its own event
    loop, not on whatever else the benchmark runs. On exit the child is stopped (SIGTERM) and
    its push log read back into ``.log``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", json.dumps(options), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise SystemExit(f"emulator process did not start: {line!r}")
    emu = EmulatorProcess(line, proc)
    try:
        yield emu
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, _ = await proc.communicate()
        lines = out.splitlines()
        if lines and lines[0].strip() == b"arrived":
            lines = lines[1:]  # nobody waited for the first arrival
        if lines:
            saved = msgspec.json.decode(lines[-1])
            emu.log = PushLog(saved["arrivals"], saved["statuses"], saved["first_ids"])


async def _serve(options: dict[str, Any]) -> None:
    """The child's side of ``logged_emulator_process``: print the URL, then ``arrived`` on the
    first push, and on SIGTERM the push log as one JSON line."""
    import gc
    import signal

    for pair in ("latency", "arrival_jitter"):
        if isinstance(options.get(pair), list):
            options[pair] = tuple(options[pair])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with logged_emulator(**options) as emu:
        print(emu.url, flush=True)
        gc.freeze()  # as ``ometria-sync emulator`` does

        async def announce_first_arrival() -> None:
            await emu.log.arrived.wait()
            print("arrived", flush=True)

        announcer = asyncio.create_task(announce_first_arrival())
        await stop.wait()
        announcer.cancel()
        log = emu.log
    print(msgspec.json.encode({"arrivals": log.arrivals, "statuses": log.statuses,
                               "first_ids": log.first_ids}).decode(), flush=True)


def start_engine(job: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(engine_command(job), env=engine_env(url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(_serve(json.loads(sys.argv[2])))
    else:
        raise SystemExit("not a benchmark: see bench/README.md")
