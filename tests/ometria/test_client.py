"""The HTTP client under each status code Ometria may answer (aioresponses, no network)."""

from __future__ import annotations

import asyncio
import email.utils
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses

from ometria_sync.errors import (
    AuthenticationError,
    BatchRejectedError,
    FatalApiError,
    ThrottledError,
    TransientError,
    UnconfirmedAnswerError,
)
from ometria_sync.net.http import parse_retry_after
from ometria_sync.ometria.client import OmetriaClient

URL = "https://api.example.test/v2/push"
KEY = "canary-key-5f1e"


@pytest.fixture
async def client() -> AsyncIterator[OmetriaClient]:
    c = OmetriaClient("https://api.example.test/v2", KEY, timeout=5)
    yield c
    await c.aclose()


async def test_202_returns_counts_request_id_and_queue_headers(client: OmetriaClient) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=202, payload={"status": "OK", "request_id": "r-1",
                                            "accepted": 2, "rejected": 0},
                  headers={"X-QueueSize-Limit": "50000", "X-QueueSize-Remaining": "41000"})
        result = await client.push(b'[{"id":"a"},{"id":"b"}]', 2)
        (request,) = next(iter(mock.requests.values()))
    assert (result.status, result.accepted, result.rejected, result.request_id) == (
        202, 2, 0, "r-1")
    assert (result.queue_limit, result.queue_remaining) == (50000, 41000)
    assert request.kwargs["headers"]["Content-Type"] == "application/json"


def _ok(accepted: int, rejected: int = 0) -> dict[str, object]:
    return {"status": "OK", "request_id": "r-1", "accepted": accepted, "rejected": rejected}


async def test_any_2xx_with_the_acknowledgement_is_success(client: OmetriaClient) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=200, payload={"status": "ok", "accepted": 2, "rejected": 0,
                                            "skipped": 1})
        result = await client.push(b"[]", 3)
    assert result.accepted == 2 and result.rejected == 0


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [(200, b"", "not Ometria's JSON answer"),
     (200, b"<html><body>Welcome</body></html>", "not Ometria's JSON answer"),
     (200, b'{"status": "ERROR", "accepted": 3, "rejected": 0}', "status 'ERROR'"),
     (202, b"{}", "status None"),
     (202, b'{"status": "OK"}', "no accepted/rejected counts"),
     (202, b'{"status": "OK", "accepted": 1, "rejected": 1}', "add up to 2, not the 3"),
     (202, b'{"status": "OK", "accepted": 5, "rejected": -2}', "negative counts"),
     (202, b'[1, 2, 3]', "not Ometria's JSON answer")],
)
async def test_a_2xx_that_is_not_an_acknowledgement_is_fatal(
    client: OmetriaClient, status: int, body: bytes, why: str
) -> None:
    """HTML from a proxy, status ERROR, or counts short of what was sent settle nothing."""
    with aioresponses() as mock:
        mock.post(URL, status=status, body=body)
        with pytest.raises(UnconfirmedAnswerError) as info:
            await client.push(b"[]", 3)
    message = str(info.value)
    assert isinstance(info.value, FatalApiError) and info.value.status == status
    assert why in message and f"HTTP {status}" in message and "proxy" in message
    assert body[:10].decode() in message and KEY not in message


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_fatal_and_never_followed(client: OmetriaClient, status: int) -> None:
    """The POST is not replayed elsewhere (the key would go along); Location is named."""
    elsewhere = "https://login.example.org/welcome"
    with aioresponses() as mock:
        mock.post(URL, status=status, headers={"Location": elsewhere})
        mock.get(elsewhere, status=200, body=b"<html>hello</html>")
        mock.post(elsewhere, status=202, payload=_ok(1))
        with pytest.raises(FatalApiError) as info:
            await client.push(b'[{"id":"a"}]', 1)
        urls = [str(url) for _, url in mock.requests]
    message = str(info.value)
    assert urls == [URL]
    assert info.value.status == status and elsewhere in message and KEY not in message
    assert not isinstance(info.value, UnconfirmedAnswerError)


async def test_a_redirect_of_a_read_is_fatal_and_never_followed(client: OmetriaClient) -> None:
    errors = "https://api.example.test/v2/push/_errors"
    with aioresponses() as mock:
        mock.get(errors, status=302, headers={"Location": f"https://evil.example.org/?k={KEY}"})
        mock.get(f"https://evil.example.org/?k={KEY}", payload=[])
        with pytest.raises(FatalApiError, match=r"redirect to https://evil\.example\.org") as info:
            await client.get_json("/push/_errors")
        assert len(mock.requests) == 1
    assert KEY not in str(info.value)


async def test_the_key_travels_in_the_x_ometria_auth_header() -> None:
    with aioresponses() as mock:
        mock.post(URL, status=202, payload=_ok(0))
        c = OmetriaClient("https://api.example.test/v2", KEY)
        try:
            await c.push(b"[]", 0)
        finally:
            await c.aclose()
        (request,) = next(iter(mock.requests.values()))
    headers = request.kwargs["headers"]
    assert headers["X-Ometria-Auth"] == KEY and "Authorization" not in headers


