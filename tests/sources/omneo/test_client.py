"""The Omneo client under each answer Omneo may give (aioresponses, no network; a fake clock
for the pacer and the backoff, so retries are timed without sleeping)."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aioresponses import aioresponses
from structlog.testing import capture_logs

from ometria_sync.errors import SourceError
from ometria_sync.net.http import Backoff
from ometria_sync.pacing.pacer import Pacer
from ometria_sync.sources.omneo.client import OmneoAuthError, OmneoClient
from tests.clock import FakeClock

BASE = "https://api.acme.getomneo.com/api/v3"
TOKEN = "omneo-token-3c9e-secret"
AGGS = re.compile(r"^https://api\.acme\.getomneo\.com/api/v3/profiles/p1/aggregations$")
PAGE = re.compile(r"^https://api\.acme\.getomneo\.com/api/v3/profiles(\?.*)?$")


class Recorder(FakeClock):
    """A fake clock that also remembers what the client slept for itself."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def client_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.sleep(seconds)


@pytest.fixture
def clock() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(clock: Recorder) -> AsyncIterator[OmneoClient]:
    c = OmneoClient(BASE, TOKEN, max_retries=3, backoff=Backoff(1.0, 8.0, rand=lambda a, b: b),
                    pacer=Pacer(5.0, clock=clock.time, sleep=clock.sleep),
                    sleep=clock.client_sleep)
    yield c
    await c.aclose()


async def test_the_token_travels_as_a_bearer_header_with_the_query(client: OmneoClient) -> None:
    with aioresponses() as mock:
        mock.get(PAGE, payload={"data": []})
        answer = await client.get("/profiles", {"page[size]": "100", "sort": "updated_at,id"})
        ((_, url), (request,)) = next(iter(mock.requests.items()))
    assert answer == {"data": []}
    assert request.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request.kwargs["headers"]["Accept"] == "application/json"
    assert url.query["page[size]"] == "100" and url.query["sort"] == "updated_at,id"


async def test_retry_after_is_a_floor_for_the_next_attempt(client: OmneoClient,
                                                           clock: Recorder) -> None:
    """429 with Retry-After: 3 -> the retry leaves no sooner than 3 s later (backoff is 1 s)."""
    with aioresponses() as mock:
        mock.get(AGGS, status=429, headers={"Retry-After": "3"})
        mock.get(AGGS, payload={"data": {"spend_12m": "1"}})
        answer = await client.find("/profiles/p1/aggregations")
    assert answer == {"data": {"spend_12m": "1"}}
    assert 3.0 <= clock.now < 3.5
    assert client.requests == 2


async def test_retry_after_as_an_http_date(client: OmneoClient, clock: Recorder) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    with aioresponses() as mock:
        mock.get(AGGS, status=429, headers={"Retry-After": when})
        mock.get(AGGS, payload={"data": None})
        await client.find("/profiles/p1/aggregations")
    assert 3.5 <= clock.now <= 5.5


@pytest.mark.parametrize("hint", ["0", "soon", None])
async def test_429_without_a_usable_hint_backs_off_exponentially(
        client: OmneoClient, clock: Recorder, hint: str | None) -> None:
    """Three 429s in a row: pauses of 1, 2 and 4 s (base 1, doubled per streak, jitter max)."""
    headers = {"Retry-After": hint} if hint is not None else {}
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(AGGS, status=429, headers=headers)
        mock.get(AGGS, payload={"data": {}})
        await client.find("/profiles/p1/aggregations")
    assert 7.0 <= clock.now < 7.5
    assert clock.sleeps == []  # the pacer held the request, every Omneo request with it


async def test_5xx_timeouts_and_dropped_connections_are_retried_with_backoff(
        client: OmneoClient, clock: Recorder) -> None:
    with aioresponses() as mock:
        mock.get(AGGS, status=500)
        mock.get(AGGS, exception=TimeoutError())
        mock.get(AGGS, exception=aiohttp.ServerDisconnectedError())
        mock.get(AGGS, payload={"data": {"shop_count": 2}})
        answer = await client.find("/profiles/p1/aggregations")
    assert answer == {"data": {"shop_count": 2}}
    assert clock.sleeps == [1.0, 2.0, 4.0]


