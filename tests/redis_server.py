"""The machine's Redis for tests, and private Redis servers a test may stop and restart.

No skip: a test that needs Redis fails when it cannot connect (CI starts the server)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("OMETRIA_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_HINT = ("start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' "
              "--appendonly no (or run .ci/run, which does)")


def require_redis() -> None:
    """Fail (never skip) with how to start Redis when the machine's server is down."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc} ({START_HINT})")


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A client of the machine's Redis and a key prefix of this test's own (deleted after)."""
    require_redis()
    client = aioredis.from_url(REDIS_URL)
    prefix = f"ometria-sync-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield client, prefix
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port: it can be stopped (SIGKILL)
    and started again on the same port, empty, as after a crash."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.folder = folder
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is not installed ({START_HINT})")
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.folder)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, password=self.password,
                                 socket_connect_timeout=0.5) as client:
                    client.ping()
                return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        pytest.fail(f"the private redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@contextlib.contextmanager
def private_redis(folder: Path, password: str | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(folder, password)
    server.start()
    try:
        yield server
    finally:
        server.kill()