async def test_rejected_records_are_reported(client: OmetriaClient) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=202, payload=_ok(98, 2))
        result = await client.push(b"[]", 100)
    assert (result.accepted, result.rejected) == (98, 2)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key_raises_authentication_error_without_the_key(
    client: OmetriaClient, status: int
) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=status, body=b"Forbidden")
        with pytest.raises(AuthenticationError) as info:
            await client.push(b"[]", 0)
    assert info.value.status == status and KEY not in str(info.value)


async def test_429_raises_throttled_with_retry_after_and_queue_remaining(
    client: OmetriaClient,
) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=429, headers={"Retry-After": "3", "X-QueueSize-Remaining": "0"})
        with pytest.raises(ThrottledError) as info:
            await client.push(b"[]", 0)
    assert (info.value.retry_after, info.value.queue_remaining, info.value.status) == (3, 0, 429)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_transient_statuses_raise_transient_error(
    client: OmetriaClient, status: int
) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=status, body=b"oops")
        with pytest.raises(TransientError) as info:
            await client.push(b"[]", 0)
    assert info.value.status == status


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_bad_batch_statuses_raise_batch_rejected_with_the_detail(
    client: OmetriaClient, status: int
) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=status, body=b'{"error": "Payload invalid"}')
        with pytest.raises(BatchRejectedError) as info:
            await client.push(b"[]", 0)
    assert info.value.status == status and "Payload invalid" in info.value.detail


async def test_an_unexpected_status_is_fatal(client: OmetriaClient) -> None:
    with aioresponses() as mock:
        mock.post(URL, status=404, body=b"Not Found")
        with pytest.raises(FatalApiError, match="unexpected HTTP 404"):
            await client.push(b"[]", 0)


@pytest.mark.parametrize(
    "exc", [aiohttp.ServerDisconnectedError(), aiohttp.ClientConnectionError("reset"),
            TimeoutError()])
async def test_network_failures_are_transient(client: OmetriaClient, exc: Exception) -> None:
    with aioresponses() as mock:
        mock.post(URL, exception=exc)
        with pytest.raises(TransientError):
            await client.push(b"[]", 0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("0", None), ("-5", None), ("soon", None), ("nan", None),
     ("2.5", 2.5), ("7", 7.0), ("99999", 120.0)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, cap=120) == expected


def test_retry_after_http_date() -> None:
    now = time.time()
    future = email.utils.formatdate(now + 30, usegmt=True)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(future, cap=120, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(past, cap=120, now=now) is None


async def test_on_sent_is_told_when_the_request_really_left() -> None:
    """A real socket this time (aioresponses skips the transport): ``on_sent`` is called once,
    after the connection was set up and before the server saw the request; the answer carries
    the connection's network jitter."""
    loop = asyncio.get_running_loop()
    arrived: list[float] = []

    async def push(request: web.Request) -> web.Response:
        arrived.append(loop.time())
        await request.read()
        return web.json_response(_ok(1), status=202)

    app = web.Application()
    app.router.add_post("/v2/push", push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = OmetriaClient(f"http://127.0.0.1:{port}/v2", KEY, timeout=5)
    try:
        sent: list[float] = []
        before = loop.time()
        result = await client.push(b'[{"@type":"contact","id":"c1"}]', 1, on_sent=sent.append)
        await client.push(b'[{"@type":"contact","id":"c2"}]', 1)  # no hook: nothing called
    finally:
        await client.aclose()
        await runner.cleanup()
    assert result.accepted == 1
    assert len(sent) == 1
    assert before <= sent[0] <= arrived[0]
    # the kernel's round-trip variation of the connection comes with the answer (Linux)
    if sys.platform == "linux":
        assert result.network_jitter is not None and 0 <= result.network_jitter < 0.1


async def test_skipped_records_are_reported_apart_from_accepted(client: OmetriaClient) -> None:
    """What Ometria means by ``skipped`` is undocumented: the result carries the count, so the
    engine never takes those records as delivered (review item 14)."""
    with aioresponses() as mock:
        mock.post(URL, status=202, payload={"status": "OK", "accepted": 0, "rejected": 0,
                                            "skipped": 5})
        mock.post(URL, status=202, payload={"status": "OK", "accepted": 7, "rejected": 1,
                                            "skipped": 2})
        mock.post(URL, status=202, payload=_ok(3))  # no skipped key: none skipped
        everything = await client.push(b"[]", 5)
        some = await client.push(b"[]", 10)
        none = await client.push(b"[]", 3)
    assert (everything.accepted, everything.rejected, everything.skipped) == (0, 0, 5)
    assert (some.accepted, some.rejected, some.skipped) == (7, 1, 2)
    assert none.skipped == 0