async def test_retries_are_bounded(client: OmneoClient) -> None:
    """max_retries = 3: four attempts, then the stream fails with the last answer."""
    with aioresponses() as mock:
        for _ in range(5):
            mock.get(AGGS, status=503, body=b"maintenance")
        with pytest.raises(SourceError, match=r"still failing after 4 attempts: HTTP 503: "
                                              "maintenance"):
            await client.find("/profiles/p1/aggregations")
    assert client.requests == 4


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_fails_at_once_without_the_token(client: OmneoClient,
                                                               status: int) -> None:
    with aioresponses() as mock, capture_logs() as logs:
        mock.get(PAGE, status=status, body=b'{"message": "Unauthenticated."}')
        with pytest.raises(OmneoAuthError, match=f"refused the token \\(HTTP {status}\\)") as info:
            await client.get("/profiles", {"page[number]": "1"})
    assert isinstance(info.value, SourceError)
    assert TOKEN not in str(info.value) and TOKEN not in repr(logs)
    assert client.requests == 1


async def test_the_token_is_in_no_retry_log(client: OmneoClient) -> None:
    with aioresponses() as mock, capture_logs() as logs:
        mock.get(AGGS, status=502)
        mock.get(AGGS, payload={})
        await client.find("/profiles/p1/aggregations")
    (event,) = [e for e in logs if e["event"] == "omneo_retry"]
    assert event["status"] == 502 and event["path"] == "/profiles/p1/aggregations"
    assert TOKEN not in repr(logs)


async def test_404_is_none_from_find_and_an_error_from_get(client: OmneoClient) -> None:
    with aioresponses() as mock:
        mock.get(AGGS, status=404, payload={"message": "No query results"})
        mock.get(AGGS, status=404, payload={"message": "No query results"})
        assert await client.find("/profiles/p1/aggregations") is None
        with pytest.raises(SourceError, match="HTTP 404"):
            await client.get("/profiles/p1/aggregations")


async def test_a_refused_query_is_not_retried_and_says_what_to_check(client: OmneoClient
                                                                     ) -> None:
    with aioresponses() as mock:
        mock.get(PAGE, status=400, body=b'{"message": "Requested sort(s) `id` is not allowed."}')
        with pytest.raises(SourceError, match="check the source's sort, updated_filter") as info:
            await client.get("/profiles", {"sort": "updated_at,id"})
    assert "is not allowed" in str(info.value)
    assert client.requests == 1


async def test_an_answer_that_is_not_json_fails_the_stream(client: OmneoClient) -> None:
    with aioresponses() as mock:
        mock.get(PAGE, status=200, body=b"<html>maintenance</html>")
        with pytest.raises(SourceError, match="not JSON: <html>maintenance"):
            await client.get("/profiles")


async def test_requests_are_paced_evenly(clock: Recorder) -> None:
    """At 5 requests/s, ten requests leave 0.2 s apart (never a burst)."""
    departures: list[float] = []
    c = OmneoClient(BASE, TOKEN, concurrency=10,
                    pacer=Pacer(5.0, margin=0.0, jitter_floor=0.0, clock=clock.time,
                                sleep=clock.sleep))
    try:
        with aioresponses() as mock:
            for _ in range(10):
                mock.get(AGGS, payload={}, callback=lambda *a, **k: departures.append(clock.now))
            await asyncio.gather(*(c.find("/profiles/p1/aggregations") for _ in range(10)))
    finally:
        await c.aclose()
    gaps = [b - a for a, b in itertools.pairwise(departures)]
    assert len(departures) == 10 and all(abs(g - 0.2) < 1e-9 for g in gaps)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_followed_and_the_token_stays_home(
    client: OmneoClient, status: int
) -> None:
    """A 3xx fails the stream naming the Location; the token never goes to another host."""
    elsewhere = f"https://sso.example.org/login?t={TOKEN}"
    with aioresponses() as mock:
        mock.get(PAGE, status=status, headers={"Location": elsewhere})
        mock.get(elsewhere, payload={"data": []})
        with pytest.raises(SourceError, match=r"redirect to https://sso\.example\.org") as info:
            await client.get("/profiles")
        assert len(mock.requests) == 1
    assert TOKEN not in str(info.value) and client.requests == 1
