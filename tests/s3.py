"""A real S3 API on 127.0.0.1 for tests: moto's standalone server, one per test session.

No mock of the client library: obstore talks HTTP to the server. The server runs as a
subprocess on a free port; its request log (one line per request, with the status: 206 for a
ranged GET) is kept in a file. :class:`Proxy` sits between a client and the server when a test
needs to see the Range of each GET, count the bytes served, or cut a connection mid-body.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """``python -m moto.server`` on 127.0.0.1; ``log`` is its request log."""

    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.port = free_port()
        env = {**os.environ, **CREDENTIALS, **self.env}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"the moto S3 server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def mark(self) -> int:
        """Where the log stands now: :meth:`requests` since then."""
        return self.log.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request logged since ``since``."""
        with self.log.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        return [(m[1], m[2], int(m[3]))
                for m in re.finditer(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.1" (\d{3})',
                                     text)]


@dataclass
class Bucket:
    """A fresh bucket of one test on the session's server."""

    server: S3Server
    name: str

    def put(self, key: str, body: bytes) -> str:
        self.server.client().put_object(Bucket=self.name, Key=key, Body=body)
        return f"s3://{self.name}/{key}"

    def delete(self, key: str) -> None:
        self.server.client().delete_object(Bucket=self.name, Key=key)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "requests.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """An empty bucket, with the test credentials in the environment (also for the CLI)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    from ometria_sync.sources.files import store

    store._store.cache_clear()  # clients read the environment when they are made
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return Bucket(s3_server, name)


@dataclass
class Exchange:
    """One request through the proxy: its first line, its Range header, bytes sent back."""

    request: str
    range: str | None
    served: int = 0


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``: records each request (one per connection:
    it asks the server to close after each answer) and cuts the next ``cuts`` answers to GETs
    after ``cut_after`` bytes (a reset, as a broken network does)."""

    def __init__(self, upstream: int, cut_after: int = 0, cuts: int = 0,
                 throttle: int = 0) -> None:
        self.upstream, self.cut_after, self.cuts = upstream, cut_after, cuts
        self.throttle = throttle  # the next GETs of objects answered 503 SlowDown
        self.exchanges: list[Exchange] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._sock.close()

    def gets(self, key: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.request.startswith("GET ")
                and e.request.split(" ")[1].split("?")[0].endswith("/" + key)]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream))
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            match = re.search(r"(?im)^range:\s*(.+?)\s*$", text)
            exchange = Exchange(text.split("\r\n", 1)[0], match[1] if match else None)
            with self._lock:
                self.exchanges.append(exchange)
                cut = exchange.request.startswith("GET ") and "?" not in \
                    exchange.request.split(" ")[1]
            if cut and self._take_throttle():
                body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message>" \
                       b"</Error>"
                conn.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (len(body), body))
                exchange.served = -503
                return
            # one request per connection: the answer ends when the server closes
            head = re.sub(rb"(?im)^connection:[^\r\n]*\r\n", b"", head, count=1)
            head = head.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
            up.sendall(head)
            threading.Thread(target=self._pump_up, args=(conn, up), daemon=True).start()
            first = True
            while True:
                data = up.recv(65536)
                if not data:
                    return
                if first:  # the client must not send another request on this connection
                    data = re.sub(rb"(?im)^connection:[^\r\n]*\r\n", b"", data, count=1)
                    data = data.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
                    first = False
                if cut and exchange.served + len(data) > self.cut_after and self._take_cut():
                    conn.sendall(data[: self.cut_after - exchange.served])
                    exchange.served = self.cut_after
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
                    return
                conn.sendall(data)
                exchange.served += len(data)
        except OSError:
            return
        finally:
            for sock in (conn, up):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _take_throttle(self) -> bool:
        with self._lock:
            if self.throttle <= 0:
                return False
            self.throttle -= 1
            return True

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts <= 0:
                return False
            self.cuts -= 1
            return True

    @staticmethod
    def _pump_up(conn: socket.socket, up: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                up.sendall(data)
        except OSError:
            return
